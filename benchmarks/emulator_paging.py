"""Page national-scale snapshots through the SODA emulator, keyset by ``:id``; the server's time and memory.

    .venv/bin/python benchmarks/emulator_paging.py [--rows 492000,4920000] [--seed 7] [--limit 50000]
                                                    [--apis soda2,soda3]

For each size, side by side in one run: the synthetic snapshot (``delitos synthesize``, generated once into
``benchmarks/.work/`` and reused), ``delitos emulator`` started over it in a subprocess of its own (as in
real use), then the whole dataset paged with plain ``requests`` the way the extraction pages it, once per API:
SODA2 ``GET /resource/…`` with ``$select=:id, *``, ``$order=:id``, ``$where=:id > 'last id'``,
``$limit=50000``, and SODA3 ``POST /api/v3/views/…/query.json`` with the same statement in its body (page 1
always: the keyset is in the statement). Reported: the server's start (load) time, each API's paging time, pages,
rows (checked: every row once, ids increasing), SODA3's paging time over SODA2's, and the server's peak resident
memory (VmHWM, the kernel's high-water mark) after load and after paging.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, peak_rss_mb, stop

DATASET = "4v6r-wu98"


def ensure_snapshot(rows: int, seed: int) -> Path:
    """The synthetic snapshot for (rows, seed), generated on first use."""
    path = WORK / f"national_{rows}_{seed}.json.gz"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        command = ["synthesize", "--rows", str(rows), "--seed", str(seed), "--output", str(path)]
        subprocess.run([sys.executable, "-m", "delitos_platform.commands", *command], check=True)
        print(f"synthesized {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def rss_mb(pid: int) -> float:
    """Current resident memory (VmRSS) of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def _soda2_page(session: requests.Session, url: str, limit: int, last: str | None) -> requests.Response:
    params = {"$select": ":id, *", "$order": ":id", "$limit": str(limit)}
    if last is not None:
        params["$where"] = f":id > '{last}'"
    return session.get(f"{url}/resource/{DATASET}.json", params=params, timeout=300)


def _soda3_page(session: requests.Session, url: str, limit: int, last: str | None) -> requests.Response:
    where = f" WHERE :id > '{last}'" if last is not None else ""
    body = {
        "query": f"SELECT :id, *{where} ORDER BY :id LIMIT {limit}",
        "page": {"pageNumber": 1, "pageSize": limit},
        "includeSynthetic": False,
    }
    return session.post(f"{url}/api/v3/views/{DATASET}/query.json", json=body, timeout=300)


PAGERS = {"soda2": _soda2_page, "soda3": _soda3_page}


def page_by_id(url: str, limit: int, api: str = "soda2") -> tuple[int, int, list[float]]:
    """Keyset-page every row ordered by :id through ``api``; returns rows, pages and each page's seconds.

    Fails when an id comes twice or out of order: the figures are only worth something if paging is right.
    """
    session = requests.Session()
    rows = pages = 0
    last: str | None = None
    timings: list[float] = []
    while True:
        started = time.perf_counter()
        response = PAGERS[api](session, url, limit, last)
        response.raise_for_status()
        page = response.json()
        timings.append(time.perf_counter() - started)
        ids = [row[":id"] for row in page]
        if ids != sorted(set(ids)) or (last is not None and ids and ids[0] <= last):
            raise RuntimeError(f"page {pages + 1}: ids repeat or are out of order")
        rows, pages = rows + len(page), pages + 1
        if len(page) < limit:
            return rows, pages, timings
        last = ids[-1]


def measure(rows: int, seed: int, limit: int, apis: list[str]) -> dict[str, float]:
    """Start an emulator over the snapshot of ``rows`` rows, page it whole through each API, return its figures."""
    snapshot = ensure_snapshot(rows, seed)
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "delitos_platform.commands", "emulator", "--port", "0", "--snapshot", str(snapshot)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"(http://\S+)", line)
        if not match:
            raise SystemExit(f"the emulator did not start: {line!r}")
        load_seconds = time.perf_counter() - started
        loaded_peak, loaded_rss = peak_rss_mb(server.pid), rss_mb(server.pid)
        figures = {
            "snapshot_mb": snapshot.stat().st_size / 1e6,
            "load_s": load_seconds,
            "rss_after_load_mb": loaded_rss,
            "peak_after_load_mb": loaded_peak,
        }
        for api in apis:
            figures |= {f"{api}_{name}": value for name, value in _page_whole(match.group(1), limit, api, rows).items()}
        figures["peak_rss_mb"] = peak_rss_mb(server.pid)
    finally:
        stop(server)
    if {"soda2", "soda3"} <= set(apis):
        figures["soda3_over_soda2"] = figures["soda3_paging_s"] / figures["soda2_paging_s"]
    return figures


def _page_whole(url: str, limit: int, api: str, rows: int) -> dict[str, float]:
    """Page the whole dataset through ``api`` and return its figures (checked: every row, once)."""
    began = time.perf_counter()
    served, pages, timings = page_by_id(url, limit, api)
    paging_seconds = time.perf_counter() - began
    if served != rows:
        raise RuntimeError(f"{api}: paged {served:,} rows of {rows:,}")
    full = timings[:-1] or timings
    return {
        "rows": served,
        "paging_s": paging_seconds,
        "pages": pages,
        "page_mean_s": sum(full) / len(full),
        "page_max_s": max(full),
        "rows_per_s": served / paging_seconds,
    }


SERVER_LINES = (
    ("snapshot (gzip), MB", "snapshot_mb", "{:.1f}"),
    ("server start (load), s", "load_s", "{:.1f}"),
    ("server RSS after load, MB", "rss_after_load_mb", "{:.0f}"),
    ("server peak RSS after load, MB", "peak_after_load_mb", "{:.0f}"),
)
API_LINES = (
    ("rows served (keyset, every row once)", "rows", "{:,.0f}"),
    ("paging, s", "paging_s", "{:.1f}"),
    ("pages", "pages", "{:.0f}"),
    ("per full page, mean s", "page_mean_s", "{:.3f}"),
    ("per full page, max s", "page_max_s", "{:.3f}"),
    ("rows/s", "rows_per_s", "{:,.0f}"),
)
LAST_LINES = (
    ("SODA3 paging / SODA2 paging", "soda3_over_soda2", "{:.2f}×"),
    ("server peak RSS (VmHWM), MB", "peak_rss_mb", "{:.0f}"),
)


def main() -> int:
    """Run the benchmark for every size and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="492000,4920000", help="comma-separated snapshot sizes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--apis", default="soda2,soda3", help="comma-separated query APIs to page through")
    args = parser.parse_args()
    sizes = [int(size) for size in args.rows.split(",")]
    apis = [api for api in args.apis.split(",") if api in PAGERS]
    results = []
    for size in sizes:
        print(f"paging {size:,} rows through {', '.join(apis)} …", flush=True)
        results.append(measure(size, args.seed, args.limit, apis))
    print(f"\n{'':42}" + "".join(f"{size:>14,}" for size in sizes))
    lines = [
        *SERVER_LINES,
        *((f"{api.upper()} {label}", f"{api}_{key}", style) for api in apis for label, key, style in API_LINES),
    ]
    for label, key, style in [*lines, *LAST_LINES]:
        values = [style.format(result[key]) if key in result else "—" for result in results]
        print(f"{label:42}" + "".join(f"{value:>14}" for value in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
