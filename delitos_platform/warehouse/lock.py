"""One writer for the embedded warehouse: a claim on the DuckDB file that one run holds at a time.

A DuckDB file has one writer process; a second one fails on its file lock (and dagster-duckdb retries that for
up to 102 s without a word). Runs therefore take the warehouse as a whole, before any work, through a lock file
beside the database (``warehouse.duckdb.lock``):

- an OS lock (``fcntl.flock``) on it, held by the process working for the holding run; the OS drops it when
  that process ends, killed or not, so a crash never leaves the warehouse locked;
- its content names the holder, for the messages of whoever waits: the run id, the process whose life bounds
  the claim (its id and start time, which tells a reused process id apart) and since when.

When each step of a run is a process of its own (Dagster's multiprocess executor), the claim outlives each step
through that record: it names the run's main process, and it lasts while that process lives and its run has
not ended. Claims are re-entrant per run within a process (a second ``flock`` on a new descriptor of the same
file would wait on the first).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

# How often a waiting run looks again; a claim taken meanwhile by another run is named in a new log line.
POLL_SECONDS = 0.2
# How long a claim may look taken only for a moment: its taker is writing its name, or is a process of our own
# run letting go; beyond this, even a claim that must not wait fails.
MOMENT_SECONDS = 2.0


# The holder of a claim whose taker has not written its name yet.
UNNAMED = "(a run just starting)"


@dataclass(frozen=True)
class Holder:
    """The run that holds the warehouse, and the process whose life bounds its claim."""

    run_id: str
    pid: int
    pid_started: int | None
    since: float

    def describe(self) -> str:
        """E.g. ``run 5f1c…-… (process 4242, for 35 s)``."""
        return f"run {self.run_id} (process {self.pid}, for {time.time() - self.since:.0f} s)"

    def alive(self) -> bool:
        """Its process still runs (the same process, not another that got its id)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, someone else's
        status = _proc_stat(self.pid)
        if status is None:
            return True  # no /proc: the process id is all there is to go by
        state, started = status
        # A zombie has ended: only its parent has not collected it yet (a killed run worker under a code server).
        return state != "Z" and (self.pid_started is None or started == self.pid_started)


class WarehouseBusyError(Exception):
    """Another run holds the warehouse (one sentence naming it)."""

    def __init__(self, database: Path, holder: Holder, waited: float) -> None:
        after = f" after waiting {waited:.0f} s" if waited >= 1 else ""
        super().__init__(
            f"The warehouse {database} is held by {holder.describe()}{after}: nothing was changed; "
            "run again once that run has ended"
        )
        self.holder = holder


@dataclass
class _Held:
    descriptor: int
    run_id: str
    owner: int
    count: int = 1


# Claims this process holds, by lock file: re-entered by the same run, never flocked twice.
_HELD: dict[Path, _Held] = {}
_HELD_GUARD = threading.Lock()


class WarehouseLock:
    """The claim on one DuckDB file."""

    def __init__(self, database: str | os.PathLike[str]) -> None:
        self.database = Path(database)
        self.path = self.database.with_name(self.database.name + ".lock")

    def claim(
        self,
        run_id: str,
        owner: int | None = None,
        wait_seconds: float = 0.0,
        log: Callable[[str], None] | None = None,
        run_ended: Callable[[str], bool] | None = None,
    ) -> None:
        """Take the warehouse for ``run_id`` (or enter it again), waiting up to ``wait_seconds``, else fail.

        ``owner`` is the process whose life bounds the claim (default: this one); ``run_ended`` tells whether a
        holder's run has ended although its process still lives. The wait is logged once per holder: which run
        holds it and for how long.
        """
        owner = owner or os.getpid()
        with _HELD_GUARD:
            held = _HELD.get(self.path)
            if held is not None and held.run_id == run_id:
                held.count += 1
                return
        started, told = time.monotonic(), None
        while True:
            holder = self._try_claim(run_id, owner, run_ended or (lambda _: False))
            if holder is None:
                if told is not None and log is not None:
                    log(f"Took the warehouse {self.database} after waiting {time.monotonic() - started:.1f} s")
                return
            waited = time.monotonic() - started
            moment = holder.run_id in (run_id, UNNAMED)
            if waited >= wait_seconds + (MOMENT_SECONDS if moment else 0):
                raise WarehouseBusyError(self.database, holder, waited)
            if log is not None and not moment and holder.run_id != told:
                log(
                    f"Waiting for the warehouse {self.database}: {holder.describe()} holds it; "
                    f"waiting up to {wait_seconds:.0f} s"
                )
                told = holder.run_id
            time.sleep(POLL_SECONDS)

    def release(self, run_id: str) -> None:
        """Let go of one claim of ``run_id``; the last one unlocks (and, if this process bounded it, forgets it)."""
        with _HELD_GUARD:
            held = _HELD.get(self.path)
            if held is None or held.run_id != run_id:
                return
            held.count -= 1
            if held.count:
                return
            del _HELD[self.path]
        try:
            if held.owner == os.getpid():
                os.ftruncate(held.descriptor, 0)
        finally:
            os.close(held.descriptor)  # the OS lock goes with the last descriptor

    def holder(self) -> Holder | None:
        """Who holds the warehouse now (None when it is free)."""
        descriptor = self._open()
        try:
            if _flock(descriptor):
                recorded = _read(descriptor)
                return recorded if recorded is not None and recorded.alive() else None
            return _read(descriptor)
        finally:
            os.close(descriptor)

    def _try_claim(self, run_id: str, owner: int, run_ended: Callable[[str], bool]) -> Holder | None:
        """None once claimed; else who holds it."""
        descriptor = self._open()
        if not _flock(descriptor):
            recorded = _read(descriptor)
            os.close(descriptor)
            # Unnamed yet: its holder took the OS lock a moment ago and is writing its name.
            return recorded or Holder(UNNAMED, 0, None, time.time())
        recorded = _read(descriptor)
        if recorded is not None and recorded.run_id != run_id and recorded.alive() and not run_ended(recorded.run_id):
            os.close(descriptor)  # a run between two of its steps: its main process still holds the claim
            return recorded
        since = recorded.since if recorded is not None and recorded.run_id == run_id else time.time()
        _write(descriptor, Holder(run_id, owner, process_start(owner), since))
        with _HELD_GUARD:
            _HELD[self.path] = _Held(descriptor, run_id, owner)
        return None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks after boot, Linux ``/proc``); None where that is not known."""
    status = _proc_stat(pid)
    return status[1] if status is not None else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """A process's state (``R``, ``S``, ``Z``...) and start time, from Linux ``/proc``; None where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name: field 3 (state) onwards
    return fields[0], int(fields[19])  # fields 3 and 22


def _flock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _read(descriptor: int) -> Holder | None:
    try:
        return Holder(**json.loads(os.pread(descriptor, 4096, 0)))
    except (ValueError, TypeError):
        return None  # empty (free) or being written


def _write(descriptor: int, holder: Holder) -> None:
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(asdict(holder)).encode(), 0)
