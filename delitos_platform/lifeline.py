"""Processes that end with the process they work for: a step with its run worker, dbt with its step.

Dagster starts a run's steps as child processes of the run worker, and dagster-dbt starts ``dbt`` as a child of
the step. A killed parent does not take its children along: a step went on extracting and wrote its events after
its run was failed, and dbt reported success a second after the run was marked FAILURE (issue 12). Linux can
signal a process when its parent ends (``prctl(PR_SET_PDEATHSIG)``); a step asks for it for itself, and ``dbt``
(started by dagster-dbt, which offers no hook into its start) is watched by a small guardian that asks for it
instead and interrupts dbt when the step is gone. Elsewhere than Linux these do nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
DBT_GRACE_SECONDS = 10.0  # dbt cancels its open queries on an interrupt; then it is killed


def end_with_parent(parent: int, sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent (pid ``parent``) ends; at once if it has.

    False where that is not possible.
    """
    if not sys.platform.startswith("linux"):
        return False
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent ended before the request (we were handed over): no signal would come
        os.kill(os.getpid(), sig)
    return True


def end_step_with_its_run() -> None:
    """In a process started by ``multiprocessing`` (a step under its run worker), end when the parent ends.

    With the in-process executor the step runs in the run worker itself, started the same way by the code server
    that launched it and watches it: it then ends with that code server (under systemd or Kubernetes they end
    together anyway), and run monitoring's maximum runtime fails and retries its run. A process started otherwise
    (a CLI run, ``delitos demo``) is left alone: its parent is a shell, and a run started with ``nohup`` must
    outlive it.
    """
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        end_with_parent(parent.pid)


@contextlib.contextmanager
def guarded(child: subprocess.Popen) -> Iterator[None]:
    """While the block runs, a guardian interrupts ``child`` (then kills it) if this process dies first.

    A "child" that is this process itself (dbt run in-process) needs none: it dies with it.
    """
    if not sys.platform.startswith("linux") or child.pid == os.getpid():
        yield
        return
    guardian = subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid()), str(child.pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a signal to the step's group (Ctrl-C) reaches dbt, not the guardian
    )
    try:
        yield
    finally:
        guardian.kill()
        guardian.wait()


def _guard(parent: int, child: int) -> None:
    """The guardian: wait until ``parent`` ends (SIGTERM from the kernel), then interrupt and kill ``child``."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # kept pending for sigwait, never lost
    if not end_with_parent(parent, signal.SIGTERM):
        return  # no signal would ever come: do not linger
    signal.sigwait({signal.SIGTERM})
    _stop(child)


def _stop(pid: int) -> None:
    """SIGINT (dbt cancels its queries and exits), SIGKILL if it still runs after the grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + DBT_GRACE_SECONDS
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # ProcessLookupError once it is gone
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    _guard(int(sys.argv[1]), int(sys.argv[2]))
