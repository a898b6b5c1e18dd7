"""The platform as separate processes on loopback: our emulator, ``dagster-webserver`` and ``dagster-daemon``.

One webserver and one daemon serve every test of this folder (package scope): they start in about the
time it takes to load the code location twice, and the tests share what earlier tests materialized.
Both run the production instance: a private ``DAGSTER_HOME`` holding ``deploy/dagster.yaml`` (queued runs,
run retries, run monitoring, the ``socrata`` pool) on a real PostgreSQL server started for the session, with
``DELITOS_ENV=local``, a private ``DELITOS_DATA_DIR``, an emulator of their own (admin endpoint on) and alerts
sent to a webhook receiver on loopback.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform_tests.processes.helpers import (
    ARTIFACTS,
    REPO_ROOT,
    GraphQL,
    GraphQLError,
    HeadlessChromium,
    Process,
    ensure_chromium,
    expect_type,
    free_port,
    venv_tool,
    wait_until,
)
from delitos_platform_tests.processes.postgres import PostgresServer, postgres_server
from delitos_platform_tests.receiver import Receiver, receiving

STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 300.0  # a bound: a 4-month run takes ~40 s on an idle 2-core machine, 150 s under a load of 10
TERMINAL_RUN_STATUSES = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
MAIN_JOB = "delitos_main_job"
BACKFILL_MONTHS = ["2019-01-01", "2019-02-01", "2019-03-01", "2019-04-01"]
# One process for the run instead of one per step (each step process loads the code location again,
# ~7 s on 2 cores): partitions, backfill policy, queue and pool are the same as with the default executor.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

AUTOMATION_QUERY = """
query {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        sensors { name sensorState { id status } }
        schedules { name scheduleState { id status } }
      }
    }
  }
}
"""

STOP_SENSOR = """
mutation ($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

STOP_SCHEDULE = """
mutation ($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

PARTITION_SETS = """
query {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes { name location { name } partitionSets { name pipelineName } }
    }
  }
}
"""

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""

BACKFILL = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id
      status
      numPartitions
      partitionNames
      error { message }
      runs { runId status tags { key value } }
    }
    ... on Error { message }
  }
}
"""

DAEMON_HEALTH = """
query { instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""

RUN_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status tags { key value } }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""

FAILED_STEPS = """
query ($runId: ID!) {
  logsForRun(runId: $runId, limit: 1000) {
    __typename
    ... on EventConnection {
      events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } } }
    }
  }
}
"""


TIMELINE = """
query ($runId: ID!) {
  logsForRun(runId: $runId, limit: 5000) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { timestamp stepKey } } }
  }
}
"""
TIMELINE_EVENTS = {
    "RunEnqueuedEvent",
    "RunDequeuedEvent",
    "RunStartingEvent",
    "RunStartEvent",
    "ExecutionStepStartEvent",
    "ExecutionStepSuccessEvent",
    "ExecutionStepFailureEvent",
    "RunSuccessEvent",
    "RunFailureEvent",
}


@dataclass
class Platform:
    """The running platform: where it answers, its instance and data folders, and its processes."""

    url: str
    port: int
    home: Path
    data_dir: Path
    env: dict[str, str]
    emulator: EmulatorServer
    alerts: Receiver
    webserver: Process
    daemon: Process
    backfill_id: str

    @property
    def graphql(self) -> GraphQL:
        """Raw GraphQL, for backfills (the official client has no method for them)."""
        return GraphQL(self.url)

    @property
    def client(self) -> DagsterGraphQLClient:
        """Dagster's own GraphQL client (runs: submit, status)."""
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)

    @property
    def warehouse(self) -> Path:
        """The embedded DuckDB warehouse of this platform."""
        return self.data_dir / "warehouse.duckdb"

    def assert_alive(self) -> None:
        """Fail with the log of whichever process died."""
        self.webserver.assert_alive()
        self.daemon.assert_alive()

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's id, status and tags."""
        return dict(expect_type(self.graphql(RUN_QUERY, runId=run_id)["runOrError"], "Run"))

    def wait_for_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        """Poll a run (``DagsterGraphQLClient.get_run_status``) until it ends; its final state and tags."""
        client = self.client

        def finished() -> bool:
            self.assert_alive()
            return client.get_run_status(run_id) in TERMINAL_RUN_STATUSES

        wait_until(finished, timeout, f"run {run_id} to finish", interval=1.0)
        return self.run(run_id)

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """A backfill's status, partitions, error and runs."""
        found = self.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        return dict(expect_type(found, "PartitionBackfill"))

    def timeline(self, run_id: str) -> str:
        """When the run was queued, started, ran each step and ended, in seconds from its first event."""
        events = self.graphql(TIMELINE, runId=run_id)["logsForRun"].get("events", [])
        marks = [e for e in events if e["__typename"] in TIMELINE_EVENTS]
        if not marks:
            return "no events"
        first = float(marks[0]["timestamp"]) / 1000
        return ", ".join(
            f"{float(e['timestamp']) / 1000 - first:.1f}s {e['__typename'].removesuffix('Event')}"
            + (f"[{e['stepKey']}]" if e.get("stepKey") else "")
            for e in marks
        )

    def failure_summary(self, run_id: str) -> str:
        """The failed steps of a run and their messages, for assertion messages."""
        events = self.graphql(FAILED_STEPS, runId=run_id)["logsForRun"].get("events", [])
        failures = [f"{e['stepKey']}: {e['error']['message']}" for e in events if e.get("stepKey")]
        return "; ".join(failures) or "no failed step recorded (see the daemon log)"


