"""The unattended loop on the production instance: a revision synced, a failed check alerted, two crashes recovered.

Webserver + daemon on ``deploy/dagster.yaml`` over PostgreSQL (the shared ``platform``), the emulator serving.
Nobody repairs anything by hand: a month is revised at the source (one of its new rows is malformed), the
``socrata_changes`` sensor requests one run for it; that run's worker is killed with SIGKILL while it extracts
(the emulator's ``slow`` fault holds the extraction), and so is its first retry's. The daemon's run monitoring and
run retries must fail each crashed run at once, retry it, and free the ``socrata`` pool slots it held, so that the
second retry and a third run both go through; the malformed row's check fails and exactly one alert about it
reaches the webhook; and every layer then holds exactly the source's rows by row id.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
import requests

from delitos_platform.defs.lake.assets import QUARANTINE_CHECK
from delitos_platform.lake.storage import LocalLake, quarantine_key
from delitos_platform.partitions import Window, monthly_partitions, range_tags, tagged_range
from delitos_platform.socrata.versions import month_versions, rows_updated_at
from delitos_platform.source_changes import SyncCursor
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.platform.helpers import lake_ids, source_ids, table_ids
from delitos_platform_tests.processes.conftest import IN_PROCESS, MAIN_JOB, LaunchedBackfill, Platform
from delitos_platform_tests.processes.helpers import expect_type, wait_until

REVISED = "2020-03-01"  # revised at the source; none of the other process tests' months
THIRD = ["2020-06-01", "2020-07-01"]  # the run after the crashes
CRASHES = 2  # = run_retries.max_retries: the last retry must go through
SLOW_SECONDS = 20.0  # each Socrata request of a held extraction waits this long
CRASH_NOTICED_WITHIN = 15.0  # the code server sees its run worker die within a second; margin for a busy machine
LOOP_TIMEOUT = 900.0  # a bound, not an estimate: about 2 min on an idle 2-core machine, 8 under a load of 9
ALERT_SENSORS = ("run_failure_alerts", "failed_check_alerts")

SENSORS = """
query {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } sensors { name } } }
  }
}
"""
SET_CURSOR = """
mutation ($selector: SensorSelector!, $cursor: String) {
  setSensorCursor(sensorSelector: $selector, cursor: $cursor) { __typename ... on PythonError { message } }
}
"""
START_SENSOR = """
mutation ($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on PythonError { message } }
}
"""
SENSOR_TICKS = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 5) { status runIds skipReason error { message } } } }
  }
}
"""
RUNS_TAGGED = """
query ($key: String!, $value: String!) {
  runsOrError(filter: { tags: [{ key: $key, value: $value }] }) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""
PIDS = """
query ($runId: ID!) {
  logsForRun(runId: $runId, limit: 1000) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message stepKey }
        ... on DisplayableEvent { metadataEntries { label ... on TextMetadataEntry { text } } }
      }
    }
  }
}
"""
SOCRATA_SLOTS = """
query { instance { concurrencyLimit(concurrencyKey: "socrata") { claimedSlots { runId stepKey } } } }
"""


@dataclass
class Crash:
    """A run whose worker the test killed: when, the pids it had, how long until Dagster failed it."""

    run_id: str
    worker: int
    lake_step: int
    failed_after: float


@dataclass
class Loop:
    """What the walk through the loop saw."""

    requested: list[dict[str, Any]]
    crashes: list[Crash] = field(default_factory=list)
    last_retry: dict[str, Any] = field(default_factory=dict)
    third: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def tags_of(run: dict[str, Any]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def runs_tagged(platform: Platform, key: str, value: str) -> list[dict[str, Any]]:
    return list(expect_type(platform.graphql(RUNS_TAGGED, key=key, value=value)["runsOrError"], "Runs")["results"])


def sensor_selectors(platform: Platform) -> dict[str, dict[str, str]]:
    """Every sensor's selector, by name."""
    repositories = expect_type(platform.graphql(SENSORS)["repositoriesOrError"], "RepositoryConnection")
    return {
        sensor["name"]: {
            "repositoryName": repo["name"],
            "repositoryLocationName": repo["location"]["name"],
            "sensorName": sensor["name"],
        }
        for repo in repositories["nodes"]
        for sensor in repo["sensors"]
    }


