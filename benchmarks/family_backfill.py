"""Every configured dataset backfilled cold at national scale, alone and all together; and ``delitos demo``.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/family_backfill.py [--scale 0.1]
                                                                   [--scale hurto_personas=2000000] [--skip-demo]

One emulator subprocess serves a synthetic snapshot of each dataset (``delitos synthesize --dataset``, generated
once into ``benchmarks/.work/``), every month from the dataset's first month to the last month of the snapshot
(``2026-05``). Then, each in a fresh interpreter so that its peak RSS (VmHWM) is its own:

* one contender per dataset: a cold full backfill of its whole calendar in ONE run of its job (4v6r-wu98's
  ``delitos_main_job``, every other dataset's ``<slug>_job``: lake → bronze → its dbt silver → the cross-crime
  gold), on the embedded default (a fresh data dir and DuckDB warehouse, an ephemeral instance, the deployment's
  Dagster settings); the definitions are loaded before the clock starts;
* ``all together``: the same four backfills one after another in ONE interpreter, on one data dir and warehouse,
  with the peak RSS after each; the ratio of its peak to the largest single peak says whether memory stays flat
  (≈1: the runs share the same bounds; the sum of the peaks would mean each run kept what it read);
* ``delitos demo`` (the CLI's ``main``, in a fresh interpreter, on a fresh data dir and instance): its seconds,
  peak RSS and which datasets it loaded into bronze.

Every backfill is checked: bronze and silver hold every row served, else the benchmark fails.

Assumed national scale (rows over the whole calendar; the real counts are not known here,
../shared/data/socrata/policia_family.md), each overridable with ``--scale DATASET=ROWS`` (id or slug) or all
at once with ``--scale FACTOR``:

* 4v6r-wu98, delitos informáticos, 2006-05 → 2026-05: 492,000 (the portal's count, as the other benchmarks);
* m8fd-ahd9, homicidios, 2010-01 → 2026-05: 213,000 (≈13,000 a year, Colombia's order of homicides a year);
* q2ib-t9am, extorsión, 2010-01 → 2026-05: 107,000 (≈6,500 a year, within 5,000–8,000 a year);
* 4rxi-8m8d, hurto a personas, 2010-01 → 2026-05: CAPPED at 1,000,000 (≈61,000 a year). The real dataset has
  hundreds of thousands of reports a year, some 3 to 5 million rows in all; the cap keeps the whole benchmark
  within a few minutes on 2 cores. ``--scale hurto_personas=4000000`` runs it uncapped.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backfill_platform import failed_steps, step_seconds, use_embedded_platform
from common import benchmark_arguments, dataset_snapshot, peak_rss_mb, report_contender, run_contender, serving

from delitos_platform.contract import DATASET_ID
from delitos_platform.datasets import DatasetEntry, configured
from delitos_platform.emulator.synthetic import DEFAULT_END
from delitos_platform.family_dbt import silver_model
from delitos_platform.lake.dataset import LakeDataset
from delitos_platform.partitions import range_tags

NATIONAL_ROWS = {"4v6r-wu98": 492_000, "m8fd-ahd9": 213_000, "q2ib-t9am": 107_000, "4rxi-8m8d": 1_000_000}
LAST = f"{DEFAULT_END}-01"  # the snapshot's last month, the backfills' last partition
TOGETHER = "all together"


def entries() -> list[DatasetEntry]:
    """The configured datasets, 4v6r-wu98 first (the main job), the family after it in its configured order."""
    found = configured()
    return [found[DATASET_ID], *(entry for entry in found.values() if entry.id != DATASET_ID)]


def job_name(entry: DatasetEntry) -> str:
    """The job that backfills a dataset: the main job for 4v6r-wu98, ``<slug>_job`` for the others."""
    from delitos_platform.defs.family import FAMILY
    from delitos_platform.defs.jobs import main_job

    jobs = {member.dataset.id: member.job.name for member in FAMILY}
    return jobs.get(entry.id, main_job.name)


def run_backfill(instance: Any, entry: DatasetEntry, data_dir: Path) -> dict[str, Any]:
    """One cold run of ``entry``'s job over its whole calendar: seconds, steps, rows of bronze and silver."""
    import dagster as dg

    from delitos_platform.definitions import defs
    from delitos_platform.transform import prepare_dbt

    prepare_dbt()  # the definitions are built from dbt's manifest and never parse dbt themselves
    job = defs().resolve_job_def(job_name(entry))
    first = LakeDataset(entry).first_month
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance, tags=range_tags(first, LAST), run_config=quiet, raise_on_error=False
    )
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"{job.name} over {first} → {LAST} failed: {failed_steps(result)}")
    return {
        "dataset": entry.id,
        "job": job.name,
        "months": len(LakeDataset(entry).partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, LAST))),
        "seconds": seconds,
        "steps": step_seconds(instance, result.run_id),
        **layer_rows(entry, data_dir),
    }


