"""dbt models as assets: silver per month (incremental by window), gold as a whole; dbt tests as checks.

One ``@dbt_assets`` per partitions definition: the silver model is monthly, the gold tables are not.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from delitos_platform.defs.dbt.project import delitos_dbt_project, ensure_manifest
from delitos_platform.partitions import Window, monthly_partitions

SILVER_SELECT = "stg_delitos"
GOLD_SELECT = "path:models/gold"


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
    project=delitos_dbt_project,
    select=SILVER_SELECT,
    name="dbt_silver",
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
)
def dbt_silver(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """``silver.stg_delitos`` for exactly the run's months (delete + insert of the window), with its tests."""
    window = Window.from_time_window(context.partition_time_window)
    # Cautious: tests that compare gold with silver belong to the gold step, which runs after this one.
    args = ["build", "--indirect-selection", "cautious", "--vars", json.dumps(window_vars(window))]
    yield from dbt.cli(args, context=context).stream()


@dbt_assets(
    manifest=MANIFEST,
    project=delitos_dbt_project,
    select=GOLD_SELECT,
    name="dbt_gold",
    dagster_dbt_translator=TRANSLATOR,
)
def dbt_gold(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """The gold tables, rebuilt from silver (no window: they summarize every month), with their tests."""
    yield from dbt.cli(["build"], context=context).stream()
