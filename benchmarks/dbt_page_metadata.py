"""What the dbt step's page metadata costs, side by side with the dbt build it follows (issue 21's daily path).

    .venv/bin/delitos demo && .venv/bin/python benchmarks/dbt_page_metadata.py [--data-dir data]

On the warehouse a run left (``delitos demo``, or a national backfill's data dir) and the newest dbt invocation
of that run (``dbt_project/target/dbt_models-*``: its compiled SQL and ``run_results.json``), times what
``delitos_platform/defs/dbt/observability.py`` adds after dbt exits:

* ``row counts``: ONE query, ``count(*)`` of each gold table and a grouped count per monthly silver model, for
  the whole calendar (a full backfill) and for one month (the daily re-sync);
* ``column lineage``: sqlglot over every model's compiled SQL (a first run, or SQL that changed), and the same
  lineage read back from what the step kept (every later run);

against the dbt build itself (the invocation's ``elapsed_time``). Each figure is the best of 3.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from delitos_platform.defs.dbt.observability import column_lineage, declared_tables, row_counts, with_column_lineage
from delitos_platform.locations import data_dir
from delitos_platform.partitions import Window, calendar
from delitos_platform.transform import DBT_PROJECT_DIR
from delitos_platform.warehouse.duckdb import DuckDBWarehouse

REPEATS = 3


def best_of(work: Callable[[], object]) -> float:
    """The shortest of ``REPEATS`` timings of ``work``, in seconds."""
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def built_every_model(invocation: Path) -> bool:
    """Whether a dbt invocation compiled every model (a whole ``dbt build``, not a subset or a failure)."""
    manifest = json.loads((invocation / "manifest.json").read_text())
    models = [node for node in manifest["nodes"].values() if node["resource_type"] == "model"]
    compiled = invocation / "compiled"
    return all((compiled / node["package_name"] / node["original_file_path"]).is_file() for node in models)


def newest_invocation() -> Path:
    """The newest dbt invocation folder dagster-dbt left that built every model."""
    runs = [path.parent for path in (DBT_PROJECT_DIR / "target").glob("dbt_models-*/run_results.json")]
    runs = [run for run in runs if built_every_model(run)]
    if not runs:
        raise SystemExit("no dbt invocation under dbt_project/target: run `delitos demo` first")
    return max(runs, key=lambda path: (path / "run_results.json").stat().st_mtime)


def main() -> None:
    """Print the dbt build's time and what row counts and lineage add to it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=data_dir(), help="the data dir of the run (warehouse)")
    args = parser.parse_args()
    invocation = newest_invocation()
    manifest = json.loads((invocation / "manifest.json").read_text())
    dbt_seconds = json.loads((invocation / "run_results.json").read_text())["elapsed_time"]
    models = [node for node in manifest["nodes"].values() if node["resource_type"] == "model"]
    keys = [dg.AssetKey([node["schema"], node["name"]]) for node in models]
    monthly = [key for key in keys if key.path[0] == "silver"]
    warehouse = DuckDBWarehouse(duckdb=DuckDBResource(database=str(args.data_dir / "warehouse.duckdb")))

    def counts(window: Window) -> None:
        row_counts(warehouse, keys, set(monthly), window)

    def lineage() -> None:  # traced, as on a first run (the step keeps what it traced for the next runs)
        tables = declared_tables(manifest)
        for node in models:
            sql = (invocation / "compiled" / node["package_name"] / node["original_file_path"]).read_text()
            column_lineage(sql, list(node["columns"]), tables, manifest["metadata"]["adapter_type"])

    def lineage_kept() -> None:  # a later run: the same SQL, its lineage read back from the step's cache
        events = [
            dg.Output(None, output_name=node["name"], metadata={"unique_id": node["unique_id"]}) for node in models
        ]
        list(with_column_lineage(events, manifest, invocation))

    lineage_kept()  # traces once (or finds it kept already)
    whole, one_month = calendar(), Window.for_month("2019-03-01")
    [(rows,)] = warehouse.fetch("select count(*) from silver.stg_delitos")
    figures = {
        f"dbt build ({len(models)} models, {rows:,} silver rows)": dbt_seconds,
        f"row counts, {len(whole.month_keys())} months (1 query, {len(keys)} tables)": best_of(lambda: counts(whole)),
        f"row counts, one month (1 query, {len(keys)} tables)": best_of(lambda: counts(one_month)),
        f"column lineage, traced ({len(models)} models)": best_of(lineage),
        f"column lineage, kept ({len(models)} models)": best_of(lineage_kept),
    }
    width = max(map(len, figures))
    for name, seconds in figures.items():
        share = "" if name.startswith("dbt build") else f"  {100 * seconds / dbt_seconds:5.1f}% of the dbt build"
        print(f"{name.ljust(width)}  {seconds:7.3f} s{share}")


if __name__ == "__main__":
    main()
