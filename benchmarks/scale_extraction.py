"""Memory and time of source → lake → bronze as the dataset grows ten-fold, side by side in one run.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/scale_extraction.py [--rows 492000 4920000]

For each size: a synthetic snapshot resampled from the real rows (``delitos synthesize``, cached under
benchmarks/.work/), served by the emulator in a subprocess of its own; then ``lake/delitos`` and
``bronze/delitos`` over every month as ONE Dagster run on the embedded default, in a fresh interpreter whose
peak RSS (VmHWM) is its own; and ``lake/delitos`` alone, the extraction's own figures. The extraction holds a
sub-window of rows at a time (about one page), so its peak RSS should stay flat as the rows grow (target
≤ 1.2×) and its time grow no faster than the rows (target ≤ 1.3× per row).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, emulator, report_contender, run_contender

from delitos_platform.partitions import range_tags

FIRST, LAST = "2006-05-01", "2026-05-01"
SIZES = (492_000, 4_920_000)


def snapshot(rows: int) -> Path:
    """The synthetic snapshot of ``rows`` rows (seed 7), generated once."""
    path = WORK / f"national-{rows}-seed7.json.gz"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "delitos_platform.commands", "synthesize", "--rows", str(rows), "--seed", "7"]
        subprocess.run([*command, "--output", str(path)], check=True)
    return path


def lake_only(url: str) -> dict:
    """``lake/delitos`` alone over every month: the extraction's own memory."""
    return lake_and_bronze(url, layers=("lake",))


def lake_and_bronze(url: str, layers: tuple[str, ...] = ("lake", "bronze")) -> dict:
    """``lake/delitos`` and ``bronze/delitos`` over every month, one run, into a fresh lake and warehouse."""
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from delitos_platform.defs.bronze.assets import bronze_delitos
    from delitos_platform.defs.lake.assets import lake_delitos
    from delitos_platform.defs.source.assets import socrata_delitos
    from delitos_platform.lake.storage import LocalLake
    from delitos_platform.socrata import SocrataResource
    from delitos_platform.warehouse.duckdb import DuckDBWarehouse

    with tempfile.TemporaryDirectory() as work, dg.DagsterInstance.ephemeral() as instance:
        resources = {
            "socrata": SocrataResource(url=url),
            "lake": LocalLake(root=str(Path(work) / "lake")),
            "warehouse": DuckDBWarehouse(duckdb=DuckDBResource(database=str(Path(work) / "warehouse.duckdb"))),
        }
        started = time.perf_counter()
        result = dg.materialize(
            [socrata_delitos, lake_delitos, bronze_delitos],
            selection=[dg.AssetKey([layer, "delitos"]) for layer in layers],
            resources=resources,
            tags=range_tags(FIRST, LAST),
            instance=instance,
        )
        seconds = time.perf_counter() - started
    lake = next(e for e in result.get_asset_materialization_events() if e.asset_key.path == ["lake", "delitos"])
    metadata = lake.materialization.metadata
    return {
        "rows": metadata["run_rows"].value + metadata["run_quarantined"].value,
        "pages": metadata["run_pages"].value,
        "extract_seconds": metadata["run_seconds"].value,
        "seconds": seconds,
    }


def main() -> None:
    """Each size in turn against its own emulator, then the figures and ratios side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES), help="dataset sizes (default: %(default)s)")
    args = parser.parse_args()
    if args.contender:
        report_contender(CONTENDERS[args.contender], args.url)
        return
    results: dict[str, dict[int, dict]] = {name: {} for name in CONTENDERS}
    for rows in args.rows:
        with emulator(snapshot(rows)) as url:
            for name in CONTENDERS:
                results[name][rows] = run_contender(Path(__file__), name, ["--url", url])
    for name, by_size in results.items():
        print_figures(name, by_size)


CONTENDERS = {"lake": lake_only, "lake_and_bronze": lake_and_bronze}


def print_figures(name: str, results: dict[int, dict]) -> None:
    """One line per size, then the ratios against the smallest."""
    print(f"\n{name}\n{'rows':>10}{'pages':>8}{'run s':>9}{'extract s':>11}{'peak RSS MB':>13}{'µs/row':>9}")
    for figures in results.values():
        per_row = figures["seconds"] / figures["rows"] * 1e6
        print(
            f"{figures['rows']:>10,}{figures['pages']:>8}{figures['seconds']:>9.2f}{figures['extract_seconds']:>11.2f}"
            f"{figures['peak_rss_mb']:>13.0f}{per_row:>9.1f}"
        )
    (small, base), *others = results.items()
    for rows, figures in others:
        memory = figures["peak_rss_mb"] / base["peak_rss_mb"]
        time_per_row = (figures["seconds"] / figures["rows"]) / (base["seconds"] / base["rows"])
        print(f"{name}: {rows:,} vs {small:,} rows: peak RSS {memory:.2f}x (target ≤ 1.2x)")
        print(f"{name}: {rows:,} vs {small:,} rows: time per row {time_per_row:.2f}x (target ≤ 1.3x)")


if __name__ == "__main__":
    main()
