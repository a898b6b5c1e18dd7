"""Exact by identity: every source row in exactly one place, bronze = lake = silver by row id, faults included."""

from __future__ import annotations

import gzip
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS, RECONCILED_CHECK
from delitos_platform.defs.lake.assets import LAKE_DELITOS, QUARANTINE_CHECK
from delitos_platform.defs.lake.checks import LEDGER_CHECK, dataset_ledger_balances
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.parquet import from_parquet_bytes, to_parquet_bytes
from delitos_platform.lake.storage import data_key, out_of_calendar_key, quarantine_key
from delitos_platform.partitions import Window, monthly_partitions, pending_window, range_tags
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import (
    ASSETS,
    check_evaluations,
    duckdb_resources,
    lake_ids,
    query,
    run_months,
    source_ids,
    table_ids,
)

SILVER = dg.AssetKey(["silver", "stg_delitos"])


def _write_snapshot(path: Path, rows: list[dict[str, str]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(rows, handle)
    return path


def test_a_malformed_row_is_quarantined_counted_and_blocks_nothing(tmp_path, snapshot_rows):
    march = [row for row in snapshot_rows if row["fecha_hecho"].startswith("2019-03")]
    snapshot = _write_snapshot(tmp_path / "malformed.json.gz", [*march, {**march[0], "cantidad": "-1"}])
    with EmulatorServer(snapshot=snapshot, port=0) as server:
        resources = duckdb_resources(server, tmp_path)
        result = run_months(resources, "2019-03-01", "2019-03-01")
        source = source_ids(server, Window.for_month("2019-03-01").soql())

    assert result.success
    [reconciled] = check_evaluations(result, RECONCILED_CHECK)
    assert reconciled.passed
    assert reconciled.description.startswith(f"1 months reconcile: source {len(march) + 1} = lake {len(march)} + ")
    [quarantine] = check_evaluations(result, QUARANTINE_CHECK)
    assert not quarantine.passed and quarantine.severity == dg.AssetCheckSeverity.WARN
    assert quarantine.description == "1 rows quarantined in 1 months (2019-03)"
    lake = resources["lake"]
    kept, refused = lake_ids(lake, ["2019-03-01"]), lake_ids(lake, ["2019-03-01"], quarantine_key)
    assert kept | refused == source and not kept & refused and len(refused) == 1
    database = tmp_path / "warehouse.duckdb"
    assert table_ids(database, "bronze.delitos") == kept == table_ids(database, "silver.stg_delitos")


def test_rows_outside_the_calendar_are_quarantined_and_the_ledger_balances(tmp_path, snapshot_rows):
    year = [row for row in snapshot_rows if row["fecha_hecho"].startswith("2019")]
    template = {key: value for key, value in year[0].items() if key != "fecha_hecho"}
    this_month = datetime.now(UTC).strftime("%Y-%m-02T00:00:00.000")
    outside = [template, {**template, "fecha_hecho": "2005-12-31T00:00:00.000"}]
    outside.append({**template, "fecha_hecho": "2031-01-01T00:00:00.000"})
    pending = {**template, "fecha_hecho": this_month}
    snapshot = _write_snapshot(tmp_path / "calendar.json.gz", [*year, *outside, pending])
    months = monthly_partitions.get_partition_keys()
    with EmulatorServer(snapshot=snapshot, port=0) as server:
        resources = duckdb_resources(server, tmp_path)
        tags = range_tags(months[0], months[-1])
        result = dg.materialize(
            [*ASSETS, dataset_ledger_balances], resources=resources, tags=tags, selection=[LAKE_DELITOS]
        )
        everything = source_ids(server, "1 = 1")

    assert result.success
    lake = resources["lake"]
    out_of_calendar = from_parquet_bytes(lake.read(out_of_calendar_key())).to_pylist()
    assert sorted(row["reason"] for row in out_of_calendar) == [
        "fecha_hecho before 2006-05-01, the first month",
        "fecha_hecho is missing",
        f"fecha_hecho on or after {pending_window().end}, in the future",
    ]
    placed = lake_ids(lake, months) | lake_ids(lake, months, quarantine_key) | {r["row_id"] for r in out_of_calendar}
    assert len(everything - placed) == 1  # the current month's row: pending, a partition only next month
    [ledger] = check_evaluations(result, LEDGER_CHECK)
    assert ledger.passed, ledger.description
    assert ledger.description == (
        f"source {len(year) + 4:,} = lake {len(year):,} + quarantined 0 + out of calendar 3 + pending 1 "
        "(the current month)"
    )


def test_rows_deleted_and_added_while_paging_lose_no_live_row_and_double_none(tmp_path, snapshot_rows):
    first, last = "2019-01-01", "2019-12-01"
    year = Window(Window.for_month(first).start, Window.for_month(last).end)
    with EmulatorServer(snapshot=snapshot_rows, port=0, admin=True) as server:
        resources = duckdb_resources(server, tmp_path)
        resources["socrata"] = socrata_for(server, page_size=100)
        server.faults.inject("slow", count=1_000, delay=0.15)  # pages far enough apart to change the source between
        # The first row in :id order is read at once; its deletion shifts every later offset by one. Rows added
        # land all over the :id order, some behind the pages already read.
        doomed = min(source_ids(server, year.soql()))
        newcomers = [row for row in snapshot_rows if row["fecha_hecho"].startswith("2019-10")][:20]
        changed = threading.Event()

        def change_while_paging() -> None:
            deadline = time.monotonic() + 60
            while server.requests_served < 7 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.dataset.delete_rows([doomed]) == 1
            server.dataset.add_rows(newcomers)
            changed.set()

        changer = threading.Thread(target=change_while_paging)
        changer.start()
        result = run_months(resources, first, last)
        changer.join()
        server.faults.clear()
        source = source_ids(server, year.soql())

    assert changed.is_set() and result.success
    lake_events = [event for event in result.get_asset_materialization_events() if event.asset_key == LAKE_DELITOS]
    assert lake_events[0].materialization.metadata["run_months_read_again"].value >= 1  # the change was seen and healed
    lake = resources["lake"]
    months = year.month_keys()
    assert lake_ids(lake, months) | lake_ids(lake, months, quarantine_key) == source
    assert doomed not in source
    database = tmp_path / "warehouse.duckdb"
    assert table_ids(database, "bronze.delitos") == source == table_ids(database, "silver.stg_delitos")
    assert query(database, "SELECT count(*) = count(DISTINCT row_id) FROM silver.stg_delitos") == [(True,)]


BRONZE_ROWS = "SELECT * FROM bronze.delitos ORDER BY row_id"


def _loaded(server: EmulatorServer, data_dir: Path, first: str, last: str) -> tuple[dict, Path, list[tuple]]:
    """Lake and bronze loaded for ``first`` → ``last``: the resources, the warehouse and bronze's rows."""
    resources = duckdb_resources(server, data_dir)
    assert run_months(resources, first, last, [LAKE_DELITOS, BRONZE_DELITOS]).success
    database = data_dir / "warehouse.duckdb"
    return resources, database, query(database, BRONZE_ROWS)


def test_a_bronze_load_that_fails_reconciliation_leaves_bronze_as_it_was(emulator, tmp_path):
    resources, database, before = _loaded(emulator, tmp_path, "2019-03-01", "2019-03-01")
    lake = resources["lake"]
    month = from_parquet_bytes(lake.read(data_key("2019-03-01")))
    lake.write(data_key("2019-03-01"), to_parquet_bytes(month.slice(1)))  # the lake lost a row the source has

    result = run_months(resources, "2019-03-01", "2019-03-01", [BRONZE_DELITOS, SILVER])

    assert not result.success
    [reconciled] = check_evaluations(result, RECONCILED_CHECK)
    assert not reconciled.passed
    assert failure_message(result).startswith("bronze was left as it was: 1 of 1 months do not reconcile: 2019-03:")
    assert query(database, BRONZE_ROWS) == before
    assert {event.asset_key for event in result.get_asset_materialization_events()} == set()


def test_a_foreign_month_in_an_object_fails_the_load_and_changes_no_month(emulator, tmp_path):
    resources, database, before = _loaded(emulator, tmp_path, "2019-02-01", "2019-03-01")
    lake = resources["lake"]
    lake.write(data_key("2019-03-01"), lake.read(data_key("2019-02-01")))  # February's rows under March's key

    result = run_months(resources, "2019-02-01", "2019-03-01", [BRONZE_DELITOS])

    february = query(database, "SELECT count(*) FROM bronze.delitos WHERE mes = '2019-02-01'")[0][0]
    assert failure_message(result) == (
        f"{lake.uri(data_key('2019-03-01'))} holds {february:,} rows of another month than 2019-03: nothing was loaded"
    )
    assert query(database, BRONZE_ROWS) == before


pytestmark = pytest.mark.usefixtures("warehouse_env")


@pytest.fixture
def warehouse_env(tmp_path, monkeypatch):
    """dbt's profile opens the same DuckDB file as the bronze asset."""
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