def start_sensor(platform: Platform, selector: dict[str, str]) -> None:
    """Start a sensor and wait for its first tick (the daemon evaluates a sensor that never ticked at once)."""
    result = platform.graphql(START_SENSOR, selector=selector)["startSensor"]
    assert result["__typename"] == "Sensor", result

    def ticked() -> list[dict[str, Any]] | None:
        platform.assert_alive()
        sensor = expect_type(platform.graphql(SENSOR_TICKS, selector=selector)["sensorOrError"], "Sensor")
        ticks = [tick for tick in sensor["sensorState"]["ticks"] if tick["status"] != "STARTED"]
        return ticks or None

    ticks = wait_until(ticked, 60.0, f"sensor {selector['sensorName']} to tick", interval=0.5)
    assert all(tick["error"] is None for tick in ticks), ticks


def synced_cursor(platform: Platform) -> str:
    """The ``socrata_changes`` cursor of a platform that has synced every month as the source has it now."""
    socrata = socrata_for(platform.emulator)
    partitions = set(monthly_partitions.get_partition_keys())
    versions = {month: v.tag() for month, v in month_versions(socrata).items() if month in partitions}
    return SyncCursor(rows_updated_at(socrata), versions).dump()


def admin(platform: Platform, method: str, action: str, **payload: Any) -> dict[str, Any]:
    """The emulator's admin endpoint, over HTTP as an operator would use it."""
    response = requests.request(method, f"{platform.emulator.url}/admin/{action}", json=payload, timeout=10)
    assert response.ok, f"{method} /admin/{action}: {response.status_code} {response.text}"
    return response.json()


def pids_of(platform: Platform, run_id: str) -> tuple[int | None, int | None, bool]:
    """The run worker's pid, the lake step process's pid (from the run's engine events), and whether it extracts."""
    events = platform.graphql(PIDS, runId=run_id)["logsForRun"].get("events", [])
    worker = step = None
    extracting = any((event.get("message") or "").startswith("Extracting [") for event in events)
    for event in events:
        pid = next((int(e["text"]) for e in event.get("metadataEntries") or [] if e["label"] == "pid"), None)
        message = event.get("message") or ""
        if message.startswith("Started process for run"):
            worker = int(message.split("pid: ")[1].rstrip(").").strip())
        elif event["__typename"] == "StepWorkerStartedEvent" and "lake" in (event.get("stepKey") or ""):
            step = pid
    return worker, step, extracting


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_while_extracting(platform: Platform, run_id: str) -> Crash:
    """Once the run's lake step extracts (its Socrata requests held), SIGKILL its run worker; wait until it failed."""

    def extracting() -> tuple[int, int] | None:
        platform.assert_alive()
        worker, step, extracting = pids_of(platform, run_id)
        return (worker, step) if worker and step and extracting else None

    worker, step = wait_until(extracting, 240.0, f"run {run_id} to extract", interval=0.5)
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: platform.run(run_id)["status"] == "FAILURE", 60.0, f"run {run_id} to be failed", interval=0.5)
    return Crash(run_id, worker, step, time.monotonic() - killed)


def retry_of(platform: Platform, run_id: str) -> dict[str, Any]:
    """The run the daemon launched to retry ``run_id``."""

    def launched() -> dict[str, Any] | None:
        platform.assert_alive()
        retries = runs_tagged(platform, "dagster/parent_run_id", run_id)
        return retries[0] if retries else None

    return wait_until(launched, 60.0, f"a retry of {run_id}", interval=0.5)


@pytest.fixture(scope="module")
def loop(platform: Platform, main_job_backfill: LaunchedBackfill, snapshot_rows: list[dict[str, str]]) -> Loop:
    """Walk the loop once (after the backfill tests' run: the held requests are for this loop's runs alone)."""
    started = time.monotonic()
    sensors = sensor_selectors(platform)
    for name in ALERT_SENSORS:  # on first: each starts watching from its first tick
        start_sensor(platform, sensors[name])
    cursor = platform.graphql(SET_CURSOR, selector=sensors["socrata_changes"], cursor=synced_cursor(platform))
    assert cursor["setSensorCursor"]["__typename"] == "Sensor", cursor

    admin(platform, "POST", "revise", month=REVISED[:7], rows=5)
    template = next(row for row in snapshot_rows if row["fecha_hecho"].startswith(REVISED[:7]))
    admin(platform, "POST", "add", rows=[{**template, "cantidad": "-1"}])  # refused by the contract: quarantined
    start_sensor(platform, sensors["socrata_changes"])
    requested = runs_tagged(platform, "dagster/sensor_name", "socrata_changes")
    admin(platform, "POST", "faults", kind="slow", count=1000, delay=SLOW_SECONDS)
    walk = Loop(requested)
    try:
        run_id = requested[0]["runId"]
        for _ in range(CRASHES):
            walk.crashes.append(kill_while_extracting(platform, run_id))
            run_id = retry_of(platform, run_id)["runId"]
    finally:
        admin(platform, "DELETE", "faults")
    third = platform.client.submit_job_execution(
        MAIN_JOB,
        run_config=IN_PROCESS,
        tags=range_tags(THIRD[0], THIRD[-1]),
    )
    remaining = LOOP_TIMEOUT - (time.monotonic() - started)
    walk.last_retry = platform.wait_for_run(run_id, remaining)
    walk.third = platform.wait_for_run(third, LOOP_TIMEOUT - (time.monotonic() - started))
    walk.seconds = time.monotonic() - started
    print(f"unattended loop in {walk.seconds:.1f} s; last retry: {platform.timeline(run_id)}")
    return walk


