"""The one ``Definitions`` of the code location (``dagster dev`` or ``-m delitos_platform.definitions``)."""

from __future__ import annotations

import dagster as dg

from delitos_platform.defs.automation.alerts import failed_check_alerts, run_failure_alerts
from delitos_platform.defs.automation.freshness import (
    freshness_against_source,
    freshness_job,
    freshness_schedule,
)
from delitos_platform.defs.automation.schedules import FAMILY_NEWEST_MONTHS, newest_months
from delitos_platform.defs.automation.sync import FAMILY_CHANGES, socrata_changes
from delitos_platform.defs.bronze.assets import bronze_delitos
from delitos_platform.defs.dbt.assets import FAMILY_SILVER_ASSETS, dbt_models
from delitos_platform.defs.family import FAMILY
from delitos_platform.defs.jobs import main_job
from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.lake.checks import dataset_ledger_balances
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.environment import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, checks, jobs and automation, with the resources of ``DELITOS_ENV``."""
    return dg.Definitions(
        assets=[
            socrata_delitos,
            lake_delitos,
            bronze_delitos,
            dbt_models,
            *(asset for member in FAMILY for asset in member.assets),
            *FAMILY_SILVER_ASSETS,
        ],
        asset_checks=[
            dataset_ledger_balances,
            freshness_against_source,
            *(check for member in FAMILY for check in member.checks),
        ],
        jobs=[main_job, freshness_job, *(member.job for member in FAMILY)],
        schedules=[newest_months, freshness_schedule, *FAMILY_NEWEST_MONTHS],
        sensors=[socrata_changes, run_failure_alerts, failed_check_alerts, *FAMILY_CHANGES],
        resources=build_resources(),
    )
