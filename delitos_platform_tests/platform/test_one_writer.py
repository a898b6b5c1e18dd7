"""One writer for the embedded warehouse: runs that meet on the DuckDB file wait for each other or fail at once.

Runs here are real ``dagster asset materialize`` processes (one with a process per step, one in-process) over the
emulator, sharing the test session's Dagster instance; a run "caught holding the warehouse" is one whose bronze
load hangs, warehouse held, until the test lets it go (``hanging_defs.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.environment import build_resources
from delitos_platform.lake.storage import data_key
from delitos_platform.partitions import range_tags
from delitos_platform_tests.lake.helpers import failure_message, rows_per_month
from delitos_platform_tests.platform.helpers import ASSETS, GOLD_TABLES, SILVER_TABLES, query
from delitos_platform_tests.processes.helpers import REPO_ROOT, Process, wait_until

LAKE_AND_BRONZE = "lake/delitos,bronze/delitos"
# The whole chain: dbt's tests of silver compare it with gold, so silver alone fails on a new warehouse.
WHOLE_CHAIN = ",".join(
    ["lake/delitos", "bronze/delitos", *(f"silver/{t}" for t in SILVER_TABLES), *(f"gold/{t}" for t in GOLD_TABLES)]
)
IN_PROCESS = json.dumps({"execution": {"config": {"in_process": {}}}})
HANGING_DEFS = "delitos_platform_tests.platform.hanging_defs"
RUN_TIMEOUT = 240.0
WAITING = "Waiting for the warehouse"
# What DuckDB (and dbt through it) says when a second process opens a file another one writes.
LOCK_ERRORS = ("Could not set lock", "Conflicting lock")
RANGE_2019 = range_tags("2019-01-01", "2019-02-01")
RANGE_2020 = range_tags("2020-01-01", "2020-02-01")


@dataclass
class Platform:
    """Where the runs of a test put their lake and warehouse, and the environment they run with."""

    data_dir: Path
    env: dict[str, str]

    @property
    def warehouse(self) -> Path:
        """The embedded DuckDB file."""
        return self.data_dir / "warehouse.duckdb"

    def materialize(self, name: str, select: str, first: str, last: str, *extra: str, **env: str) -> Process:
        """``dagster asset materialize`` over ``first`` → ``last`` as one run, started in its own process."""
        args = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", HANGING_DEFS]
        args += ["--select", select, "--partition-range", f"{first}...{last}", *extra]
        log = self.data_dir / f"{name}.log"
        return Process(name, args, {**self.env, **env}, REPO_ROOT, log).start()

    def holding(self, name: str, select: str, first: str, last: str, month: str, *extra: str) -> tuple[Process, Path]:
        """A run caught in its bronze load of ``month``, warehouse held; it goes on once the returned file exists."""
        ready, release = self.data_dir / f"{name}.ready", self.data_dir / f"{name}.release"
        hang = {"DELITOS_TEST_HANG_MONTH": month, "DELITOS_TEST_READY": str(ready)}
        run = self.materialize(name, select, first, last, *extra, **hang, DELITOS_TEST_RELEASE=str(release))
        wait_until(lambda: ready.exists() or run.assert_alive(), RUN_TIMEOUT, f"{name} to hold the warehouse", 0.1)
        return run, release


@pytest.fixture
def platform(tmp_path: Path, emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """The embedded platform's settings over the emulator, in this process and for the runs it starts."""
    settings = {"DELITOS_ENV": "local", "DELITOS_DATA_DIR": str(tmp_path), "SOCRATA_URL": emulator.url}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DELITOS_WAREHOUSE_PATH", raising=False)
    yield Platform(tmp_path, {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"})


def run_id_of(first: str, last: str) -> str:
    """The id of the one run over ``first`` → ``last`` in the test session's instance."""
    tags = range_tags(first, last)
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(tags=tags))
    return run.run_id


def finish(process: Process, timeout: float = RUN_TIMEOUT) -> str:
    """Wait for a run's process to end; its output (the test fails with it when the run failed)."""
    assert process.popen is not None
    try:
        code = process.popen.wait(timeout=timeout)
    finally:
        process.stop()
    output = process.log.read_text(errors="replace")
    assert code == 0, f"{process.name} exited with {code}:\n{process.tail(60)}"
    return output


def months_counts(database: Path, table: str) -> dict[str, int]:
    """Rows per month of a warehouse table (``mes`` in bronze, ``fecha_hecho`` truncated in silver)."""
    column = "mes" if table.startswith("bronze") else "date_trunc('month', fecha_hecho)"
    rows = query(database, f"SELECT strftime({column}, '%Y-%m-01'), count(*) FROM {table} GROUP BY 1")
    return dict(rows)


def test_two_overlapping_runs_both_end_with_every_month_the_second_waiting_once_for_the_first(
    platform: Platform, snapshot_rows
):
    """2019-01 → 2019-04 and 2019-03 → 2019-06 at once: both succeed, one after the other.

    The second run meets the first while it loads bronze: it waits before extracting anything, says once for which
    run, and keeps waiting while the first goes on to dbt; silver ends with every month of both.
    """
    first_run, release = platform.holding(
        "first", WHOLE_CHAIN, "2019-01-01", "2019-04-01", "2019-02-01", "--config-json", IN_PROCESS
    )
    second_run = platform.materialize("second", WHOLE_CHAIN, "2019-03-01", "2019-06-01", "--config-json", IN_PROCESS)
    try:
        wait_until(lambda: WAITING in second_run.log.read_text(errors="replace"), 60.0, "the second run to wait")
    finally:
        release.touch()
    first, second = finish(first_run), finish(second_run)

    holder = run_id_of("2019-01-01", "2019-04-01")
    waits = [line for line in second.splitlines() if WAITING in line]
    assert len(waits) == 1, waits
    assert f"run {holder} (process {first_run.popen.pid}, " in waits[0]
    assert not any(error in first + second for error in LOCK_ERRORS)
    months = [f"2019-0{month}-01" for month in range(1, 7)]
    expected = {month: rows_per_month(snapshot_rows)[month] for month in months}
    assert months_counts(platform.warehouse, "bronze.delitos") == expected
    assert months_counts(platform.warehouse, "silver.stg_delitos") == expected
    # The second run extracted only once it had the warehouse: after the first run's last step ended.
    second_extracted = (platform.data_dir / "lake" / data_key("2019-06-01")).stat().st_mtime
    with dg.DagsterInstance.get() as instance:
        first_record = instance.get_run_record_by_id(holder)
    assert first_record is not None and first_record.end_time is not None
    assert second_extracted > first_record.end_time


def test_a_run_meeting_the_holder_fails_at_once_naming_it_and_a_killed_holder_leaves_the_warehouse_free(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, snapshot_rows
):
    """A run (a process per step) caught in its bronze load holds the warehouse; with no wait allowed, another run
    and `delitos demo` fail at once in one sentence naming it, having written nothing. Killed (SIGKILL), the holder
    leaves the warehouse to the next run at once."""
    holder_run, _ = platform.holding("holder", LAKE_AND_BRONZE, "2019-01-01", "2019-02-01", "2019-02-01")
    holder = run_id_of("2019-01-01", "2019-02-01")
    monkeypatch.setenv("DELITOS_WAREHOUSE_WAIT_SECONDS", "0")
    demo_args = ["--data-dir", str(platform.data_dir), "--dagster-home", str(platform.data_dir / "demo_home")]
    try:
        started = time.monotonic()
        refused = dg.materialize(ASSETS, resources=build_resources(), tags=RANGE_2020, raise_on_error=False)
        seconds = time.monotonic() - started
        demo = subprocess.run(
            [sys.executable, "-m", "delitos_platform.commands", "demo", *demo_args],
            cwd=REPO_ROOT,
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        assert holder_run.popen is not None
        os.killpg(holder_run.popen.pid, signal.SIGKILL)  # the run's main process and its step's
        holder_run.popen.wait(timeout=30)

    message = failure_message(refused)
    # Named with the run's main process (the CLI), not the step's: the claim is the run's, from step to step.
    main_process = holder_run.popen.pid
    assert message.startswith(f"The warehouse {platform.warehouse} is held by run {holder} (process {main_process}, ")
    assert message.endswith("nothing was changed; run again once that run has ended")
    assert "\n" not in message
    assert seconds < 30
    assert (demo.returncode, demo.stdout) == (1, ""), demo.stdout + demo.stderr
    assert demo.stderr.startswith(f"delitos demo: The warehouse {platform.warehouse} is held by run {holder} ")
    assert demo.stderr.count("\n") == 1 and "Traceback" not in demo.stderr
    assert not (platform.data_dir / "demo_home").exists()
    assert not [path for path in (platform.data_dir / "lake").rglob("*") if "2020-" in str(path)]

    lake_and_bronze = [LAKE_DELITOS, BRONZE_DELITOS]
    after = dg.materialize(
        ASSETS, resources=build_resources(), tags=RANGE_2019, selection=lake_and_bronze, raise_on_error=False
    )

    assert after.success
    expected = {month: rows_per_month(snapshot_rows)[month] for month in ("2019-01-01", "2019-02-01")}
    assert months_counts(platform.warehouse, "bronze.delitos") == expected
