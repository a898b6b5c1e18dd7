"""``delitos dev`` started as a script starts it in the background (``nohup``, ``&``: SIGINT ignored) stops whole:
no process it started outlives a stop signal, and its port is free again. A second one on the same port is
refused in one sentence.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from delitos_platform.commands.ui import port_in_use
from delitos_platform_tests.processes.conftest import wait_for_location
from delitos_platform_tests.processes.helpers import REPO_ROOT, GraphQL, Process, free_port, wait_until

# What `nohup` and a shell's `&` do before they start a command: SIGINT (or SIGHUP) ignored, then exec.
WITH_SIGINT_IGNORED = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
]
SETTINGS = ("DAGSTER_HOME", "SOCRATA_URL", "DELITOS_ENV", "DELITOS_DATA_DIR", "DELITOS_WAREHOUSE_PATH")


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``processes`` still running (a zombie waiting for its reaper has ended)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            continue
    return running


def in_sessions(sessions: set[int]) -> list[psutil.Process]:
    """Every live process of these sessions: also those started after we looked (a run, a code server)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) in sessions:
                found.append(process)
        except (OSError, psutil.Error):
            continue
    return alive(found)


def test_delitos_dev_started_with_sigint_ignored_stops_whole_on_sigint_and_frees_its_port(tmp_path: Path):
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    port = free_port()
    folders = ["--data-dir", str(tmp_path / "data"), "--dagster-home", str(tmp_path / "home")]
    command = [sys.executable, "-m", "delitos_platform.commands", "dev", "--port", str(port), *folders]
    dev = Process("delitos dev", [*WITH_SIGINT_IGNORED, *command[1:]], env, REPO_ROOT, tmp_path / "dev.log").start()
    started: list[psutil.Process] = []
    sessions: set[int] = set()
    try:
        wait_for_location(GraphQL(f"http://127.0.0.1:{port}"), dev)
        assert dev.popen is not None
        started = psutil.Process(dev.popen.pid).children(recursive=True)
        sessions = {os.getsid(process.pid) for process in started}
        names = " ".join(" ".join(process.cmdline()) for process in started)
        assert "dagster_webserver" in names and "dagster._daemon" in names, names  # what there is to stop

        second = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert (second.returncode, second.stdout) == (2, ""), second.stdout + second.stderr
        assert second.stderr == (
            f"delitos dev: port {port} on 127.0.0.1 is already in use (another delitos dev or Dagster UI?): "
            "stop it, or give another --port\n"
        )

        os.kill(dev.popen.pid, signal.SIGINT)
        assert dev.popen.wait(timeout=60) == 0, dev.tail()
        wait_until(lambda: not in_sessions(sessions), 10, "every process delitos dev started to end", interval=0.2)
        assert not port_in_use("127.0.0.1", port)
    finally:
        dev.stop()
        for process in alive(started) + in_sessions(sessions):  # a failed test leaves nothing behind either
            process.kill()
    assert "Stopped; our emulator answered" in (tmp_path / "dev.log").read_text()
