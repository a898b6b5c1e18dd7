"""The source sensor: re-sync exactly the months that changed in Socrata, one run per contiguous range."""

import dagster as dg

from delitos_platform.defs.source.assets import SOCRATA_DELITOS
from delitos_platform.jobs import main_job
from delitos_platform.lake.storage import LakeResource
from delitos_platform.partitions import monthly_partitions
from delitos_platform.socrata import SocrataResource
from delitos_platform.sync import (
    Changes,
    MonthVersion,
    SyncCursor,
    compare,
    month_versions,
    next_cursor,
    rows_updated_at,
    versions_held_by_lake,
)

DAILY = 24 * 60 * 60
REASON_TAG = "delitos/sync_reason"
DATA_VERSION_TAG = "dagster/data_version"  # how Dagster reads an observation's data version


@dg.sensor(
    name="socrata_changes",
    job=main_job,
    minimum_interval_seconds=DAILY,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Daily: when the source's rowsUpdatedAt moved, asks Socrata (one grouped query) which months changed "
        "and re-syncs exactly those, one run per contiguous range. Records each month's version on the source."
    ),
)
def socrata_changes(
    context: dg.SensorEvaluationContext, socrata: SocrataResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Compare the source with what was last synced and request runs for what changed."""
    previous = SyncCursor.load(context.cursor)
    updated_at = rows_updated_at(socrata)
    if previous is not None and previous.rows_updated_at == updated_at:
        return dg.SkipReason(f"Socrata unchanged since rowsUpdatedAt={updated_at}")
    source = month_versions(socrata)
    partitions = set(monthly_partitions.get_partition_keys())
    synced = previous.versions if previous is not None else versions_held_by_lake(lake, source)
    changes = compare(synced, source, partitions)
    if changes.wholesale_replacement:
        context.log.warning(f"Socrata re-published every month (all :id new, counts unchanged): {len(changes.months)}")
    context.log.info(
        f"rowsUpdatedAt={updated_at}: {len(changes.months)} months changed in {len(changes.ranges())} ranges"
    )
    return dg.SensorResult(
        run_requests=run_requests(changes, updated_at),
        asset_events=observations(changes, source),
        cursor=next_cursor(updated_at, source, partitions).dump(),
    )


def run_requests(changes: Changes, updated_at: int) -> list[dg.RunRequest]:
    """One run per contiguous range of changed months; the run key makes a request happen once."""
    reason = "wholesale-replacement" if changes.wholesale_replacement else "revision"
    return [
        dg.RunRequest(
            run_key=f"{updated_at}:{first}:{last}",
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
                REASON_TAG: reason,
            },
        )
        for first, last in changes.ranges()
    ]


def observations(changes: Changes, source: dict[str, MonthVersion]) -> list[dg.AssetObservation]:
    """Each changed month's new version, recorded on the source asset (an emptied month reads ``0@deleted``)."""
    return [
        dg.AssetObservation(
            SOCRATA_DELITOS,
            partition=month,
            metadata={"rows": source[month].rows if month in source else 0},
            tags={DATA_VERSION_TAG: source[month].tag() if month in source else "0@deleted"},
        )
        for month in changes.months
    ]
