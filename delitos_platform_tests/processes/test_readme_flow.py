"""The README's commands as a new user runs them, each a real process: ``delitos demo`` → ``delitos dev`` → the UI
shows the demo's run and the source sensor's first tick, which talks to our emulator on loopback only → a CLI
``delitos backfill`` appears as a run in the same instance → Ctrl-C stops the UI and its emulator.

The user's shell sets nothing (no ``DAGSTER_HOME``, ``SOCRATA_URL`` or ``DELITOS_*``): the folders are given as
flags, as they would be to keep a checkout clean. The default instance of ``dagster.yaml`` (SQLite) is used.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from delitos_platform_tests.processes.helpers import (
    REPO_ROOT,
    GraphQL,
    Process,
    expect_type,
    free_port,
    wait_until,
)

LOCATION = "delitos_platform.definitions"
SOURCE_SENSOR = {
    "repositoryLocationName": LOCATION,
    "repositoryName": "__repository__",
    "sensorName": "socrata_changes",
}
STEPS = ("lake__delitos", "bronze__delitos", "dbt_models")
DEMO_LINES = 40
RUNS = """
query { runsOrError { __typename ... on Runs { results { runId status tags { key value } } } } }
"""
SENSOR_TICKS = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 5) { status runIds skipReason error { message } } } }
  }
}
"""
WORKSPACE = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
# What a warning looks like in the terminal: Python's (``SupersessionWarning: …``) and Dagster's log lines.
WARNING_LINE = re.compile(r"Warning\b|\bWARNING\b")
SETTINGS = ("DAGSTER_HOME", "SOCRATA_URL", "DELITOS_ENV", "DELITOS_DATA_DIR", "DELITOS_WAREHOUSE_PATH")


def delitos(env: dict[str, str], *argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``delitos argv…`` as the console script runs it, in the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "delitos_platform.commands", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def readme_gold_queries() -> list[str]:
    """Every ``delitos sql "…"`` query the README shows an analyst."""
    readme = (REPO_ROOT / "README.md").read_text()
    return re.findall(r'delitos sql "([^"]+)"', readme)


def run_id_in(stdout: str) -> str:
    """The run id the command's last lines name."""
    found = re.search(r"^Run ([0-9a-f-]{36}) succeeded", stdout, flags=re.MULTILINE)
    assert found, stdout
    return found.group(1)


def runs(graphql: GraphQL) -> dict[str, str]:
    """Every run the UI lists: id → status."""
    results = expect_type(graphql(RUNS)["runsOrError"], "Runs")["results"]
    return {run["runId"]: run["status"] for run in results}


def location_loaded(graphql: GraphQL, dev: Process) -> bool:
    """The webserver answers and the code location loaded (an error if it failed to)."""
    dev.assert_alive()
    try:
        entries = graphql(WORKSPACE)["workspaceOrError"].get("locationEntries") or []
    except (OSError, ValueError, RuntimeError):
        return False
    for entry in entries:
        error = entry.get("locationOrLoadError") or {}
        assert error.get("__typename") != "PythonError", error.get("message")
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


def first_tick(graphql: GraphQL, dev: Process) -> dict[str, Any] | None:
    """The source sensor's first finished tick (the daemon evaluates it as it starts), once there is one."""
    dev.assert_alive()
    sensor = expect_type(graphql(SENSOR_TICKS, selector=SOURCE_SENSOR)["sensorOrError"], "Sensor")
    finished = [tick for tick in sensor["sensorState"]["ticks"] if tick["status"] != "STARTED"]
    return finished[-1] if finished else None


def test_demo_then_the_ui_then_a_backfill_share_one_instance_and_never_leave_loopback(tmp_path: Path):
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    env["PYTHONUNBUFFERED"] = "1"
    folders = ["--data-dir", str(tmp_path / "data"), "--dagster-home", str(tmp_path / "home")]

    marks = [("start", time.monotonic())]
    demo = delitos(env, "demo", *folders)
    marks.append(("demo", time.monotonic()))

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stderr == "", demo.stderr
    assert len(demo.stdout.splitlines()) <= DEMO_LINES, demo.stdout
    assert all(f"✓ {step} in " in demo.stdout for step in STEPS), demo.stdout
    demo_run = run_id_in(demo.stdout)
    assert "http://" not in demo.stdout.splitlines()[-1], demo.stdout  # no UI runs yet: the hint names none

    queries = readme_gold_queries()
    assert len(queries) >= 2 and all("gold." in query for query in queries), queries
    for query in queries:  # confined to the warehouse (no files, no extensions), gold still answers
        answer = delitos(env, "sql", query, "--data-dir", str(tmp_path / "data"), timeout=60)
        assert answer.returncode == 0 and answer.stderr == "", (query, answer.stderr)
        assert not answer.stdout.rstrip().endswith("(0 rows)"), (query, answer.stdout)

    port = free_port()
    graphql = GraphQL(f"http://127.0.0.1:{port}")
    dev = Process(
        "delitos dev",
        [sys.executable, "-m", "delitos_platform.commands", "dev", "--port", str(port), *folders],
        env,
        REPO_ROOT,
        tmp_path / "dev.log",
    ).start()
    try:
        wait_until(lambda: location_loaded(graphql, dev), 120, "delitos dev's UI and code location")
        assert runs(graphql).get(demo_run) == "SUCCESS"
        marks.append(("delitos dev up", time.monotonic()))

        backfill = delitos(env, "backfill", "--from", "2019-01", "--to", "2019-03", *folders)

        assert backfill.returncode == 0, backfill.stdout + backfill.stderr
        assert backfill.stderr == "" and "Source: our emulator at http://127.0.0.1:" in backfill.stdout
        backfill_run = run_id_in(backfill.stdout)
        assert runs(graphql).get(backfill_run) == "SUCCESS"
        # The hint names the UI that runs on this instance, on the port it was given.
        assert backfill.stdout.splitlines()[-1].strip() == f"http://127.0.0.1:{port}/runs/{backfill_run}", backfill
        marks.append(("backfill", time.monotonic()))

        # Looked at after the backfill: the daemon evaluated the sensor meanwhile, as it started.
        tick = wait_until(lambda: first_tick(graphql, dev), 90, "the source sensor's first tick", interval=1.0)
        # Our emulator holds what the demo synced: nothing changed, nothing requested, no error.
        assert tick["error"] is None and tick["runIds"] == [] and tick["status"] == "SKIPPED", tick
        # By now every service started and the daemon ran its first pass (where Dagster warns of a missing cursor).
        started = (tmp_path / "dev.log").read_text(errors="replace")
        assert not [line for line in started.splitlines() if WARNING_LINE.search(line)], started
        marks.append(("sensor tick", time.monotonic()))

        assert dev.popen is not None
        os.kill(dev.popen.pid, signal.SIGINT)  # Ctrl-C
        assert dev.popen.wait(timeout=60) == 0, dev.tail()
        marks.append(("Ctrl-C", time.monotonic()))
    finally:
        dev.stop(grace=45)
        print(", ".join(f"{name} {at - marks[0][1]:.0f} s" for name, at in marks[1:]))
    log = (tmp_path / "dev.log").read_text()
    served = re.search(r"Stopped; our emulator answered (\d+) requests", log)
    assert served and int(served.group(1)) >= 2, log[-3000:]  # the tick's metadata and its grouped versions
    assert "datos.gov.co" not in log.replace("https://www.datos.gov.co/d/", ""), log[-3000:]
