"""Policies shared by the assets of every layer."""

import multiprocessing
import os
from datetime import timedelta

import dagster as dg

from delitos_platform.volume import HOW_TO_ACCEPT, VolumeVerdict
from delitos_platform.warehouse.base import WarehouseResource
from delitos_platform.warehouse.lock import WarehouseBusyError

# The source refreshes monthly: a layer not materialized for 32 days warns, for 35 days fails.
MONTHLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=35), warn_window=timedelta(days=32))

# Marks a step that failed because its own blocking checks failed (and published nothing): the checks are alerted
# with their details, the run failure is not alerted a second time.
FAILED_CHECKS_METADATA = "failed_blocking_checks"


# The blocking check of the volume guard, on the lake and on bronze (delitos_platform/volume.py).
VOLUME_CHECK = "volume_plausible"
# The run tag by which an operator accepts a drop the volume guard would hold ("true"); recorded on the
# materializations it lets through.
ACCEPT_DROP_TAG = "delitos/accept_volume_drop"


def drop_accepted(context: dg.AssetExecutionContext) -> bool:
    """Whether the run accepts a drop the volume guard would hold (its ``ACCEPT_DROP_TAG``)."""
    return context.run.tags.get(ACCEPT_DROP_TAG, "").strip().lower() == "true"


def volume_check_result(verdict: VolumeVerdict, accepted: bool, held_at: str | None = None) -> dg.AssetCheckResult:
    """The volume check: passes when nothing fell sharply, or when the run accepted the drop (and says so)."""
    if verdict.plausible:
        description = f"no month fell sharply: {verdict.describe()}"
    elif accepted:
        description = f"a drop accepted by the run's tag {ACCEPT_DROP_TAG}=true was published: {verdict.describe()}"
    else:
        aside = f" (its objects are kept aside in {held_at})" if held_at else ""
        description = f"held, nothing was published{aside}: {verdict.describe()}; {HOW_TO_ACCEPT}"
    return dg.AssetCheckResult(
        check_name=VOLUME_CHECK,
        passed=verdict.plausible or accepted,
        description=description,
        metadata={
            "months_fallen": len(verdict.sharp),
            "published_rows": verdict.published,
            "proposed_rows": verdict.proposed,
            "drop_accepted": accepted and not verdict.plausible,
        },
    )


def drop_metadata(verdict: VolumeVerdict, accepted: bool) -> dict[str, dg.MetadataValue]:
    """On a materialization that published an accepted drop: that it was accepted, and what fell."""
    if verdict.plausible or not accepted:
        return {}
    return {
        "volume_drop_accepted": dg.MetadataValue.text(f"{ACCEPT_DROP_TAG}=true: {verdict.describe()}"),
        "volume_rows_lost": dg.MetadataValue.int(verdict.lost),
    }


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
