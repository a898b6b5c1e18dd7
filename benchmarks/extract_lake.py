"""Source → lake, side by side in one run: our extraction vs the raw page fetch vs dlt's rest_api → DuckDB.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/extract_lake.py

Every contender reads the same ≈492k rows (`:id` + the 7 columns, `$order=:id`, 50,000-row pages) from the
same emulator subprocess, in a fresh interpreter of its own so that its peak RSS is its own. ``ours`` runs
with its default settings (two page requests in flight); ``ours_serial`` with one, as the raw fetch pages.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_arguments, emulator, national_snapshot, report_contender, run_contender

from delitos_platform.contract import DATASET_ID, SOURCE_COLUMNS
from delitos_platform.partitions import range_tags

FIRST, LAST = "2006-05-01", "2026-05-01"
PAGE = 50_000
SELECT = ", ".join([":id", *SOURCE_COLUMNS])


def raw_fetch(url: str) -> dict:
    """The floor: page every row with a plain HTTP client, keeping only the bytes."""
    started, rows, size, pages = time.perf_counter(), 0, 0, 0
    with requests.Session() as session:
        while True:
            params = {"$select": SELECT, "$order": ":id", "$limit": PAGE, "$offset": rows}
            body = session.get(f"{url}/resource/{DATASET_ID}.json", params=params, timeout=120).content
            page_rows = body.count(b'":id"')
            rows, size, pages = rows + page_rows, size + len(body), pages + 1
            if page_rows < PAGE:
                break
    return {"rows": rows, "pages": pages, "mb": size / 1e6, "seconds": time.perf_counter() - started}


def ours(url: str, concurrent_requests: int | None = None) -> dict:
    """Our lake asset: one Dagster run over every month, into a local lake (default settings unless told)."""
    import dagster as dg

    from delitos_platform.defs.lake.assets import lake_delitos
    from delitos_platform.defs.source.assets import socrata_delitos
    from delitos_platform.lake.storage import LocalLake
    from delitos_platform.socrata import SocrataResource
    from delitos_platform.warehouse.base import WarehouseResource

    socrata = SocrataResource(url=url, **({"concurrent_requests": concurrent_requests} if concurrent_requests else {}))
    with tempfile.TemporaryDirectory() as lake_root, dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = dg.materialize(
            [socrata_delitos, lake_delitos],
            # A lake-only run never takes the warehouse: any warehouse resource will do.
            resources={"socrata": socrata, "lake": LocalLake(root=lake_root), "warehouse": WarehouseResource()},
            tags=range_tags(FIRST, LAST),
            instance=instance,
        )
        seconds = time.perf_counter() - started
        runs = instance.get_runs_count()
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    return {
        "rows": metadata["run_rows"].value + metadata["run_quarantined"].value,
        "pages": metadata["run_pages"].value,
        "extract_seconds": metadata["run_seconds"].value,
        "dagster_runs": runs,
        "seconds": seconds,
    }


def dlt_rest_api(url: str) -> dict:
    """The peer a user would pick: dlt's rest_api source (offset paginator) loading DuckDB."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {"base_url": f"{url}/"},
            "resources": [
                {
                    "name": "delitos",
                    "endpoint": {
                        "path": f"resource/{DATASET_ID}.json",
                        "params": {"$select": SELECT, "$order": ":id"},
                        "data_selector": "$",
                        "paginator": {
                            "type": "offset",
                            "limit": PAGE,
                            "offset_param": "$offset",
                            "limit_param": "$limit",
                            "total_path": None,
                        },
                    },
                }
            ],
        }
    )
    with tempfile.TemporaryDirectory() as work:
        pipeline = dlt.pipeline(
            pipeline_name="delitos_bench",
            destination=dlt.destinations.duckdb(str(Path(work) / "dlt.duckdb")),
            dataset_name="bronze",
            pipelines_dir=str(Path(work) / "pipelines"),
        )
        started = time.perf_counter()
        pipeline.run(source)
        seconds = time.perf_counter() - started
        with pipeline.sql_client() as client:
            rows = client.execute_sql("select count(*) from delitos")[0][0]
    return {"rows": rows, "seconds": seconds}


def ours_one_request_at_a_time(url: str) -> dict:
    """Our lake asset paging like the raw fetch, one request in flight: what the concurrency is worth."""
    return ours(url, concurrent_requests=1)


CONTENDERS = {"raw": raw_fetch, "ours": ours, "ours_serial": ours_one_request_at_a_time, "dlt": dlt_rest_api}


def main() -> None:
    """Run the contenders one after the other against one emulator and print the figures side by side."""
    args = benchmark_arguments(__doc__, CONTENDERS)
    if args.contender:
        report_contender(CONTENDERS[args.contender], args.url)
        return
    snapshot = national_snapshot()
    names = ["raw", "ours", "ours_serial"] + ([] if args.skip_dlt else ["dlt"])
    with emulator(snapshot) as url:
        run_contender(Path(__file__), "raw", ["--url", url])  # warm the server's caches once
        results = {name: run_contender(Path(__file__), name, ["--url", url]) for name in names}
    print_figures(results)


def print_figures(results: dict[str, dict]) -> None:
    """One line per contender, then the ratios the targets are stated in."""
    print(f"{'contender':<13}{'rows':>10}{'seconds':>10}{'peak RSS MB':>14}")
    for name, figures in results.items():
        print(f"{name:<13}{figures['rows']:>10,}{figures['seconds']:>10.2f}{figures['peak_rss_mb']:>14.0f}")
    raw, ours = results["raw"], results["ours"]
    print(
        f"\nours: {ours['pages']} pages, {ours['dagster_runs']} Dagster run, extraction {ours['extract_seconds']:.2f} s"
    )
    print(f"ours / raw fetch  = {ours['seconds'] / raw['seconds']:.2f}x   (target ≤ 2x; pages 2 requests at a time)")
    serial = results["ours_serial"]
    print(f"ours_serial / raw = {serial['seconds'] / raw['seconds']:.2f}x   (one request at a time, as the raw fetch)")
    if "dlt" in results:
        dlt = results["dlt"]
        print(f"dlt / ours        = {dlt['seconds'] / ours['seconds']:.2f}x   (target ≥ 3x)")
        print(f"peak RSS ours/dlt = {ours['peak_rss_mb']:.0f} / {dlt['peak_rss_mb']:.0f} MB   (target: below dlt)")


if __name__ == "__main__":
    main()
