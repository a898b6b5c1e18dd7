"""The source sensors: re-sync exactly the months that changed in Socrata, one run per contiguous range.

One sensor per configured dataset, made by :func:`changes_sensor`: 4v6r-wu98's ``socrata_changes`` on
``delitos_main_job``, and ``<slug>_changes`` on ``<slug>_job`` for each dataset of the family.
"""

from typing import Any

import dagster as dg

from delitos_platform.contract import DATASET_ID
from delitos_platform.defs.family import FAMILY, FamilyDataset
from delitos_platform.defs.jobs import main_job
from delitos_platform.defs.source.assets import SOCRATA_DELITOS
from delitos_platform.defs.volume_guard import VOLUME_CHECK
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.provenance import source_refusal
from delitos_platform.lake.storage import LakeResource
from delitos_platform.partitions import range_tags, tagged_range
from delitos_platform.socrata import SocrataResource
from delitos_platform.socrata.versions import MonthVersion, month_versions, rows_updated_at
from delitos_platform.source_changes import (
    FAILED,
    HELD,
    SUCCEEDED,
    Changes,
    SyncCursor,
    compare,
    versions_held_by_lake,
)

DAILY = 24 * 60 * 60
REASON_TAG = "delitos/sync_reason"
DATA_VERSION_TAG = "dagster/data_version"  # how Dagster reads an observation's data version
RUN_KEY_TAG = "dagster/run_key"  # set by Dagster on the runs a sensor requested
DESCRIPTION = (
    "Daily: when the source's rowsUpdatedAt moved, or a run it requested failed, asks Socrata (one grouped "
    "query) for each month's version and re-syncs exactly the months whose lake object records another one, "
    "one run per contiguous range. A month the volume guard held waits for the source's next version of it. "
    "Records each month's version on the source."
)


def changes_sensor(name: str, job: Any, dataset: LakeDataset, source: dg.AssetKey) -> dg.SensorDefinition:
    """The source sensor of ``dataset``: requests runs of ``job`` (define_asset_job's) for the months that changed,
    and records each one's version on the source asset ``source``."""

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=DAILY,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=DESCRIPTION,
    )
    def sensor(context: dg.SensorEvaluationContext, socrata: SocrataResource, lake: LakeResource) -> dg.SensorResult:
        return evaluate_changes(context, socrata_reading(socrata, dataset), lake, dataset, source)

    return sensor


def socrata_reading(socrata: SocrataResource, dataset: LakeDataset) -> SocrataResource:
    """The resource reading ``dataset``: 4v6r-wu98's is the configured one (``SOCRATA_DATASET``, which the lake
    refuses when it holds another), each of the family's reads its entry's own id."""
    return socrata if dataset.id == DATASET_ID else socrata.for_dataset(dataset.id)


def evaluate_changes(
    context: dg.SensorEvaluationContext,
    socrata: SocrataResource,
    lake: LakeResource,
    dataset: LakeDataset,
    source_key: dg.AssetKey,
) -> dg.SensorResult:
    """Compare the source with what was synced (or is being synced) and request runs for what changed.

    What the lake holds decides: a month whose object records another version than the source's current one is
    requested, whatever the cursor says (a month the lake does not hold is compared with the cursor's last synced
    version). A month counts as synced once its run succeeded: the months of a failed run are requested again at
    the next evaluation, even when the source did not change since, except those the volume guard held, which
    wait until the source's version of them changes (their alert was sent once, for that version).
    """
    # Before any request: never the real API on the demo's data, never another dataset where this one lives (the
    # lake's root for 4v6r-wu98, its slug's prefix for one of the family).
    refusal = source_refusal(lake, socrata.url, socrata.dataset_id, dataset)
    if refusal is not None:
        return dg.SensorResult(skip_reason=refusal)
    previous, failed = settle(context, SyncCursor.load(context.cursor))
    updated_at = rows_updated_at(socrata)
    if previous is not None and previous.rows_updated_at == updated_at and not failed:
        # The cursor still moves: runs that succeeded since the last look are recorded as synced.
        return dg.SensorResult(
            skip_reason=f"Socrata unchanged since rowsUpdatedAt={updated_at}", cursor=previous.dump()
        )
    source = month_versions(socrata)
    partitions = set(dataset.partitions.get_partition_keys())
    previous = previous or SyncCursor(updated_at)
    held_by_lake = versions_held_by_lake(lake, source, sorted(partitions), dataset)
    changes = compare(previous.expected(held_by_lake), source, partitions, previous.held)
    if previous.held:
        waiting = ", ".join(sorted(month[:7] for month in previous.held if month not in changes.months))
        context.log.info(f"Held by the volume guard, waiting for the source's next version: {waiting or 'none'}")
    if changes.wholesale_replacement:
        context.log.warning(f"Socrata re-published every month (all :id new, counts unchanged): {len(changes.months)}")
    context.log.info(
        f"rowsUpdatedAt={updated_at}: {len(changes.months)} months changed in {len(changes.ranges())} ranges"
    )
    requests = run_requests(changes, updated_at, previous.batch, dataset)
    brought_in = {request.run_key: versions_of(changes, request, source) for request in requests}
    return dg.SensorResult(
        run_requests=requests,
        asset_events=observations(changes, source, source_key),
        cursor=previous.requested(updated_at, brought_in, source).dump(),
    )


