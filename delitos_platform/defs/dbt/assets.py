"""dbt models as assets: silver and gold in ONE monthly-partitioned ``@dbt_assets``; dbt tests as checks.

One dbt invocation per run: ``silver.stg_delitos`` is rebuilt for exactly the run's window (delete + insert),
and the gold tables, which summarize every month, are rebuilt from silver in the same ``dbt build`` (a
single-run backfill of any range builds them once). dbt's own ``build`` order makes an error-severity
test block everything downstream of it.
"""

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from delitos_platform.defs.dbt.project import ensure_manifest
from delitos_platform.partitions import Window, monthly_partitions

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
            key=dg.AssetKey([layer, props["name"]]), group_name=layer, owners=["team:analytics-engineering"]
        )


def window_vars(window: Window) -> dict[str, str]:
    """The dbt vars of a run's window: half-open ``[window_start, window_end)`` as ISO dates."""
    return {"window_start": window.start.isoformat(), "window_end": window.end.isoformat()}


TRANSLATOR = DelitosDbtTranslator()
MANIFEST = ensure_manifest()


@dbt_assets(
    manifest=MANIFEST,
    name="dbt_models",
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """``dbt build`` of the run's window: silver by delete + insert of the window, gold in full, all tests."""
    window = Window.from_time_window(context.partition_time_window)
    yield from run_dbt(dbt, ["build", "--vars", json.dumps(window_vars(window))], context)


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