def layer_rows(entry: DatasetEntry, data_dir: Path) -> dict[str, int]:
    """Rows of the dataset's bronze and silver tables in the warehouse."""
    import duckdb

    tables = {"bronze_rows": LakeDataset(entry).bronze_table, "silver_rows": f"silver.{silver_model(entry)}"}
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as warehouse:
        return {name: count(warehouse, table) for name, table in tables.items()}


def count(warehouse: Any, table: str) -> int:
    """Rows of a table over an open DuckDB connection."""
    return warehouse.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def backfill_one(url: str) -> dict[str, Any]:
    """The ``one`` contender: the cold full backfill of the dataset ``DATASET`` names, alone, in this interpreter."""
    import dagster as dg

    entry = configured()[os.environ[DATASET]]
    with tempfile.TemporaryDirectory() as work, dg.DagsterInstance.ephemeral() as instance:
        use_embedded_platform(url, Path(work))
        return run_backfill(instance, entry, Path(work))


def backfill_all(url: str) -> dict[str, Any]:
    """The ``all together`` contender: every dataset's backfill one after another, one warehouse, one instance."""
    import dagster as dg
    import duckdb

    runs = []
    with tempfile.TemporaryDirectory() as work, dg.DagsterInstance.ephemeral() as instance:
        use_embedded_platform(url, Path(work))
        started = time.perf_counter()
        for entry in entries():
            runs.append({**run_backfill(instance, entry, Path(work)), "peak_rss_mb_after": peak_rss_mb()})
        seconds = time.perf_counter() - started
        with duckdb.connect(str(Path(work) / "warehouse.duckdb"), read_only=True) as warehouse:
            gold = warehouse.execute("SELECT dataset, registros FROM gold.resumen_por_delito ORDER BY 1").fetchall()
    return {"seconds": seconds, "runs": runs, "gold_rows": dict(gold)}


def demo(_url: str | None) -> dict[str, Any]:
    """The ``demo`` contender: ``delitos demo`` as its console script runs it, on a fresh data dir and instance."""
    import contextlib
    import io

    import duckdb

    from delitos_platform.commands import main as delitos

    with tempfile.TemporaryDirectory() as work:
        data_dir, output = Path(work) / "data", io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(output):
            code = delitos(["demo", "--data-dir", str(data_dir), "--dagster-home", str(Path(work) / "home")])
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"delitos demo exited {code}:\n{output.getvalue()[-3000:]}")
        with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as warehouse:
            tables = {
                row[0]
                for row in warehouse.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()
            }
            loaded = {
                entry.id: count(warehouse, LakeDataset(entry).bronze_table)
                for entry in entries()
                if LakeDataset(entry).bronze_table in tables
            }
    return {"seconds": seconds, "bronze_rows": loaded, "lines": len(output.getvalue().splitlines())}


# The dataset of the ``one`` contender.
DATASET = "DELITOS_BENCHMARK_DATASET"
CONTENDERS = {"one": backfill_one, "together": backfill_all, "demo": demo}


