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
    return synthesized(NATIONAL, "--rows", "492000", "--seed", "7")


def dataset_snapshot(dataset_id: str, rows: int, seed: int = 7) -> Path:
    """``rows`` synthetic rows of a configured dataset over its calendar (``delitos synthesize --dataset``), once."""
    output = WORK / f"{dataset_id}-{rows}-seed{seed}.json.gz"
    return synthesized(output, "--dataset", dataset_id, "--rows", str(rows), "--seed", str(seed))


def synthesized(output: Path, *options: str) -> Path:
    """``output`` written by ``delitos synthesize OPTIONS`` unless it exists (renamed into place when complete, so
    that an interrupted run leaves no half-written snapshot to be reused)."""
    if not output.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f"partial-{output.name}")
        delitos = ["-m", "delitos_platform.commands"]
        subprocess.run([sys.executable, *delitos, "synthesize", *options, "--output", str(partial)], check=True)
        partial.rename(output)
    return output


@contextmanager
def emulator(snapshot: Path) -> Iterator[str]:
    """``delitos emulator`` in a subprocess of its own (its own core, its own memory); yields its URL."""
    command = ["-m", "delitos_platform.commands", "emulator", "--snapshot", str(snapshot), "--port", "0"]
    with serving(command) as url:
        yield url


@contextmanager
def serving(arguments: Sequence[str]) -> Iterator[str]:
    """A Python subprocess (``arguments`` after the interpreter) that prints its URL on its first line; yields it."""
    process = subprocess.Popen([sys.executable, *arguments], stdout=subprocess.PIPE, text=True)
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


def benchmark_arguments(
    description: str,
    contenders: Iterable[str],
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every benchmark takes; ``--contender``/``--url`` are how it calls itself in a subprocess.

    ``options`` adds a benchmark's own options instead of ``--skip-dlt`` (for those without dlt)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", choices=list(contenders), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    if options is None:
        parser.add_argument("--skip-dlt", action="store_true", help="leave dlt out (when it is not installed)")
    else:
        options(parser)
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
