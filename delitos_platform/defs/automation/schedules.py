"""Schedules: the dataset is refreshed monthly; bring in the newest months soon after."""

import dagster as dg

from delitos_platform.defs.jobs import main_job
from delitos_platform.partitions import monthly_partitions, range_tags

# The source publishes around the 16th of each month, with the month before: 06:00 in Bogotá on the 17th runs
# the day after, when that month is in (a run on the 5th read a month not published yet). See docs/operations.md.
SOURCE_PUBLISHES_ON_DAY = 16
NEWEST_MONTHS_CRON = f"0 6 {SOURCE_PUBLISHES_ON_DAY + 1} * *"
TIMEZONE = "America/Bogota"


@dg.schedule(
    name="newest_months",
    job=main_job,
    cron_schedule=NEWEST_MONTHS_CRON,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        f"Monthly, 06:00 America/Bogota on the {SOURCE_PUBLISHES_ON_DAY + 1}th, the day after the source's usual "
        "publication: the two newest complete months in ONE run (the month just published and the one before, the "
        "one most often revised). Older revisions, and a publication late or early, are the sensor's job."
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
