"""Policies shared by the assets of every layer: freshness, the run's hold on the warehouse, failed checks."""

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.socrata.versions import rows_updated_at
from delitos_platform.warehouse.base import WarehouseResource
from delitos_platform.warehouse.lock import WarehouseBusyError

# The check, on each layer of each dataset, that it caught up with its source's last update (automation/freshness.py).
FRESHNESS_CHECK = "fresh_against_source"
# The source refreshes monthly: a layer two days behind one of its updates is late.
SOURCE_LAG = timedelta(days=2)
# The source refreshes monthly: a layer not materialized for 32 days warns, for 35 days fails.
MONTHLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=35), warn_window=timedelta(days=32))


def monthly_layer(
    key: dg.AssetKey, upstream: dg.AssetKey, partitions: dg.PartitionsDefinition, group: str
) -> dict[str, Any]:
    """What every monthly asset of a layer (lake, bronze) declares in ``@dg.asset``: its upstream, its months,
    ONE run for any range of them (never a run per month), its group, owner and freshness."""
    return {
        "key": key,
        "deps": [upstream],
        "partitions_def": partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "group_name": group,
        "owners": ["team:data-engineering"],
        "freshness_policy": MONTHLY_FRESHNESS,
    }


# Marks a step that failed because its own blocking checks failed (and published nothing): the checks are alerted
# with their details, the run failure is not alerted a second time.
FAILED_CHECKS_METADATA = "failed_blocking_checks"


def failed_checks(description: str, checks: list[str]) -> dg.Failure:
    """The step's failure when blocking checks it evaluated did not pass; never retried (the data is wrong)."""
    return dg.Failure(
        description=description, metadata={FAILED_CHECKS_METADATA: ", ".join(checks)}, allow_retries=False
    )


def hold_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
    """Take the warehouse for this run until it ends: every step of a run that writes it, before any work.

    The first step takes it (the lake step too, so that a run that cannot have the warehouse extracts nothing);
    the next ones of the same run find it theirs. A run that cannot have it fails in one sentence naming the
    run that holds it, having changed nothing.
    """
    try:
        warehouse.hold(context.run_id, run_process(context), context.log.info, lambda run_id: _ended(context, run_id))
    except WarehouseBusyError as busy:
        raise dg.Failure(description=str(busy), allow_retries=False) from None


def run_process(context: dg.AssetExecutionContext) -> int:
    """The process whose life bounds the run: this one, or the run's main one when each step has its own."""
    executor = context.job_def.executor_def.name
    execution = (context.run.run_config.get("execution") or {}).get("config") or {}
    own_processes = executor == dg.multiprocess_executor.name or (
        executor == dg.multi_or_in_process_executor.name and "in_process" not in execution
    )
    parent = multiprocessing.parent_process()  # the process that started this one, whatever the start method
    return parent.pid if own_processes and parent is not None and parent.pid else os.getpid()


def _ended(context: dg.AssetExecutionContext, run_id: str) -> bool:
    """A run of this instance that has ended (whose main process may live on, e.g. a Python session)."""
    run = context.instance.get_run_by_id(run_id)
    return run is not None and run.is_finished


# Dagster's standard entry for a table's rows: the asset page shows it, and plots it per partition.
ROW_COUNT_METADATA = "dagster/row_count"


def row_count(rows: int) -> dict[str, dg.MetadataValue]:
    """The ``dagster/row_count`` entry of a materialization (of a whole table, or of one month of it)."""
    return {ROW_COUNT_METADATA: dg.MetadataValue.int(int(rows))}


def build_freshness_checks(
    layers: Sequence[dg.AssetKey],
    name: str = "freshness_against_source",
    dataset_id: str | None = None,
    window: timedelta = SOURCE_LAG,
) -> dg.AssetChecksDefinition:
    """One check per layer: not older than the source's ``rowsUpdatedAt`` by more than ``window``.

    The source is the ``socrata`` resource's dataset, or ``dataset_id`` (a family dataset) on the same portal.
    """

    @dg.multi_asset_check(
        name=name,
        can_subset=True,  # a run of some layers (the CLI, the UI) must not need the others' checks
        specs=[
            dg.AssetCheckSpec(
                FRESHNESS_CHECK, asset=key, description=f"Caught up with Socrata's last update within {window}."
            )
            for key in layers
        ],
    )
    def freshness_against_source(
        context: dg.AssetCheckExecutionContext, socrata: SocrataResource
    ) -> Iterator[dg.AssetCheckResult]:
        source = socrata.for_dataset(dataset_id) if dataset_id else socrata
        try:
            source_updated = datetime.fromtimestamp(rows_updated_at(source), UTC)
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
