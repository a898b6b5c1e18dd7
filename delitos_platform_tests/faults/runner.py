"""``python -m delitos_platform_tests.faults.runner``: imports the platform once, then for every JSON spec read
on stdin forks a run of its own (a new session: the test kills the run's whole group) and prints its pid.

Children are reaped by the kernel (SIGCHLD ignored); a child resets it, since dbt runs as its subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from delitos_platform_tests.faults.helpers import run_spec


def main() -> None:
    """Serve specs until stdin closes."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        spec = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(spec)
        print(pid, flush=True)


def _child(spec: dict) -> None:
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        code = 0 if run_spec(spec) else 1
    finally:
        os._exit(code)


if __name__ == "__main__":
    main()
