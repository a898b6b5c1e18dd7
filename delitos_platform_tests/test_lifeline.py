"""A step ends with its run worker, dbt with its step: real processes, the parent killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# The parent prints its child's pid, then waits to be killed.
STEP_UNDER_RUN_WORKER = """
import multiprocessing, time
from delitos_platform.lifeline import end_step_with_its_run

def step():
    end_step_with_its_run()
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=step)
    child.start()
    time.sleep(3)  # the child has started (spawn: a new interpreter) and asked for its signal
    print(child.pid, flush=True)
    time.sleep(60)
"""
# The run worker dies while its step is still starting (loading the code location, before the asset's body).
STEP_ORPHANED_WHILE_STARTING = """
import multiprocessing, time
from delitos_platform.lifeline import end_step_with_its_run

def step():
    time.sleep(4)
    end_step_with_its_run()
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=step)
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
"""
DBT_UNDER_STEP = """
import subprocess, time
from delitos_platform.lifeline import guarded

dbt = subprocess.Popen(["sleep", "60"])
with guarded(dbt):
    time.sleep(0.5)  # the guardian is watching
    print(dbt.pid, flush=True)
    time.sleep(60)
"""
PLAIN_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "from delitos_platform.lifeline import end_step_with_its_run as e; "
                          "import time; e(); time.sleep(60)"])
time.sleep(1.5)
print(child.pid, flush=True)
time.sleep(60)
"""


def kill_parent_of(script: str, folder: Path) -> int:
    """Run ``script`` from a file (spawn re-imports it), read its child's pid, SIGKILL the script; the child's pid."""
    path = folder / "parent.py"
    path.write_text(textwrap.dedent(script))
    parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())  # type: ignore[union-attr]
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    return child


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_if_running(pid: int) -> None:
    if running(pid):
        os.kill(pid, signal.SIGKILL)


def ends_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not running(pid)


def test_a_step_process_ends_when_its_run_worker_is_killed(tmp_path):
    step = kill_parent_of(STEP_UNDER_RUN_WORKER, tmp_path)

    try:
        assert ends_within(step, 5.0), f"step process {step} outlived its killed run worker"
    finally:
        kill_if_running(step)


def test_a_step_whose_run_worker_died_while_it_started_ends_when_it_asks(tmp_path):
    step = kill_parent_of(STEP_ORPHANED_WHILE_STARTING, tmp_path)
    try:
        assert ends_within(step, 10.0), f"step process {step} went on after its run worker died"
    finally:
        kill_if_running(step)


def test_dbt_is_interrupted_when_its_step_is_killed(tmp_path):
    dbt = kill_parent_of(DBT_UNDER_STEP, tmp_path)

    try:
        assert ends_within(dbt, 5.0), f"dbt ({dbt}) outlived its killed step"
    finally:
        kill_if_running(dbt)


def test_a_process_not_started_by_multiprocessing_outlives_its_parent(tmp_path):
    """A CLI run or ``delitos demo`` under ``nohup``: its parent, a shell, may end before it."""
    child = kill_parent_of(PLAIN_CHILD, tmp_path)
    try:
        assert not ends_within(child, 1.0)
    finally:
        kill_if_running(child)
