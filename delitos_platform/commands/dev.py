"""``delitos dev``: the Dagster UI on the demo's instance, data and source, stopped with Ctrl-C.

``dg dev`` (webserver, daemon and code server) runs as a child process on the same instance (``.dagster_home``)
and data (``data/``) as ``delitos demo``; its source is our emulator, started here on the same snapshot, so the
``socrata_changes`` sensor's ticks and every run launched from the UI talk to loopback only. The real API only
when asked: ``--source real`` (or a URL), on data built from it.

It starts without a warning to learn to ignore: ``dg dev`` is Dagster's supported entry point (``dagster dev``
warns that it is superseded), and it runs in the instance folder, where its ``dagster.yaml`` is (Dagster warns of
a ``dagster.yaml`` in the current folder that is not ``DAGSTER_HOME``'s, as the repository root's would be). It
stops within seconds of SIGINT or SIGTERM however it was started: under ``nohup`` or ``&`` SIGINT is ignored,
which a child inherits, and Dagster then ignores SIGTERM too (it maps SIGTERM to its SIGINT handler).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from delitos_platform.commands import embedded as platform
from delitos_platform.commands.ui import local_url, port_in_use, recording
from delitos_platform.emulator import EmulatorServer
from delitos_platform.emulator.cli import port_number
from delitos_platform.locations import REPO_ROOT

STOP_GRACE_SECONDS = 30.0
# The signals that stop the UI: Ctrl-C, a service manager's stop, the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Dagster's daemon warns at its first start on an instance that it has no cursor for the run-retry consumer's
# event types ("ignoring older events") and then starts at the latest event; the same start, set beforehand.
RUN_RETRY_CURSORS = ("EVENT_LOG_CONSUMER_CURSOR-RUN_FAILURE", "EVENT_LOG_CONSUMER_CURSOR-RUN_SUCCESS")
EXAMPLES = """examples:
  delitos dev                                   # after delitos demo: http://127.0.0.1:3000
  delitos dev --port 3333 --dagster-home /tmp/h --data-dir /tmp/d
  delitos dev --source real --data-dir national/   # the real API, on data of its own
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``delitos dev``."""
    platform.add_source_arguments(parser)
    platform.add_instance_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="the address the UI listens on")
    parser.add_argument("--port", type=port_number, default=3000, help="the port the UI listens on")
    parser.epilog = EXAMPLES


def dg_executable() -> str:
    """``dg`` beside this interpreter (a venv not activated), else from PATH."""
    beside = Path(sys.executable).with_name("dg")
    return str(beside) if beside.exists() else (shutil.which("dg") or "dg")


def run(args: argparse.Namespace) -> int:
    """Serve the UI until Ctrl-C (or SIGTERM); the exit code of ``dagster dev``."""
    from delitos_platform.commands.console import say

    embedded = platform.check_embedded("delitos dev", args)
    url = platform.source_url(args)
    if port_in_use(args.host, args.port):
        raise platform.SettingsError(
            f"port {args.port} on {args.host} is already in use (another delitos dev or Dagster UI?): "
            "stop it, or give another --port"
        )
    with contextlib.ExitStack() as stack:
        emulator = None
        if url is None:
            emulator = stack.enter_context(EmulatorServer(snapshot=args.snapshot, host="127.0.0.1", port=0))
            url = emulator.url
        platform.check_source(embedded, url)
        platform.open_platform(embedded, url)
        start_run_retries_at_the_latest_event()
        ui_url = local_url(args.host, args.port)
        say(f"Dagster UI at {ui_url} (Ctrl-C stops it)")
        say(f"  instance {embedded.home}, data {embedded.data_dir}")
        say(f"  source: {'our emulator on ' + args.snapshot.name + ' at ' + url if emulator else url}")
        with recording(embedded.home, ui_url):
            code = serve_ui(args.host, args.port, embedded.home)
        if emulator is not None:
            say(f"Stopped; our emulator answered {emulator.requests_served} requests")
    return code


def start_run_retries_at_the_latest_event() -> None:
    """Where the daemon's run-retry consumer has no cursor yet, set it to the latest event, as its first start
    would (older runs are not retried), so that the daemon starts without warning of it."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        storage = instance.daemon_cursor_storage
        found = storage.get_cursor_values(set(RUN_RETRY_CURSORS))
        missing = [key for key in RUN_RETRY_CURSORS if found.get(key) is None]
        if missing:
            latest = instance.event_log_storage.get_maximum_record_id() or 0
            storage.set_cursor_values(dict.fromkeys(missing, str(latest)))


def serve_ui(host: str, port: int, home: Path) -> int:
    """``dg dev`` in a session of its own, in the instance folder: a stop signal here stops it and its children.

    The handlers are installed before it starts: a signal handled here is reset to its default in the child,
    whereas an ignored one (SIGINT under ``nohup`` or ``&``) would stay ignored there, and Dagster would ignore
    SIGTERM with it.
    """
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        child = subprocess.Popen(
            [dg_executable(), "dev", "-h", host, "-p", str(port), "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=home,
            env=dict(os.environ),
            start_new_session=True,  # one stop signal, from us, instead of the terminal's and ours
        )
        if stopping:  # a stop signal came while it started
            forward(signal.SIGTERM, None)
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child is not None:
            stop(child)
    return 0 if code in (0, -signal.SIGTERM, 130) else code


def stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM, the grace period, then SIGKILL to its whole session: nothing it started outlives it."""
    if child.poll() is None:  # we were interrupted otherwise
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # anything it left behind (a code server) goes too
    child.wait()
