"""What the benchmarks share: the national-scale snapshot, an emulator subprocess, peak-memory readings."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

WORK = Path(__file__).resolve().parent / ".work"
NATIONAL = WORK / "national-492000-seed7.json.gz"


def national_snapshot() -> Path:
    """The synthetic national-scale snapshot (492,000 rows, 2006-05 → 2026-05), generated once."""
    if not NATIONAL.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        delitos = ["-m", "delitos_platform.commands"]
        subprocess.run(
            [sys.executable, *delitos, "synthesize", "--rows", "492000", "--seed", "7", "--output", NATIONAL],
            check=True,
        )
    return NATIONAL


@contextmanager
def emulator(snapshot: Path) -> Iterator[str]:
    """``delitos emulator`` in a subprocess of its own (its own core, its own memory); yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "delitos_platform.commands", "emulator", "--snapshot", str(snapshot), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"http://\S+", line)
        if not match:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield match.group(0)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Terminate a subprocess, killed when it has not exited 30 s later."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def benchmark_arguments(description: str, contenders: Iterable[str]) -> argparse.Namespace:
    """The options every benchmark takes; ``--contender``/``--url`` are how it calls itself in a subprocess."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", choices=list(contenders), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--skip-dlt", action="store_true", help="leave dlt out (when it is not installed)")
    return parser.parse_args()


def report_contender(contender: Callable[[str], dict], url: str) -> None:
    """Inside a contender's own interpreter: run it and print its figures, with its peak RSS, as the last line."""
    print(json.dumps({**contender(url), "peak_rss_mb": peak_rss_mb()}))


def run_contender(script: Path, name: str, arguments: Sequence[str], env: dict[str, str] | None = None) -> dict:
    """Run one contender in a fresh interpreter; it prints one JSON line of figures last."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(script), "--contender", name, *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{completed.stderr[-3000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["process_seconds"] = time.perf_counter() - started
    return figures
