"""Real processes on loopback: start, wait for, stop; a small GraphQL client; headless Chromium; recounts."""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
T = TypeVar("T")


def venv_tool(name: str) -> str:
    """A console script of the project's virtualenv (``dagster``, ``dagster-webserver``...), else from PATH."""
    beside_python = VENV_BIN / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is neither in {VENV_BIN} nor on PATH: install the project with pip first")
    return found


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something other than None/False; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Process:
    """A child process in its own process group, its output in a log file, stopped with SIGTERM then SIGKILL."""

    name: str
    args: list[str]
    env: Mapping[str, str]
    cwd: Path
    log: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Process:
        """Spawn the process (new session, so that its own children can be signalled with it)."""
        with self.log.open("wb") as output:
            self.popen = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=dict(self.env),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen is not None and self.popen.poll() is None

    def assert_alive(self) -> None:
        """Fail with the end of its log when the process has died."""
        if not self.alive():
            code = None if self.popen is None else self.popen.returncode
            raise RuntimeError(f"{self.name} exited with {code}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The last lines of the process's output."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM to the process group (the process and the code servers or runs it spawned), then SIGKILL."""
        if self.popen is None:
            return None
        group = self.popen.pid  # start_new_session: the group id is the child's pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        # Grandchildren left behind in the group (a code server that outlived its parent) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        return self.popen.returncode


class GraphQLError(RuntimeError):
    """A GraphQL response with errors, or a union member that is an error type."""


@dataclass
class GraphQL:
    """POSTs to a webserver's ``/graphql``: for what ``DagsterGraphQLClient`` has no method for (backfills)."""

    url: str
    timeout: float = 30.0

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        """The ``data`` of a query or mutation; raises GraphQLError on ``errors``."""
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=self.timeout
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError("; ".join(error.get("message", str(error)) for error in body["errors"]))
        return body["data"]


def expect_type(result: Mapping[str, Any], typename: str) -> Mapping[str, Any]:
    """A union result of the expected ``__typename``, else GraphQLError with Dagster's message."""
    if result.get("__typename") != typename:
        raise GraphQLError(f"expected {typename}, got {result.get('__typename')}: {result.get('message', result)}")
    return result


def month_counts(rows: Iterable[Mapping[str, str]], months: Iterable[str]) -> dict[str, int]:
    """Rows per month of ``fecha_hecho`` (keys ``YYYY-MM-01``), recounted from raw source rows."""
    wanted = set(months)
    counts = collections.Counter(f"{row.get('fecha_hecho', '')[:7]}-01" for row in rows)
    return {month: counts.get(month, 0) for month in sorted(wanted)}


def bronze_counts(warehouse: Path, months: Iterable[str]) -> dict[str, int]:
    """``bronze.delitos`` rows per month, the warehouse opened read-only."""
    wanted = sorted(set(months))
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        found = dict(
            connection.execute("SELECT strftime(mes, '%Y-%m-%d'), count(*) FROM bronze.delitos GROUP BY 1").fetchall()
        )
    return {month: found.get(month, 0) for month in wanted}


def ensure_chromium() -> Path:
    """Debian's ``chromium``, installed with apt-get when missing; a clear error when that fails."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError(f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(args)}` failed ({done.returncode}); the UI tests need Debian's chromium "
                f"(run as root, or install it beforehand):\n{(done.stdout + done.stderr)[-3000:]}"
            )
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} does not exist")
    return CHROMIUM


@dataclass
class HeadlessChromium:
    """Chromium's own headless mode, one process per page: the rendered DOM, or a screenshot."""

    binary: Path
    profile: Path
    budget_ms: int = 15_000
    timeout: float = 90.0

    def _args(self) -> list[str]:
        return [
            str(self.binary),
            "--headless",
            "--no-sandbox",  # root in a container has no usable sandbox
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            f"--user-data-dir={self.profile}",
            # Virtual time runs the page's scripts and fetches until the network is idle or the budget is spent.
            f"--virtual-time-budget={self.budget_ms}",
        ]

    def dump_dom(self, url: str) -> str:
        """The DOM after the page's scripts ran, as HTML."""
        done = subprocess.run(
            [*self._args(), "--dump-dom", url], capture_output=True, text=True, timeout=self.timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"chromium --dump-dom {url} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def screenshot(self, url: str, path: Path, size: tuple[int, int] = (1400, 900)) -> Path:
        """A PNG of the rendered page."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        args = [*self._args(), f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url]
        done = subprocess.run(args, capture_output=True, text=True, timeout=self.timeout, check=False)
        if done.returncode != 0 or not path.exists():
            raise RuntimeError(f"chromium --screenshot {url} failed ({done.returncode}): {done.stderr[-2000:]}")
        return path


class DevToolsPage:
    """One page of a headless Chromium driven over the DevTools protocol: go to a URL, run script, screenshot.

    For what ``--dump-dom`` cannot do: click, then look at what the click opened.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events arriving meanwhile are skipped)."""
        self._next_id += 1
        self._connection.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._connection.recv(timeout=60))
            if message.get("id") != self._next_id:
                continue
            if "error" in message:
                raise RuntimeError(f"DevTools {method} failed: {message['error']}")
            return message["result"]

    def goto(self, url: str) -> None:
        """Start loading ``url`` (wait for what it should show with ``wait_for``)."""
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Evaluate ``expression`` until it gives something truthy, and return that."""
        return wait_until(lambda: self.evaluate(expression), timeout, what, interval=0.5)

    def screenshot(self, path: Path) -> Path:
        """A PNG of what the page shows now."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path


@contextlib.contextmanager
def devtools_page(chromium: HeadlessChromium, size: tuple[int, int] = (1400, 900)) -> Iterator[DevToolsPage]:
    """A headless Chromium (fresh profile, DevTools on a free loopback port) and its one page; stopped after."""
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="chromium_devtools_") as profile:
        args = [
            str(chromium.binary),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--mute-audio",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
            "about:blank",
        ]
        # Its own process group: the renderers and helpers it starts go with it, before its profile is removed.
        browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            active_port = Path(profile) / "DevToolsActivePort"
            wait_until(lambda: active_port.exists() and active_port.read_text().strip(), 30, "Chromium's DevTools")
            port = int(active_port.read_text().splitlines()[0])
            targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            [page] = [target for target in targets if target["type"] == "page"]
            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as connection:
                yield DevToolsPage(connection)
        finally:
            _stop_group(browser)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to a process's group, SIGKILL to whatever of it is left after 10 s; returns once none is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # helpers that outlived the browser
    process.wait()
    wait_until(lambda: not _group_alive(process.pid), 10, f"process group {process.pid} to end", interval=0.1)


def _group_alive(group: int) -> bool:
    """Whether a process of ``group`` still runs (zombies waiting for their reaper do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing parenthesis.
            state, _ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
            if int(pgrp) == group and state != "Z":
                return True
    return False
