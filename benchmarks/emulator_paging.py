"""Page a national-scale snapshot through the SODA emulator and report speed and the server's memory.

Usage: ``.venv/bin/python benchmarks/emulator_paging.py [--rows 492000] [--seed 7] [--limit 50000]``

The synthetic snapshot is generated once into ``benchmarks/.work/`` and reused; the emulator runs in a
subprocess (as in real use) and is paged with plain ``requests``: ``$order=:id``, offset paging.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

WORK = Path(__file__).parent / ".work"
DATASET = "4v6r-wu98"


def ensure_snapshot(rows: int, seed: int) -> Path:
    """The synthetic snapshot for (rows, seed), generated on first use."""
    path = WORK / f"national_{rows}_{seed}.json.gz"
    if not path.exists():
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "delitos_platform.cli",
                "synthesize",
                "--rows",
                str(rows),
                "--seed",
                str(seed),
                "--output",
                str(path),
            ],
            check=True,
        )
        print(f"synthesized {rows:,} rows in {time.perf_counter() - started:.1f} s")
    return path


class PeakRss:
    """Samples a process's resident memory in a thread; also reads the kernel's high-water mark."""

    def __init__(self, pid: int, every: float = 0.05):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self._every)

    def high_water(self) -> int:
        """VmHWM from /proc (the true peak), falling back to the sampled peak."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
        except (OSError, AttributeError):
            return self.peak

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def page_all(url: str, limit: int) -> tuple[int, int, list[float]]:
    """Offset-page the whole dataset ordered by :id; returns rows, pages and each page's seconds."""
    session = requests.Session()
    rows = pages = offset = 0
    timings: list[float] = []
    while True:
        started = time.perf_counter()
        response = session.get(
            f"{url}/resource/{DATASET}.json", params={"$order": ":id", "$limit": limit, "$offset": offset}, timeout=60
        )
        response.raise_for_status()
        page = response.json()
        timings.append(time.perf_counter() - started)
        rows, pages, offset = rows + len(page), pages + 1, offset + limit
        if len(page) < limit:
            return rows, pages, timings


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=492_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=50_000)
    args = parser.parse_args()
    snapshot = ensure_snapshot(args.rows, args.seed)
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "delitos_platform.cli", "emulator", "--port", "0", "--snapshot", str(snapshot)],
        stdout=subprocess.PIPE,
        text=True,
    )
    memory = PeakRss(server.pid)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"(http://\S+)", line)
        if not match:
            raise SystemExit(f"the emulator did not start: {line!r}")
        load_seconds = time.perf_counter() - started
        began = time.perf_counter()
        rows, pages, timings = page_all(match.group(1), args.limit)
        total = time.perf_counter() - began
    finally:
        peak = max(memory.high_water(), memory.peak)
        memory.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    full = timings[:-1] or timings
    print(f"snapshot:        {snapshot.name} ({snapshot.stat().st_size / 1e6:.1f} MB gzip)")
    print(f"server start:    {load_seconds:.2f} s (load + index)")
    print(f"rows:            {rows:,}")
    print(f"pages:           {pages} x $limit={args.limit:,}")
    print(f"total:           {total:.2f} s")
    print(f"per full page:   {sum(full) / len(full):.3f} s (max {max(full):.3f} s)")
    print(f"server peak RSS: {peak / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
