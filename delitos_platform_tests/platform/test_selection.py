"""A run of some assets builds those and tests those: the README's `dg launch` selection on a fresh warehouse."""

from __future__ import annotations

import dagster as dg

from delitos_platform_tests.platform.helpers import check_evaluations, duckdb_resources, query, run_months

# The README's example: `dg launch --assets lake/delitos,bronze/delitos,silver/stg_delitos --partition-range …`.
SELECTED = [
    dg.AssetKey(["lake", "delitos"]),
    dg.AssetKey(["bronze", "delitos"]),
    dg.AssetKey(["silver", "stg_delitos"]),
]


def test_silver_alone_on_a_fresh_warehouse_builds_silver_and_runs_no_test_of_unbuilt_gold(
    emulator, tmp_path, monkeypatch
):
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))  # where dbt finds it
    result = run_months(duckdb_resources(emulator, tmp_path), "2019-01-01", "2019-03-01", selection=SELECTED)

    assert result.success
    silver_rows = query(tmp_path / "warehouse.duckdb", "SELECT count(*) FROM silver.stg_delitos")[0][0]
    assert silver_rows > 0
    assert check_evaluations(result, "unique_stg_delitos_row_id")  # silver's own tests ran
    assert not any("matches_totals" in event.message for event in result.all_events if event.message)
    gold = query(
        tmp_path / "warehouse.duckdb", "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'gold'"
    )
    assert gold == [(0,)]
