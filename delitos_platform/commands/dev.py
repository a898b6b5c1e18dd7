"""``delitos dev``: the Dagster UI on the demo's instance, data and source, stopped with Ctrl-C.

``dagster dev`` (webserver and daemon) runs as a child process on the same instance (``.dagster_home``) and data
(``data/``) as ``delitos demo``; its source is our emulator, started here on the same snapshot, so the
``socrata_changes`` sensor's ticks and every run launched from the UI talk to loopback only. The real API only
when asked: ``--source real`` (or a URL), on data built from it.
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
from delitos_platform.emulator import EmulatorServer
from delitos_platform.emulator.cli import port_number
from delitos_platform.locations import REPO_ROOT

STOP_GRACE_SECONDS = 30.0
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


def dagster_executable() -> str:
    """``dagster`` beside this interpreter (a venv not activated), else from PATH."""
    beside = Path(sys.executable).with_name("dagster")
    return str(beside) if beside.exists() else (shutil.which("dagster") or "dagster")


def run(args: argparse.Namespace) -> int:
    """Serve the UI until Ctrl-C (or SIGTERM); the exit code of ``dagster dev``."""
    from delitos_platform.commands.console import say

    embedded = platform.check_embedded("delitos dev", args)
    url = platform.source_url(args)
    with contextlib.ExitStack() as stack:
        emulator = None
        if url is None:
            emulator = stack.enter_context(EmulatorServer(snapshot=args.snapshot, host="127.0.0.1", port=0))
            url = emulator.url
        platform.check_source(embedded, url)
        platform.open_platform(embedded, url)
        say(f"Dagster UI at http://{args.host}:{args.port} (Ctrl-C stops it)")
        say(f"  instance {embedded.home}, data {embedded.data_dir}")
        say(f"  source: {'our emulator on ' + args.snapshot.name + ' at ' + url if emulator else url}")
        code = serve_ui(args.host, args.port)
        if emulator is not None:
            say(f"Stopped; our emulator answered {emulator.requests_served} requests")
    return code


def serve_ui(host: str, port: int) -> int:
    """``dagster dev`` in a session of its own: Ctrl-C (or SIGTERM) here stops it, and it stops its children."""
    child = subprocess.Popen(
        [dagster_executable(), "dev", "-h", host, "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        start_new_session=True,  # one stop signal, from us, instead of the terminal's and ours
    )

    def forward(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:  # we were interrupted otherwise: stop it, then its whole group
            forward(signal.SIGTERM, None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=STOP_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # anything it left behind (a code server) goes too
    return 0 if code in (0, -signal.SIGTERM, 130) else code
