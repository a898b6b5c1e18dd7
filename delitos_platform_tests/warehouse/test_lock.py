"""The claim on the embedded warehouse: one run at a time, named to whoever waits, never left behind by a crash."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from delitos_platform.warehouse.lock import WarehouseBusyError, WarehouseLock

# A step of run ``run-a`` in a process of its own: it takes the warehouse for the run whose main process is
# argv[2], and ends (as a step of Dagster's multiprocess executor does) without the run having ended.
STEP = """
import sys
from delitos_platform.warehouse.lock import WarehouseLock
lock = WarehouseLock(sys.argv[1])
lock.claim("run-a", owner=int(sys.argv[2]))
lock.release("run-a")
"""
# A run holding the warehouse in its own process for argv[3] seconds (it says so in the file argv[2]).
HOLDER = """
import sys, time
from pathlib import Path
from delitos_platform.warehouse.lock import WarehouseLock
WarehouseLock(sys.argv[1]).claim("run-a")
Path(sys.argv[2]).touch()
time.sleep(float(sys.argv[3]))
"""


@pytest.fixture
def lock(tmp_path: Path) -> WarehouseLock:
    """The claim on a warehouse file of this test's own."""
    return WarehouseLock(tmp_path / "warehouse.duckdb")


def test_a_run_enters_its_own_claim_again_and_another_run_is_refused_naming_it(lock):
    lock.claim("run-a")
    lock.claim("run-a")  # a second step of the same run, in the same process: no wait on itself

    with pytest.raises(WarehouseBusyError) as refused:
        lock.claim("run-b")

    assert str(refused.value).startswith(f"The warehouse {lock.database} is held by run run-a (process ")
    assert str(refused.value).endswith(": nothing was changed; run again once that run has ended")
    lock.release("run-a")
    assert lock.holder() is not None and lock.holder().run_id == "run-a"  # the first step still holds it
    lock.release("run-a")
    assert lock.holder() is None
    lock.claim("run-b")
    lock.release("run-b")


def test_a_claim_outlives_the_step_that_took_it_while_the_runs_main_process_lives(lock):
    main = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        subprocess.run([sys.executable, "-c", STEP, str(lock.database), str(main.pid)], check=True)

        with pytest.raises(WarehouseBusyError, match=f"held by run run-a \\(process {main.pid}, "):
            lock.claim("run-b")  # between two steps of run-a
        subprocess.run([sys.executable, "-c", STEP, str(lock.database), str(main.pid)], check=True)  # its next step
        main.kill()  # the run's main process dies (killed, or its run ended)
        main.wait()

        lock.claim("run-b")
    finally:
        main.kill()
    assert lock.holder().run_id == "run-b"
    lock.release("run-b")


def test_a_claim_whose_run_has_ended_is_free_although_its_process_lives(lock):
    main = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        subprocess.run([sys.executable, "-c", STEP, str(lock.database), str(main.pid)], check=True)

        lock.claim("run-b", run_ended=lambda run_id: run_id == "run-a")
    finally:
        main.kill()
        main.wait()
    lock.release("run-b")


def test_a_waiting_run_says_once_for_which_run_and_goes_on_when_it_ends(lock, tmp_path):
    ready = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock.database), str(ready), "1.5"])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    said: list[str] = []

    lock.claim("run-b", wait_seconds=30, log=said.append)

    holder.wait()
    assert len(said) == 2, said
    assert said[0].startswith(f"Waiting for the warehouse {lock.database}: run run-a (process {holder.pid}, for ")
    assert said[0].endswith("holds it; waiting up to 30 s")
    assert said[1].startswith(f"Took the warehouse {lock.database} after waiting ")
    lock.release("run-b")


def test_a_holder_killed_while_holding_leaves_the_warehouse_free_at_once(lock, tmp_path):
    ready = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock.database), str(ready), "60"])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    assert lock.holder().run_id == "run-a"

    holder.kill()
    holder.wait()

    assert lock.holder() is None
    lock.claim("run-b")  # no wait allowed, none needed
    lock.release("run-b")
