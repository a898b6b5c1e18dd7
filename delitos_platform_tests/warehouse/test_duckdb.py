"""The embedded warehouse: a window's lake objects swapped into ``bronze.delitos`` in one streaming INSERT."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from dagster_duckdb import DuckDBResource

from delitos_platform.contract import LAKE_SCHEMA
from delitos_platform.lake.parquet import to_parquet_bytes
from delitos_platform.lake.storage import LakeError, LocalLake, data_key
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
