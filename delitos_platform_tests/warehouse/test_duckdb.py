"""The embedded warehouse: a window's lake objects swapped into ``bronze.delitos`` in one streaming INSERT."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from dagster_duckdb import DuckDBResource

from delitos_platform.contract import LAKE_SCHEMA
from delitos_platform.lake.parquet import to_parquet_bytes
from delitos_platform.lake.storage import LakeError, LocalLake, data_key
from delitos_platform.lake.versions import UPDATED_AT_METADATA, VERSION_METADATA
from delitos_platform.partitions import Window
from delitos_platform.warehouse.duckdb import DuckDBWarehouse

SPRING_2019 = Window(date(2019, 3, 1), date(2019, 6, 1))


def _month_rows(month: date, rows: int, prefix: str = "row") -> pa.Table:
    return pa.table(
        {
            "row_id": [f"{prefix}-{month:%Y%m}-{n:03d}" for n in range(rows)],
            "fecha_hecho": [month.replace(day=1 + n % 28) for n in range(rows)],
            "cod_depto": ["05"] * rows,
            "departamento": ["ANTIOQUIA"] * rows,
            "cod_muni": ["05001"] * rows,
            "municipio": ["MEDELLÍN"] * rows,
            "descripcion_conducta": ["ARTICULO 269A. ACCESO ABUSIVO A UN SISTEMA INFORMÁTICO"] * rows,
            "cantidad": [1 + n % 3 for n in range(rows)],
        },
        schema=LAKE_SCHEMA,
    )


def _fill(lake: LocalLake, rows_per_month: dict[date, int], prefix: str = "row") -> None:
    for month, rows in rows_per_month.items():
        lake.write(data_key(month.isoformat()), to_parquet_bytes(_month_rows(month, rows, prefix)))


def _bronze(database: Path) -> list[tuple]:
    with duckdb.connect(str(database)) as connection:
        return connection.execute("SELECT mes, row_id, cantidad, _run_id FROM bronze.delitos ORDER BY ALL").fetchall()


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(duckdb=DuckDBResource(database=str(tmp_path / "warehouse.duckdb")))


def test_a_window_is_swapped_in_whole_and_a_rerun_replaces_it(warehouse, tmp_path):
    lake = LocalLake(root=str(tmp_path / "lake"))
    _fill(lake, {date(2019, 2, 1): 4, date(2019, 3, 1): 5, date(2019, 4, 1): 0, date(2019, 5, 1): 7})
    warehouse.load(lake, Window.for_month("2019-02-01"), "run-0")

    first = warehouse.load(lake, SPRING_2019, "run-1")
    _fill(lake, {date(2019, 3, 1): 2, date(2019, 5, 1): 3}, prefix="revised")
    second = warehouse.load(lake, SPRING_2019, "run-2")

    assert first.rows_by_month == {"2019-03-01": 5, "2019-04-01": 0, "2019-05-01": 7}
    assert second.rows_by_month == {"2019-03-01": 2, "2019-04-01": 0, "2019-05-01": 3}
    rows = _bronze(Path(warehouse.duckdb.database))
    assert [row for row in rows if row[0] == date(2019, 2, 1)] == [
        (date(2019, 2, 1), f"row-201902-{n:03d}", 1 + n % 3, "run-0") for n in range(4)
    ]
    spring = [row for row in rows if row[0] >= date(2019, 3, 1)]
    assert len(spring) == 5 and {row[3] for row in spring} == {"run-2"}
    assert all(row[1].startswith("revised-") for row in spring)
    assert warehouse.count_by_month(SPRING_2019) == {"2019-03-01": 2, "2019-05-01": 3}


def test_a_month_missing_from_the_lake_is_told_by_the_lake_and_bronze_keeps_its_rows(warehouse, tmp_path):
    lake = LocalLake(root=str(tmp_path / "lake"))
    _fill(lake, {date(2019, 3, 1): 5, date(2019, 4, 1): 6, date(2019, 5, 1): 7})
    warehouse.load(lake, SPRING_2019, "run-1")
    before = _bronze(Path(warehouse.duckdb.database))
    Path(lake.path(data_key("2019-05-01"))).unlink()

    with pytest.raises(LakeError, match=r"the lake has no object .*delitos-2019-05\.parquet: materialize lake/delitos"):
        warehouse.load(lake, SPRING_2019, "run-2")

    assert _bronze(Path(warehouse.duckdb.database)) == before


def test_a_corrupt_lake_object_fails_the_load_naming_it_and_bronze_keeps_its_rows(warehouse, tmp_path):
    lake = LocalLake(root=str(tmp_path / "lake"))
    _fill(lake, {date(2019, 3, 1): 5, date(2019, 4, 1): 6, date(2019, 5, 1): 7})
    warehouse.load(lake, SPRING_2019, "run-1")
    before = _bronze(Path(warehouse.duckdb.database))
    Path(lake.path(data_key("2019-04-01"))).write_bytes(b"not parquet at all")

    with pytest.raises(LakeError, match=r"delitos-2019-04\.parquet is not readable Parquet .*2019-04 again"):
        warehouse.load(lake, SPRING_2019, "run-2")

    assert _bronze(Path(warehouse.duckdb.database)) == before


def _write_at(lake: LocalLake, month: date, rows: int, rows_updated_at: int, prefix: str = "row") -> None:
    """A month object as the extraction writes it: with the source version it was read at."""
    version = {VERSION_METADATA: f"{rows}@2024-01-01T00:00:00.000", UPDATED_AT_METADATA: str(rows_updated_at)}
    table = _month_rows(month, rows, prefix).replace_schema_metadata(version)
    lake.write(data_key(month.isoformat()), to_parquet_bytes(table))


def _ledger(database: Path) -> list[tuple]:
    with duckdb.connect(str(database)) as connection:
        sql = "SELECT mes, version, version_mes, registros, _run_id FROM bronze.delitos_cargas ORDER BY ALL"
        return connection.execute(sql).fetchall()


def test_each_loaded_month_is_recorded_at_the_source_version_its_object_was_read_at(warehouse, tmp_path):
    lake = LocalLake(root=str(tmp_path / "lake"))
    for month, rows in {date(2019, 3, 1): 5, date(2019, 4, 1): 0, date(2019, 5, 1): 7}.items():
        _write_at(lake, month, rows, rows_updated_at=1_700_000_000)
    warehouse.load(lake, SPRING_2019, "run-1")
    warehouse.load(lake, SPRING_2019, "run-2")  # the same version again: no second entry
    _write_at(lake, date(2019, 5, 1), 8, rows_updated_at=1_700_086_400)
    warehouse.load(lake, Window.for_month("2019-05-01"), "run-3")
    refused = warehouse.load(lake, Window.for_month("2019-04-01"), "run-4", approve=lambda _: False)

    first, second = datetime(2023, 11, 14, 22, 13, 20), datetime(2023, 11, 15, 22, 13, 20)
    assert not refused.committed
    assert _ledger(Path(warehouse.duckdb.database)) == [
        (date(2019, 3, 1), first, "5@2024-01-01T00:00:00.000", 5, "run-2"),
        (date(2019, 4, 1), first, "0@2024-01-01T00:00:00.000", 0, "run-2"),
        (date(2019, 5, 1), first, "7@2024-01-01T00:00:00.000", 7, "run-2"),
        (date(2019, 5, 1), second, "8@2024-01-01T00:00:00.000", 8, "run-3"),
    ]


def test_an_object_without_a_source_version_loads_without_a_ledger_entry(warehouse, tmp_path):
    lake = LocalLake(root=str(tmp_path / "lake"))
    _fill(lake, {date(2019, 3, 1): 2})
    loaded = warehouse.load(lake, Window.for_month("2019-03-01"), "run-1")
    assert loaded.rows == 2 and _ledger(Path(warehouse.duckdb.database)) == []