@dataclass
class LaunchedBackfill:
    """A backfill launched through GraphQL, and the run the daemon made for it, once that run ended."""

    backfill_id: str
    keys: list[str]
    run: dict[str, Any]
    seconds: float


def launch_main_job_backfill(graphql: GraphQL, keys: list[str]) -> str:
    """``launchPartitionBackfill`` of ``delitos_main_job`` over ``keys``, as the UI's backfill dialog sends it."""
    repositories = expect_type(graphql(PARTITION_SETS)["repositoriesOrError"], "RepositoryConnection")
    selectors = [
        {
            "partitionSetName": partition_set["name"],
            "repositorySelector": {"repositoryName": repo["name"], "repositoryLocationName": repo["location"]["name"]},
        }
        for repo in repositories["nodes"]
        for partition_set in repo["partitionSets"]
        if partition_set["pipelineName"] == MAIN_JOB
    ]
    assert len(selectors) == 1, f"expected one partition set of {MAIN_JOB}, found {selectors}"
    params = {
        "selector": selectors[0],
        "partitionNames": keys,
        "title": f"processes test: {keys[0]} → {keys[-1]}",
        "tags": [{"key": "delitos/test", "value": "graphql-backfill"}],
        "runConfigData": IN_PROCESS,
    }
    launched = graphql(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
    return expect_type(launched, "LaunchBackfillSuccess")["backfillId"]


def start_webserver(env: dict[str, str], home: Path, port: int) -> Process:
    """``dagster-webserver`` on loopback with the repository's workspace, as in the README."""
    args = [venv_tool("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    return Process("dagster-webserver", args, env, REPO_ROOT, home / "webserver.log").start()


def start_daemon(env: dict[str, str], home: Path) -> Process:
    """``dagster-daemon run``: dequeues runs, runs backfills, retries crashed runs, monitors runs."""
    args = [venv_tool("dagster-daemon"), "run", "-w", "workspace.yaml"]
    return Process("dagster-daemon", args, env, REPO_ROOT, home / "daemon.log").start()


def wait_for_location(graphql: GraphQL, webserver: Process) -> None:
    """Until the webserver answers and the code location has loaded (an error if it failed to load)."""

    def loaded() -> bool:
        webserver.assert_alive()
        try:
            workspace = graphql(WORKSPACE_QUERY)["workspaceOrError"]
        except (OSError, GraphQLError, ValueError):
            return False  # not listening yet (requests' errors are OSErrors), or still starting
        entries = workspace.get("locationEntries") or []
        for entry in entries:
            error = entry.get("locationOrLoadError") or {}
            if error.get("__typename") == "PythonError":
                raise RuntimeError(f"code location {entry['name']} failed to load: {error['message']}")
        return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)

    wait_until(loaded, STARTUP_TIMEOUT, "dagster-webserver and its code location", interval=0.5)


def stop_automation(graphql: GraphQL) -> list[str]:
    """Stop every sensor and schedule before the daemon starts: the tests launch every run themselves.

    Sensors and schedules declared ``RUNNING`` by default would otherwise tick as soon as the daemon
    loads the code and launch runs of their own into the tests' instance.
    """
    stopped = []
    repositories = expect_type(graphql(AUTOMATION_QUERY)["repositoriesOrError"], "RepositoryConnection")
    for repository in repositories["nodes"]:
        for sensor in repository["sensors"]:
            if sensor["sensorState"]["status"] == "RUNNING":
                result = graphql(STOP_SENSOR, id=sensor["sensorState"]["id"])["stopSensor"]
                expect_type(result, "StopSensorMutationResult")
                stopped.append(f"sensor {sensor['name']}")
        for schedule in repository["schedules"]:
            if schedule["scheduleState"]["status"] == "RUNNING":
                result = graphql(STOP_SCHEDULE, id=schedule["scheduleState"]["id"])["stopRunningSchedule"]
                expect_type(result, "ScheduleStateResult")
                stopped.append(f"schedule {schedule['name']}")
    return stopped


def wait_for_daemons(graphql: GraphQL, daemon: Process) -> None:
    """Until the daemons that launch queued runs and backfills have sent a heartbeat."""
    needed = {"QUEUED_RUN_COORDINATOR", "BACKFILL"}

    def healthy() -> bool:
        daemon.assert_alive()
        statuses = graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return needed <= {status["daemonType"] for status in statuses if status["healthy"]}

    wait_until(healthy, STARTUP_TIMEOUT, "dagster-daemon's heartbeats", interval=1.0)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, on a free loopback port; stopped and removed afterwards."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="package")
def platform_emulator() -> Iterator[EmulatorServer]:
    """The platform's own emulator over the shipped snapshot, its admin endpoint on (revisions, faults)."""
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, host="127.0.0.1", port=0, admin=True) as server:
        yield server


@pytest.fixture(scope="package")
def alert_receiver() -> Iterator[Receiver]:
    """The webhook the platform's alerts go to."""
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="package")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    platform_emulator: EmulatorServer,
    alert_receiver: Receiver,
) -> Iterator[Platform]:
    """Webserver + daemon over the emulator, on the production ``deploy/dagster.yaml`` and Postgres; stopped after.

    The main job's backfill over 2019-01 → 2019-04 is launched between the two: the backfill daemon passes
    every 30 s and its first pass, at start-up, submits the run at once (see ``main_job_backfill``).
    """
    home = tmp_path_factory.mktemp("processes_dagster_home")
    shutil.copyfile(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    data_dir = tmp_path_factory.mktemp("processes_data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **postgres.environment(),
        "DAGSTER_HOME": str(home),
        "DELITOS_ENV": "local",
        "DELITOS_DATA_DIR": str(data_dir),
        "SOCRATA_URL": platform_emulator.url,
        "DELITOS_ALERT_WEBHOOK_URL": f"{alert_receiver.url}/hooks/delitos",
        "DAGSTER_WEBSERVER_URL": url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DELITOS_WAREHOUSE_PATH", None)
    graphql = GraphQL(url)
    started = time.monotonic()
    webserver = start_webserver(env, home, port)
    daemon = Process("dagster-daemon", [], env, REPO_ROOT, home / "daemon.log")
    try:
        wait_for_location(graphql, webserver)
        stop_automation(graphql)
        backfill_id = launch_main_job_backfill(graphql, BACKFILL_MONTHS)
        daemon = start_daemon(env, home)
        wait_for_daemons(graphql, daemon)
        print(f"webserver + daemon ready in {time.monotonic() - started:.1f} s at {url}")
        yield Platform(
            url, port, home, data_dir, env, platform_emulator, alert_receiver, webserver, daemon, backfill_id
        )
    finally:
        daemon.stop()
        webserver.stop()
        keep_logs(home)


@pytest.fixture(scope="package")
def main_job_backfill(platform: Platform) -> LaunchedBackfill:
    """The main job's backfill (launched by ``platform``) once the daemon's run for it has ended.

    Shared by the backfill tests and the UI tests (which need every layer, gold included, materialized).
    The daemon marks the backfill completed on a later pass, which ``test_backfill_graphql`` waits for last.
    """
    started = time.monotonic()
    backfill_id = platform.backfill_id

    def submitted() -> dict[str, Any] | None:
        platform.assert_alive()
        backfill = platform.backfill(backfill_id)
        if backfill["status"] in BACKFILL_DONE and not backfill["runs"]:
            error = (backfill.get("error") or {}).get("message", "")
            raise AssertionError(f"backfill {backfill_id} ended {backfill['status']} without a run: {error}")
        return backfill["runs"][0] if backfill["runs"] else None

    run = wait_until(submitted, RUN_TIMEOUT, f"backfill {backfill_id} to submit a run", interval=1.0)
    run = platform.wait_for_run(run["runId"], RUN_TIMEOUT - (time.monotonic() - started))
    seconds = time.monotonic() - started
    print(f"backfill {backfill_id}: run {run['status']} after {seconds:.1f} s: {platform.timeline(run['runId'])}")
    return LaunchedBackfill(backfill_id, BACKFILL_MONTHS, run, seconds)


def keep_logs(home: Path) -> None:
    """Copy the processes' logs next to the screenshots, for a look after a failure."""
    target = ARTIFACTS / "processes"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("webserver.log", "daemon.log"):
        if (home / name).exists():
            shutil.copyfile(home / name, target / name)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> HeadlessChromium:
    """Headless Chromium (Debian's package, installed with apt-get when missing: no skip) and a fresh profile."""
    return HeadlessChromium(binary=ensure_chromium(), profile=tmp_path_factory.mktemp("chromium_profile"))