def settle(context: dg.SensorEvaluationContext, cursor: SyncCursor | None) -> tuple[SyncCursor | None, list[str]]:
    """The cursor with its finished runs accounted for, and the run keys of the runs that did not succeed."""
    if cursor is None or not cursor.in_flight:
        return cursor, []
    outcomes = {}
    for run_key in cursor.in_flight:
        runs = context.instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
        outcomes[run_key] = _outcome(context.instance, runs[0]) if runs and runs[0].is_finished else None
    settled, failed = cursor.settled(outcomes)
    for run_key in failed:
        if outcomes[run_key] == HELD:
            context.log.warning(f"The run {run_key} was held by the volume guard: its months wait for the source")
        else:
            context.log.warning(f"The run {run_key} did not succeed: its months are requested again")
    return settled, failed


def _outcome(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """How a finished run ended: succeeded, held (a volume check of it failed) or failed."""
    if run.is_success:
        return SUCCEEDED
    evaluations = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    for entry in evaluations:
        evaluation = entry.dagster_event.asset_check_evaluation_data if entry.dagster_event else None
        if evaluation is not None and evaluation.check_name == VOLUME_CHECK and not evaluation.passed:
            return HELD
    return FAILED


def run_requests(changes: Changes, updated_at: int, batch: int, dataset: LakeDataset) -> list[dg.RunRequest]:
    """One run per contiguous range of changed months; the run key makes a request happen once.

    The key starts with the dataset's lake prefix (none for 4v6r-wu98, ``<slug>/`` for one of the family):
    :func:`settle` finds a run by its key alone, and two datasets changed in the same second over the same months
    would otherwise share keys, one sensor taking the other's run for its own.
    """
    reason = "wholesale-replacement" if changes.wholesale_replacement else "revision"
    return [
        dg.RunRequest(
            run_key=f"{dataset.prefix}{updated_at}:{first}:{last}:{batch}",
            tags={**range_tags(first, last), REASON_TAG: reason},
        )
        for first, last in changes.ranges()
    ]


def versions_of(changes: Changes, request: dg.RunRequest, source: dict[str, MonthVersion]) -> dict[str, str | None]:
    """The versions a requested run brings in: each of its months as the source has it now (``None``: emptied)."""
    first, last = tagged_range(request.tags)
    return {month: source[month].tag() if month in source else None for month in changes.between(first, last)}


def observations(
    changes: Changes, source: dict[str, MonthVersion], source_key: dg.AssetKey
) -> list[dg.AssetObservation]:
    """Each changed month's new version, recorded on the source asset ``source_key`` (an emptied month reads
    ``0@deleted``)."""
    return [
        dg.AssetObservation(
            source_key,
            partition=month,
            metadata={"rows": source[month].rows if month in source else 0},
            tags={DATA_VERSION_TAG: source[month].tag() if month in source else "0@deleted"},
        )
        for month in changes.months
    ]


socrata_changes = changes_sensor("socrata_changes", main_job, DELITOS, SOCRATA_DELITOS)


def family_changes(member: FamilyDataset) -> dg.SensorDefinition:
    """The source sensor of a dataset of the family: ``<slug>_changes``, on its job ``<slug>_job``."""
    return changes_sensor(f"{member.dataset.slug}_changes", member.job, member.dataset, member.source.key)


FAMILY_CHANGES = [family_changes(member) for member in FAMILY]
