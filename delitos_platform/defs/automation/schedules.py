"""Schedules: the dataset is refreshed monthly; bring in the newest months soon after."""

import dagster as dg

from delitos_platform.defs.jobs import main_job
from delitos_platform.partitions import monthly_partitions, range_tags

# 06:00 in Bogotá on the 5th: datos.gov.co publishes the previous month in its first days.
NEWEST_MONTHS_CRON = "0 6 5 * *"
TIMEZONE = "America/Bogota"


@dg.schedule(
    name="newest_months",
    job=main_job,
    cron_schedule=NEWEST_MONTHS_CRON,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Monthly, 06:00 America/Bogota on the 5th: the two newest complete months in ONE run (the month just "
        "published and the one before, the one most often revised). Older revisions are the sensor's job."
    ),
)
def newest_months(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """A range run over the last two complete months at the scheduled time."""
    keys = monthly_partitions.get_partition_keys(current_time=context.scheduled_execution_time)
    first, last = keys[-2], keys[-1]
    return dg.RunRequest(
        run_key=f"newest:{last}",
        tags=range_tags(first, last),
    )
