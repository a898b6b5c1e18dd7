"""Schedules: each dataset is refreshed monthly; bring in its newest months soon after.

One schedule per configured dataset, made by :func:`newest_months_schedule`: 4v6r-wu98's ``newest_months`` on
``delitos_main_job``, and ``<slug>_newest_months`` on ``<slug>_job`` for each dataset of the family
(SIEDCO publishes them all around the same day).
"""

from typing import Any

import dagster as dg

from delitos_platform.defs.family import FAMILY, FamilyDataset
from delitos_platform.defs.jobs import main_job
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.partitions import range_tags

# The source publishes around the 16th of each month, with the month before: 06:00 in Bogotá on the 17th runs
# the day after, when that month is in (a run on the 5th read a month not published yet). See docs/operations.md.
SOURCE_PUBLISHES_ON_DAY = 16
NEWEST_MONTHS_CRON = f"0 6 {SOURCE_PUBLISHES_ON_DAY + 1} * *"
TIMEZONE = "America/Bogota"
DESCRIPTION = (
    f"Monthly, 06:00 America/Bogota on the {SOURCE_PUBLISHES_ON_DAY + 1}th, the day after the source's usual "
    "publication: the two newest complete months in ONE run (the month just published and the one before, the "
    "one most often revised). Older revisions, and a publication late or early, are the sensor's job."
)


def newest_months_schedule(name: str, job: Any, dataset: LakeDataset) -> dg.ScheduleDefinition:
    """The monthly schedule of ``dataset``: its two newest complete months in ONE run of ``job``."""

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=NEWEST_MONTHS_CRON,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=DESCRIPTION,
    )
    def schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """A range run over the last two complete months at the scheduled time."""
        keys = dataset.partitions.get_partition_keys(current_time=context.scheduled_execution_time)
        first, last = keys[-2], keys[-1]
        return dg.RunRequest(
            run_key=f"newest:{last}",
            tags=range_tags(first, last),
        )

    return schedule


newest_months = newest_months_schedule("newest_months", main_job, DELITOS)


def family_newest_months(member: FamilyDataset) -> dg.ScheduleDefinition:
    """The monthly schedule of a dataset of the family: ``<slug>_newest_months``, on its job ``<slug>_job``."""
    return newest_months_schedule(f"{member.dataset.slug}_newest_months", member.job, member.dataset)


FAMILY_NEWEST_MONTHS = [family_newest_months(member) for member in FAMILY]
