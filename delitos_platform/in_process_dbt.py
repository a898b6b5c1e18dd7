"""dbt run by its Python entry point (``dbtRunner``) inside the step's process, behind dagster-dbt's invocation.

A dbt process costs an interpreter start and dbt's imports: three of the five seconds of a one-month re-sync's
``dbt build`` on this project (``benchmarks/backfill_platform.py``). In the step's process dbt is already imported
(dagster-dbt imports it), and it ends with the step: killed with it, it needs no guardian.

dagster-dbt 0.29 starts dbt with ``subprocess.Popen`` and offers no other hook. For the one call that starts it,
``dbt_in_this_process`` gives its invocation module a ``subprocess`` whose ``Popen`` is ``InProcessDbt``: the part of
``Popen`` that dagster-dbt uses, with dbt run in a thread. Everything else (the arguments and selection, the target
folder, the event stream and its Dagster events, errors) stays dagster-dbt's own.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from dagster_dbt.core import dbt_cli_invocation

# The levels of the events dbt prints on its standard output (its default --log-level info): what dagster-dbt reads.
PRINTED_LEVELS = frozenset({"info", "warn", "error"})
# dbt's printing off (its events reach dagster-dbt through a callback), its debug log file kept (dbt.log).
QUIET_BUT_LOGGED = ("--log-level", "none", "--log-level-file", "debug")
# dbtRunner's result as the exit code dbt's CLI would give: success, a node failed, dbt itself failed.
EXIT_SUCCESS, EXIT_NODE_FAILED, EXIT_DBT_FAILED = 0, 1, 2


@contextlib.contextmanager
def dbt_in_this_process() -> Iterator[None]:
    """dagster-dbt's invocations started inside the block run dbt in this process (``InProcessDbt``)."""
    dbt_cli_invocation.subprocess = _InProcessSubprocess  # type: ignore[assignment]
    try:
        yield
    finally:
        dbt_cli_invocation.subprocess = subprocess


class InProcessDbt:
    """``dbt`` run by its Python entry point (``dbtRunner``) in a thread of this process, seen through the part of
    ``subprocess.Popen`` that dagster-dbt uses: ``args``, ``stdout`` (dbt's JSON log lines), ``wait``, ``returncode``,
    ``send_signal`` and ``pid``.

    A dbt process costs an interpreter start and dbt's imports, seconds on every run; in this process dbt is already
    imported (dagster-dbt imports it) and dies with the step, so it needs no guardian either. dbt reads the
    environment and the working directory dagster-dbt gives it, which are the process's own while it runs: it
    starts when dagster-dbt first reads its output (by then the caller's own changes to the environment are
    undone), one invocation at a time (``_ONE_INVOCATION``), and only the variables it changed are put back.
    """

    _ONE_INVOCATION = threading.Lock()

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str], **_: object) -> None:
        self.args = list(args)
        self.pid = os.getpid()
        self.returncode: int | None = None
        readable, writable = os.pipe()
        self.stdout = _OutputStartingDbt(os.fdopen(readable, "rb"), self._start)
        self._lines = os.fdopen(writable, "wb")
        self._thread = threading.Thread(target=self._invoke, args=(dict(env), cwd), name="dbt", daemon=True)
        self._started = threading.Lock()

    def _start(self) -> None:
        with self._started:
            if self._thread.ident is None:
                self._thread.start()

    def _invoke(self, env: dict[str, str], cwd: str | os.PathLike[str]) -> None:
        from dbt.cli.main import dbtRunner

        try:
            with self._ONE_INVOCATION, exact_environment(env), contextlib.chdir(cwd):
                result = dbtRunner(callbacks=[self._print]).invoke([*self.args[1:], *QUIET_BUT_LOGGED])
                _release_embedded_warehouse()
            if result.success:
                self.returncode = EXIT_SUCCESS
            else:
                self.returncode = EXIT_NODE_FAILED if result.exception is None else EXIT_DBT_FAILED
                if result.exception is not None:
                    self._print_error(f"Encountered an error:\n{result.exception}")
        except BaseException as error:
            self.returncode = EXIT_DBT_FAILED
            self._print_error(f"Encountered an error:\n{error}")
        finally:
            self._lines.close()

    def _print(self, message: object) -> None:
        from dbt_common.events.functions import msg_to_json

        # dbt keeps its callbacks until its next invocation: an event fired after this one ended is not ours.
        if message.info.level in PRINTED_LEVELS and not self._lines.closed:  # type: ignore[attr-defined]
            self._lines.write(msg_to_json(message).encode() + b"\n")  # type: ignore[arg-type]
            self._lines.flush()

    def _print_error(self, text: str) -> None:
        line = {"info": {"level": "error", "msg": text, "name": "MainEncounteredError"}, "data": {}}
        self._lines.write(json.dumps(line).encode() + b"\n")

    def wait(self, timeout: float | None = None) -> int | None:
        """dbt's exit code once it has ended (None if it still runs after ``timeout`` seconds)."""
        self._start()
        self._thread.join(timeout)
        return self.returncode

    def poll(self) -> int | None:
        """dbt's exit code, or None while it runs."""
        return None if self._thread.is_alive() else self.returncode

    def send_signal(self, sig: int) -> None:
        """Cancel dbt's open queries (what dbt's CLI does on SIGINT, whatever ``sig``); its nodes then fail and it
        ends."""
        from dbt.adapters.factory import FACTORY

        for adapter in list(FACTORY.adapters.values()):
            with contextlib.suppress(Exception):
                adapter.cancel_open_connections()


class _OutputStartingDbt:
    """dbt's output as dagster-dbt reads it (a context manager over lines), starting dbt at the first read."""

    def __init__(self, lines: io.BufferedReader, start: Callable[[], None]) -> None:
        self._lines, self._start = lines, start

    @property
    def closed(self) -> bool:
        """Whether the output was closed (read to its end)."""
        return self._lines.closed

    def __enter__(self) -> _OutputStartingDbt:
        return self

    def __exit__(self, *exc: object) -> None:
        self._lines.close()

    def __iter__(self) -> Iterator[bytes]:
        self._start()
        return iter(self._lines)


class _InProcessSubprocess:
    """What dagster-dbt's invocation module reads from ``subprocess``, with ``Popen`` running dbt in this process."""

    Popen = InProcessDbt
    PIPE, STDOUT = -1, -2


@contextlib.contextmanager
def exact_environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` for the duration of the block; then the variables it changed are put back."""
    names = set(env) | set(os.environ)
    changed = {name: os.environ.get(name) for name in names if os.environ.get(name) != env.get(name)}
    _set_environment({name: env.get(name) for name in changed})
    try:
        yield
    finally:
        _set_environment(changed)


def extra_environment(variables: Mapping[str, str]) -> contextlib.AbstractContextManager[None]:
    """``variables`` set in ``os.environ`` for the duration of the block, then put back as they were."""
    return exact_environment({**os.environ, **variables})


def _set_environment(values: Mapping[str, str | None]) -> None:
    """Set each variable to its value, or remove it when the value is None."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _release_embedded_warehouse() -> None:
    """dbt-duckdb keeps its DuckDB file open for the life of the process: close it, so that the step (its checks and
    charts) and the next run can open it."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is not None:
        connections.DuckDBConnectionManager.close_all_connections()
        gc.collect()  # the closed environment's DuckDB handle goes, and with it the file
