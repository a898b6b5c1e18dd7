"""dbt models as assets: silver per month (incremental by window), gold as a whole; dbt tests as checks.

One ``@dbt_assets`` per partitions definition. ``silver.stg_delitos`` is monthly: a run rebuilds exactly its
window (delete + insert). The gold tables summarize every month, so they are not partitioned: a run rebuilds
them once from silver, however many months it covers, and Dagster records one materialization each instead
of one per month. dbt's own ``build`` order makes an error-severity test block everything downstream of it.
"""

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from delitos_platform.defs.dbt.project import ensure_manifest
from delitos_platform.defs.policies import MONTHLY_FRESHNESS
from delitos_platform.partitions import Window, monthly_partitions

SILVER, GOLD = "fqn:delitos.silver", "fqn:delitos.gold"
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


class DelitosDbtTranslator(DagsterDbtTranslator):
    """Models are keyed and grouped by the schema they land in: ``silver/stg_delitos``, ``gold/...``."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        """The default spec, with the model's schema as key prefix and group."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] != "model":
            return spec
        layer = props["config"].get("schema") or "silver"
        return spec.replace_attributes(
            key=dg.AssetKey([layer, props["name"]]),
            group_name=layer,
            owners=["team:analytics-engineering"],
            freshness_policy=MONTHLY_FRESHNESS,
        )


def window_vars(window: Window) -> dict[str, str]:
    """The dbt vars of a run's window: half-open ``[window_start, window_end)`` as ISO dates."""
    return {"window_start": window.start.isoformat(), "window_end": window.end.isoformat()}


TRANSLATOR = DelitosDbtTranslator()
MANIFEST = ensure_manifest()


@dbt_assets(
    manifest=MANIFEST,
    select=SILVER,
    name="dbt_silver",
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
)
def dbt_silver(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """``silver.stg_delitos`` for exactly the run's months (delete + insert of the window), with its tests."""
    window = Window.from_time_window(context.partition_time_window)
    # Cautious: the tests comparing gold with silver belong to the gold step, which runs after this one.
    args = ["build", "--indirect-selection", "cautious", "--vars", json.dumps(window_vars(window))]
    yield from run_dbt(dbt, args, context)


@dbt_assets(manifest=MANIFEST, select=GOLD, name="dbt_gold", dagster_dbt_translator=TRANSLATOR)
def dbt_gold(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """The gold tables rebuilt from silver, with their tests; never reads a partition window."""
    yield from run_dbt(dbt, ["build"], context)


def run_dbt(dbt: DbtCliResource, args: list[str], context: dg.AssetExecutionContext) -> Iterator[Any]:
    """Stream a dbt command's events; a failure becomes one readable ``dg.Failure`` (dbt's own errors)."""
    invocation = dbt.cli(args, context=context, raise_on_error=False)
    yield from invocation.stream()
    error = invocation.get_error()
    if error is not None:
        raise dg.Failure(description=f"dbt {args[0]} failed: {dbt_errors(str(error))}", allow_retries=False)


def dbt_errors(message: str, shown: int = 3) -> str:
    """The errors dbt logged (dagster-dbt lists them after a marker), without colours or repeats."""
    _, _, logged = message.partition("Errors parsed from dbt logs:")
    lines = [ANSI_CODES.sub("", line).strip() for line in (logged or message).splitlines()]
    distinct = list(dict.fromkeys(line for line in lines if line and line != "Encountered an error:"))
    return ": ".join(distinct[:shown]) + (f" (+{len(distinct) - shown} more)" if len(distinct) > shown else "")
