"""Freshness: every layer is refreshed within a window of the source's own updates.

Two complementary signals: Dagster's ``FreshnessPolicy`` (time since the last materialization, shown in
the UI) and a check against the source itself: a layer is stale when Socrata updated its rows more than
``window`` before the layer last caught up.
"""

import dagster as dg

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.family import FAMILY
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.defs.policies import build_freshness_checks

GOLD_SUMMARY = dg.AssetKey(["gold", "resumen_general"])
LAYERS = (LAKE_DELITOS, BRONZE_DELITOS, GOLD_SUMMARY)

freshness_against_source = build_freshness_checks(LAYERS)
# Each family dataset's lake, bronze and silver, against its own source (built with its other assets).
FAMILY_FRESHNESS = [member.freshness for member in FAMILY]
freshness_job = dg.define_asset_job(
    "freshness_checks",
    selection=dg.AssetSelection.checks(freshness_against_source, *FAMILY_FRESHNESS),
    description="Freshness checks of every dataset's layers.",
)
freshness_schedule = dg.ScheduleDefinition(
    name="daily_freshness_checks",
    job=freshness_job,
    cron_schedule="0 7 * * *",
    execution_timezone="America/Bogota",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 07:00 America/Bogota: is every layer of every dataset caught up with Socrata?",
)
