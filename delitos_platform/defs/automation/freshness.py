"""Freshness: every layer is refreshed within a window of the source's own updates.

Two complementary signals: Dagster's ``FreshnessPolicy`` (time since the last materialization, shown in
the UI) and a check against the source itself: a layer is stale when Socrata updated its rows more than
``window`` before the layer last caught up.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.socrata.versions import rows_updated_at

GOLD_SUMMARY = dg.AssetKey(["gold", "resumen_general"])
LAYERS = (LAKE_DELITOS, BRONZE_DELITOS, GOLD_SUMMARY)
FRESHNESS_CHECK = "fresh_against_source"
# The source refreshes monthly: a layer two days behind one of its updates is late.
SOURCE_LAG = timedelta(days=2)


def build_freshness_checks(window: timedelta = SOURCE_LAG) -> dg.AssetChecksDefinition:
    """One check per layer: not older than the source's ``rowsUpdatedAt`` by more than ``window``."""

    @dg.multi_asset_check(
        name="freshness_against_source",
        can_subset=True,  # a run of some layers (the CLI, the UI) must not need the others' checks
        specs=[
            dg.AssetCheckSpec(
                FRESHNESS_CHECK, asset=key, description=f"Caught up with Socrata's last update within {window}."
            )
            for key in LAYERS
        ],
    )
    def freshness_against_source(
        context: dg.AssetCheckExecutionContext, socrata: SocrataResource
    ) -> Iterator[dg.AssetCheckResult]:
        try:
            source_updated = datetime.fromtimestamp(rows_updated_at(socrata), UTC)
        except SocrataError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        for check_key in context.selected_asset_check_keys:
            yield layer_freshness(context.instance, check_key.asset_key, source_updated, window)

    return freshness_against_source


def layer_freshness(
    instance: dg.DagsterInstance, key: dg.AssetKey, source_updated: datetime, window: timedelta
) -> dg.AssetCheckResult:
    """Passes when the layer was materialized after the source's update, or within ``window`` of it."""
    event = instance.get_latest_materialization_event(key)
    materialized = datetime.fromtimestamp(event.timestamp, UTC) if event else None
    behind = source_updated - materialized if materialized else None
    passed = behind is not None and behind <= window
    described = f"last materialized {materialized:%Y-%m-%d %H:%M} UTC" if materialized else "never materialized"
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FRESHNESS_CHECK,
        passed=passed,
        description=f"{described}; Socrata updated {source_updated:%Y-%m-%d %H:%M} UTC (allowed lag {window})",
        metadata={
            "source_rows_updated_at": source_updated.isoformat(),
            "hours_behind_source": round(max(behind.total_seconds(), 0) / 3600, 2) if behind is not None else -1,
        },
    )


freshness_against_source = build_freshness_checks()
freshness_job = dg.define_asset_job(
    "freshness_checks", selection=dg.AssetSelection.checks(freshness_against_source), description="Freshness checks."
)
freshness_schedule = dg.ScheduleDefinition(
    name="daily_freshness_checks",
    job=freshness_job,
    cron_schedule="0 7 * * *",
    execution_timezone="America/Bogota",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 07:00 America/Bogota: is every layer caught up with Socrata?",
)
