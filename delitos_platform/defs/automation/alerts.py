"""Alerting sensors: every failed run and every failed asset check reaches each alert channel, once.

``run_failure_alerts`` watches every run of the instance, whatever started it (the UI, a schedule, ``delitos
backfill``, ``dagster job execute``): Dagster's run-status cursor (the storage id of the last run-failure event it
handled) moves across ticks. ``failed_check_alerts`` keeps its own cursor: the storage id of the last
``ASSET_CHECK_EVALUATION`` event it read. Both start from "now" on their first tick, as Dagster's own run-status
sensors do, so turning them on never replays history.

Neither sends an alert itself: each puts it in the outbox (``alert_outbox.py``, in the instance's folder), keyed by
what it is about, then delivers what is due. A channel that fails (HTTP 500, unreachable) is said on the tick and
in the sensor's log, and the alert is kept and re-sent with backoff at the next ticks until it is delivered; a
channel that did deliver never receives it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from delitos_platform.alert_channels import Alert, AlertsResource
from delitos_platform.alert_outbox import AlertOutbox
from delitos_platform.defs.policies import FAILED_CHECKS_METADATA
from delitos_platform.partitions import tagged_range

MINIMUM_INTERVAL_SECONDS = 30
EVENTS_PER_TICK = 200
# A run that failed only because a blocking check failed is alerted once, by failed_check_alerts, with the details.
BLOCKING_CHECK_ERROR = "DagsterAssetCheckFailedError"


@dg.run_failure_sensor(
    name="run_failure_alerts",
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Runs started outside this code location (the CLI, `dagster job execute`) have no origin in it: without this
    # Dagster would show the sensor only the runs the UI, schedules and sensors launched.
    monitor_all_code_locations=True,
    description="Alerts (webhook, Slack) on every failed run of the instance: assets, partitions, why, link.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    """Alert the failed run (through the outbox), unless a failed blocking check (alerted on its own) is the cause."""
    step_failures = context.get_step_failure_events()
    run_id = context.dagster_run.run_id
    if step_failures and all(_failed_on_blocking_check(event) for event in step_failures):
        context.log.info(f"Run {run_id} failed on blocking checks: alerted by failed_check_alerts")
        return
    alert = run_failure_alert(context.instance, context.dagster_run, context.failure_event, step_failures, alerts)
    outbox = instance_outbox(context.instance)
    outbox.add(f"run-failure:{run_id}", alert, list(alerts.channels()))
    context.log.info(outbox.flush(alerts, context.log.error).describe())


@dg.sensor(
    name="failed_check_alerts",
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (webhook, Slack) on every failed asset check evaluation: asset, partition, check, why, link.",
)
def failed_check_alerts(context: dg.SensorEvaluationContext, alerts: AlertsResource) -> dg.SensorResult:
    """Alert every failed check evaluation recorded since the cursor; the cursor is the last storage id read."""
    storage = context.instance.event_log_storage
    if context.cursor is None:
        latest = storage.get_maximum_record_id() or 0
        return dg.SensorResult(skip_reason=f"Watching check evaluations after event {latest}", cursor=str(latest))
    # Not get_event_records(EventRecordsFilter(after_cursor=...)): the default (run-sharded SQLite) storage refuses
    # a plain storage-id cursor for check events. This reads the index shard, where every storage mirrors them.
    entries = storage.get_logs_for_all_runs_by_log_id(
        after_cursor=int(context.cursor),
        dagster_event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        limit=EVENTS_PER_TICK,
    )
    outbox, failures = instance_outbox(context.instance), 0
    for storage_id, entry in entries.items():
        evaluation = entry.dagster_event.asset_check_evaluation_data if entry.dagster_event else None
        if evaluation is None or evaluation.passed:
            continue
        alert = check_failure_alert(context.instance, entry.run_id, evaluation, alerts)
        outbox.add(f"check-failure:{storage_id}", alert, list(alerts.channels()))
        failures += 1
    # Every tick delivers what is due, the run failures' alerts too: nothing waits for another failure.
    flushed = outbox.flush(alerts, context.log.error)
    cursor = max(entries, default=int(context.cursor))
    summary = f"{len(entries)} check evaluations read, {failures} failed; {flushed.describe()}"
    return dg.SensorResult(skip_reason=summary, cursor=str(cursor))


def instance_outbox(instance: dg.DagsterInstance) -> AlertOutbox:
    """The alert outbox kept in the instance's own folder (``$DAGSTER_HOME``), beside its history."""
    return AlertOutbox.in_folder(instance.root_directory)