def test_a_revised_month_is_requested_once_by_the_sensor(platform: Platform, loop: Loop) -> None:
    """One run for the revised month, from the sensor's one tick; the crashes' retries are its children."""
    assert len(loop.requested) == 1, loop.requested
    tags = tags_of(loop.requested[0])
    assert tagged_range(tags) == (
        REVISED,
        REVISED,
    )
    assert tags["delitos/sync_reason"] == "revision"
    runs = runs_tagged(platform, "dagster/sensor_name", "socrata_changes")
    originals = [run["runId"] for run in runs if "dagster/parent_run_id" not in tags_of(run)]
    assert originals == [loop.requested[0]["runId"]]


def test_a_killed_run_worker_fails_its_run_at_once_and_takes_its_step_along(loop: Loop) -> None:
    assert len(loop.crashes) == CRASHES
    for crash in loop.crashes:
        assert crash.failed_after < CRASH_NOTICED_WITHIN, crash
        assert not running(crash.lake_step), f"the lake step {crash.lake_step} of {crash.run_id} outlived its run"


def test_the_last_retry_and_a_third_run_go_through_and_no_slot_outlives_its_run(platform: Platform, loop: Loop) -> None:
    """Two crashed runs held both ``socrata`` slots; run monitoring gives them back, nobody else does."""
    assert loop.last_retry["status"] == "SUCCESS", platform.failure_summary(loop.last_retry["runId"])
    assert tags_of(loop.last_retry)["dagster/retry_number"] == str(CRASHES)
    assert loop.third["status"] == "SUCCESS", platform.failure_summary(loop.third["runId"])

    def slots_free() -> bool:
        return not platform.graphql(SOCRATA_SLOTS)["instance"]["concurrencyLimit"]["claimedSlots"]

    wait_until(slots_free, 40.0, "every socrata slot to be free", interval=1.0)


def test_the_malformed_row_is_alerted_once(platform: Platform, loop: Loop) -> None:
    """``no_rows_quarantined`` failed (a warning) in the run that extracted the month: one alert, to the webhook."""

    def alerts() -> list[dict[str, Any]]:
        platform.assert_alive()
        return [r.json() for r in platform.alerts.requests if r.json().get("check") == QUARANTINE_CHECK]

    wait_until(alerts, 60.0, f"the {QUARANTINE_CHECK} alert", interval=1.0)
    time.sleep(1.0)  # a duplicate would come with the same sensor tick
    [alert] = alerts()
    assert alert["partition"] == REVISED
    assert alert["run_id"] == loop.last_retry["runId"]
    crashed = {r.json()["run_id"] for r in platform.alerts.requests if r.json()["title"].startswith("Run failed")}
    assert crashed <= {crash.run_id for crash in loop.crashes}


def test_every_layer_holds_exactly_the_source_rows(platform: Platform, loop: Loop) -> None:
    months = [REVISED, *THIRD]
    source = set().union(*(source_ids(platform.emulator, Window.for_month(month).soql()) for month in months))
    lake = LocalLake(root=str(platform.data_dir / "lake"))
    kept, refused = lake_ids(lake, months), lake_ids(lake, months, quarantine_key)
    assert kept | refused == source and not kept & refused
    assert len(refused) == 1
    assert table_ids(platform.warehouse, "bronze.delitos", months) == kept
    assert table_ids(platform.warehouse, "silver.stg_delitos", months) == kept