def add_options(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options, and the hidden ones by which it calls itself."""
    parser.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="FACTOR|DATASET=ROWS",
        help="a factor for every dataset's rows (0.1: a tenth), or one dataset's rows by id or slug (repeatable)",
    )
    parser.add_argument("--skip-demo", action="store_true", help="leave `delitos demo` out")
    parser.add_argument("--serve", nargs="+", metavar="DATASET=SNAPSHOT", help=argparse.SUPPRESS)


def national_rows(scales: list[str]) -> dict[str, int]:
    """Rows per dataset id: ``NATIONAL_ROWS`` with ``--scale``'s factors and overrides applied, in order."""
    by_name = {name: entry.id for entry in entries() for name in (entry.id, entry.slug)}
    rows = {entry.id: NATIONAL_ROWS.get(entry.id, 100_000) for entry in entries()}
    for scale in scales:
        name, equals, value = scale.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = 0
        if (equals and name not in by_name) or number <= 0:
            known = ", ".join(sorted(by_name))
            raise SystemExit(f"--scale {scale!r}: give a factor above 0, or DATASET=ROWS with a dataset of {known}")
        if equals:
            rows[by_name[name]] = max(1, round(number))
        else:
            rows = {dataset_id: max(1, round(count * number)) for dataset_id, count in rows.items()}
    return rows


def serve(specs: list[str]) -> None:
    """The emulator subprocess: every ``DATASET=SNAPSHOT`` at its own ``/resource/{id}.json``, until SIGTERM."""
    from delitos_platform.emulator.server import EmulatorServer

    snapshots = dict(spec.split("=", 1) for spec in specs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave the with: the server's temporary files go too
    with EmulatorServer(datasets={dataset_id: Path(path) for dataset_id, path in snapshots.items()}) as server:
        print(f"serving at {server.url}", flush=True)
        while True:
            signal.pause()


def main() -> None:
    """Synthesize, serve, run every contender one after another, print the table."""
    args = benchmark_arguments(__doc__, CONTENDERS, add_options)
    if args.serve:
        serve(args.serve)
        return
    if args.contender:
        report_contender(CONTENDERS[args.contender], args.url)
        return
    rows = national_rows(args.scale)
    snapshots = {dataset_id: dataset_snapshot(dataset_id, count) for dataset_id, count in rows.items()}
    script = Path(__file__)
    with serving([str(script), "--serve", *(f"{key}={path}" for key, path in snapshots.items())]) as url:
        singles = {
            key: timed(f"{key} alone", lambda key=key: run_contender(script, "one", ["--url", url], {DATASET: key}))
            for key in rows
        }
        together = timed(TOGETHER, lambda: run_contender(script, "together", ["--url", url]))
    demo_run = None if args.skip_demo else timed("delitos demo", lambda: run_contender(script, "demo", []))
    check_rows(rows, singles, together)
    print_table(rows, singles, together, demo_run)


def timed(name: str, contender: Callable[[], dict]) -> dict:
    """A contender's figures, with a line on stderr when it is done (the whole benchmark takes minutes)."""
    figures = contender()
    print(f"{name}: {figures['process_seconds']:.1f} s", file=sys.stderr, flush=True)
    return figures


def check_rows(rows: dict[str, int], singles: dict[str, dict], together: dict) -> None:
    """Every backfill put every row served into bronze and silver, and the gold counts each dataset's rows."""
    for figures in [*singles.values(), *together["runs"]]:
        served = rows[figures["dataset"]]
        if not figures["bronze_rows"] == figures["silver_rows"] == served:
            raise SystemExit(f"{figures['dataset']}: served {served:,} rows, {figures} in bronze and silver")
    if together["gold_rows"] != rows:
        raise SystemExit(f"gold.resumen_por_delito counts {together['gold_rows']}, the emulator served {rows}")


def print_table(rows: dict[str, int], singles: dict[str, dict], together: dict, demo_run: dict | None) -> None:
    """One line per dataset, then all together (and each of its runs), the memory ratio and the demo."""
    slugs = {entry.id: entry.slug for entry in entries()}
    print(f"{'dataset':<26}{'months':>7}{'rows':>11}{'seconds':>9}{'s/100k rows':>13}{'peak RSS MB':>13}")
    for key, figures in singles.items():
        print(line(f"{key} {slugs[key]}", figures["months"], rows[key], figures["seconds"], figures["peak_rss_mb"]))
    months = sum(figures["months"] for figures in together["runs"])
    print(line(TOGETHER, months, sum(rows.values()), together["seconds"], together["peak_rss_mb"]))
    for figures in together["runs"]:
        name = f"  then {figures['dataset']}"
        print(line(name, figures["months"], rows[figures["dataset"]], figures["seconds"], figures["peak_rss_mb_after"]))
    largest = max(singles.values(), key=lambda figures: figures["peak_rss_mb"])
    ratio = together["peak_rss_mb"] / largest["peak_rss_mb"]
    summed = sum(figures["peak_rss_mb"] for figures in singles.values())
    print(
        f"\nall-together peak / largest single peak ({largest['dataset']}): {together['peak_rss_mb']:.0f} / "
        f"{largest['peak_rss_mb']:.0f} MB = {ratio:.2f}x (the single peaks summed: {summed:.0f} MB)"
    )
    print("seconds: the job's run (execute_in_process), definitions loaded before the clock starts")
    print("peak RSS: the interpreter's VmHWM, dbt included (in-process); 'then …': the peak so far after each run")
    print(f"gold.resumen_por_delito after all together: {together['gold_rows']}")
    if demo_run is not None:
        loaded = ", ".join(f"{key} {count:,}" for key, count in demo_run["bronze_rows"].items())
        others = [key for key in rows if key not in demo_run["bronze_rows"]]
        print(
            f"\ndelitos demo: {demo_run['process_seconds']:.1f} s (its main {demo_run['seconds']:.1f} s), peak RSS "
            f"{demo_run['peak_rss_mb']:.0f} MB, {demo_run['lines']} lines; bronze rows: {loaded}"
            + (f"; not run by the demo: {', '.join(others)}" if others else "")
        )


def line(name: str, months: int, rows: int, seconds: float, peak: float) -> str:
    """One row of the table."""
    return f"{name:<26}{months:>7}{rows:>11,}{seconds:>9.1f}{100_000 * seconds / rows:>13.2f}{peak:>13.0f}"


if __name__ == "__main__":
    main()