def run_failure_alert(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    failure: dg.DagsterEvent,
    step_failures: Sequence[dg.DagsterEvent],
    alerts: AlertsResource,
) -> Alert:
    """The alert of a failed run: the assets of its failed steps, its partitions, and why each step failed."""
    failed_steps = {event.step_key for event in step_failures}
    return Alert(
        title=f"Run failed: {run.job_name}",
        assets=_assets_of_steps(instance, run.run_id, failed_steps),
        partition=run_partitions(run),
        check=None,
        message=_failure_message(failure, step_failures),
        run_id=run.run_id,
        job=run.job_name,
        run_url=alerts.run_url(run.run_id),
    )


def check_failure_alert(
    instance: dg.DagsterInstance, run_id: str, evaluation: dg.AssetCheckEvaluation, alerts: AlertsResource
) -> Alert:
    """The alert of a failed check evaluation: its asset, partition(s), check and description."""
    run = instance.get_run_by_id(run_id)
    blocking = " (blocking: downstream assets were not built)" if evaluation.blocking else ""
    return Alert(
        title=f"Check failed: {evaluation.check_name} on {evaluation.asset_key.to_user_string()}",
        assets=(evaluation.asset_key.to_user_string(),),
        partition=evaluation.partition or (run_partitions(run) if run else None),
        check=evaluation.check_name,
        message=f"{evaluation.severity.value}: {evaluation.description or 'the check did not pass'}{blocking}",
        run_id=run_id,
        job=run.job_name if run else "?",
        run_url=alerts.run_url(run_id),
    )


def run_partitions(run: dg.DagsterRun) -> str | None:
    """The run's partition, or its range ``first…last`` (a single-run backfill), from the run's tags only."""
    months = tagged_range(run.tags)
    if months:
        first, last = months
        return first if first == last else f"{first}…{last}"
    return run.tags.get("dagster/partition")


def _assets_of_steps(instance: dg.DagsterInstance, run_id: str, step_keys: set[str | None]) -> tuple[str, ...]:
    """The assets the failed steps were to materialize (from the run's planned materializations)."""
    planned = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    events = [entry.dagster_event for entry in planned if entry.dagster_event]
    keys = {event.asset_key.to_user_string() for event in events if event.asset_key and event.step_key in step_keys}
    return tuple(sorted(keys))


def _failure_message(failure: dg.DagsterEvent, step_failures: Sequence[dg.DagsterEvent]) -> str:
    """One line per failed step: the ``dg.Failure`` description, else the error's first line (never a traceback)."""
    lines = [f"{event.step_key}: {_step_reason(event)}" for event in step_failures]
    if not lines:  # the run failed outside any step (launch, run worker crash): Dagster's own sentence
        error = getattr(failure.event_specific_data, "error", None)
        lines = [failure.message or "the run failed"] + ([_first_line(error.message)] if error else [])
    return "\n".join(lines)


def _step_reason(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    if error is None:
        return "unknown error"
    # Dagster wraps a user exception ("Error occurred while executing op …"): the innermost cause says why.
    while error.cause is not None:
        error = error.cause
    return _first_line(error.message)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _failed_on_blocking_check(event: dg.DagsterEvent) -> bool:
    failure = event.step_failure_data
    own_checks = failure.user_failure_data is not None and FAILED_CHECKS_METADATA in failure.user_failure_data.metadata
    return own_checks or (failure.error is not None and failure.error.cls_name == BLOCKING_CHECK_ERROR)
