"""The revision history in dbt, on a small scripted history: a month revised, a row deleted, a row added, a
month first loaded late, a wholesale re-publication under new ids, a re-run; then the maturity of each month
computed by hand. The same script on DuckDB and on fakesnow gives the same tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from delitos_platform_tests.dbt_project.test_dbt_project import (
    BRONZE_DDL,
    LEDGER_DDL,
    BronzeRow,
    DbtRun,
    assert_all_passed,
    fakesnow_dbt_env,
)

JAN, FEB, MAR = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
# The source versions of the script (rowsUpdatedAt), some days after each month's end.
V1, V2, V3, V4 = datetime(2024, 2, 10), datetime(2024, 3, 15), datetime(2024, 4, 20), datetime(2024, 5, 20)
CONDUCT = "ARTICULO 269A. ACCESO ABUSIVO A UN SISTEMA INFORMATICO"


def _row(row_id: str, day: date, cantidad: int = 1) -> BronzeRow:
    return BronzeRow(row_id, day, "68", "SANTANDER", "68001", "BUCARAMANGA", CONDUCT, cantidad)


@dataclass
class Warehouse:
    """bronze.delitos and its load ledger as the platform leaves them after each load, dbt pointed at them."""

    name: str
    dbt: DbtRun
    env: dict[str, str]
    cursor: Any = None
    rows: dict[str, BronzeRow] = field(default_factory=dict)
    ledger: list[tuple[date, datetime, int]] = field(default_factory=list)

    def load(self, version: datetime, months: list[date], rows: list[BronzeRow]) -> None:
        """Swap ``months`` in with ``rows`` (read at ``version``), as bronze's load does, then ``dbt build``."""
        self.rows = {key: row for key, row in self.rows.items() if row.mes not in months}
        self.rows |= {row.row_id: row for row in rows}
        self.ledger += [(month, version, sum(row.mes == month for row in rows)) for month in months]
        statements = [
            "create schema if not exists bronze",
            BRONZE_DDL,
            LEDGER_DDL,
            *(f"insert into bronze.delitos values {_values(row)}" for row in self.rows.values()),
            *(f"insert into bronze.delitos_cargas values {_entry(*entry)}" for entry in self.ledger),
        ]
        for sql in statements:
            self.execute(sql)
        assert_all_passed(self.dbt("build", target=self.name, env=self.env))

    def execute(self, sql: str) -> list[tuple]:
        """A statement's rows, plain (Snowflake's NUMBER as int, floats rounded)."""
        if self.name == "duckdb":
            with duckdb.connect(str(self.dbt.warehouse)) as connection:
                rows = connection.execute(sql).fetchall()
        else:
            self.cursor.execute(sql)
            rows = self.cursor.fetchall() if self.cursor.description else []
        return [tuple(_plain(value) for value in row) for row in rows]


def _values(row: BronzeRow) -> str:
    text = ", ".join(
        f"'{value}'" for value in (row.row_id, row.fecha_hecho, row.cod_depto, row.departamento, row.cod_muni)
    )
    return f"({text}, '{row.municipio}', '{row.descripcion_conducta}', {row.cantidad}, date '{row.mes}', 't', null)"


def _entry(month: date, version: datetime, rows: int) -> str:
    return f"(date '{month}', timestamp '{version}', 't', {rows}, 't', current_timestamp)"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else round(float(value), 4)
    return round(value, 4) if isinstance(value, float) else value


@pytest.fixture(params=["duckdb", "snowflake"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """An empty warehouse: a DuckDB file, or a database of its own on the session's fakesnow server."""
    dbt = DbtRun(warehouse=tmp_path / "warehouse.duckdb", work=tmp_path)
    if request.param == "duckdb":
        yield Warehouse("duckdb", dbt, {})
        return
    import snowflake.connector

    server = request.getfixturevalue("fakesnow_server")
    database = f"HISTORY_{uuid.uuid4().hex[:12]}".upper()
    connection = snowflake.connector.connect(**server)
    cursor = connection.cursor()
    cursor.execute(f"create database {database}")
    cursor.execute(f"use database {database}")
    yield Warehouse("snowflake", dbt, fakesnow_dbt_env(server, database), cursor)
    connection.close()


HISTORY_TABLES = ("silver.delitos_versiones", "gold.revisiones_por_mes", "gold.madurez")
REVISIONS = "select mes, version, revision, registros, casos, filas_agregadas, filas_eliminadas, filas_modificadas"


# fakesnow warns on every Arrow fetch dbt-snowflake makes; it says nothing about the project.
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_a_scripted_history_gives_each_months_revisions_and_maturity(warehouse: Warehouse) -> None:
    january = [_row(f"a{n}", JAN.replace(day=10 + n)) for n in range(1, 5)]
    warehouse.load(V1, [JAN], january)
    # V2: three of January's rows get one more case; February is published.
    revised = [replace(row, cantidad=2) if row.row_id in ("a1", "a2", "a3") else row for row in january]
    february = [_row("b1", FEB.replace(day=3)), _row("b2", FEB.replace(day=4))]
    warehouse.load(V2, [JAN, FEB], revised + february)
    # V3: a January row is deleted, a February row added, March published; V4 re-publishes every row under
    # a new id; then V4 is loaded again.
    march = [_row("c1", MAR.replace(day=9))]
    after_v3 = [row for row in revised if row.row_id != "a4"] + [*february, _row("b3", FEB.replace(day=5)), *march]
    warehouse.load(V3, [JAN, FEB, MAR], after_v3)
    republished = [replace(row, row_id=f"new-{row.row_id}") for row in after_v3]
    warehouse.load(V4, [JAN, FEB, MAR], republished)
    history = warehouse.execute("select * from silver.delitos_versiones order by row_id, version")
    warehouse.load(V4, [JAN, FEB, MAR], republished)

    assert sorted(warehouse.execute(f"{REVISIONS} from gold.revisiones_por_mes")) == [
        (JAN, V1, 1, 4, 4, 4, 0, 0),
        (JAN, V2, 2, 4, 7, 0, 0, 3),  # 3 rows' cantidad +1: casos +3
        (JAN, V3, 3, 3, 6, 0, 1, 0),  # a row deleted: registros -1
        (FEB, V2, 1, 2, 2, 2, 0, 0),
        (FEB, V3, 2, 3, 3, 1, 0, 0),  # a row added; February did not change at V1 or V4: no row for them
        (MAR, V3, 1, 1, 1, 1, 0, 0),  # re-published under new ids at V4: no mass delete + add
    ]
    assert warehouse.execute("select * from silver.delitos_versiones order by row_id, version") == history
    changes = "select cambio, count(*) from silver.delitos_versiones where version = timestamp '2024-05-20' group by 1"
    assert sorted(warehouse.execute(changes)) == [("reemplazada", 7), ("reidentificada", 7)]
    current = "select row_id, row_id_anterior, cantidad from silver.delitos_historial where vigente order by 1"
    assert warehouse.execute(current) == [
        (f"new-{row.row_id}", row.row_id, row.cantidad) for row in sorted(after_v3, key=lambda row: row.row_id)
    ]
    deleted = "select valido_desde, valido_hasta, terminada_por from silver.delitos_historial where row_id = 'a4'"
    assert warehouse.execute(deleted) == [(V1, V3, "eliminada")]

    # A full refresh rebuilds silver and gold from bronze but keeps the history (bronze holds only the latest state).
    before = {table: sorted(warehouse.execute(f"select * from {table}"), key=repr) for table in HISTORY_TABLES}
    assert_all_passed(warehouse.dbt("build", "--full-refresh", target=warehouse.name, env=warehouse.env))
    assert {table: sorted(warehouse.execute(f"select * from {table}"), key=repr) for table in HISTORY_TABLES} == before

    # By hand, at the latest version V4 (2024-05-20); "known k months after the end" = in the latest version
    # at or before the month's first day + k + 1 months. January's current casos is 6: at k=1 (by March 1st,
    # V1) 4 were known, at k=2 (V2) 7, at k=3 (V3) 6. February's 3: k=1 (V2) 2, k=2 (V3) 3. March's 1: k=1 1.
    # At k=0 no month had been read yet.
    maturity = "select mes, k, casos_conocidos, casos_actuales, proporcion, proporcion_tipica from gold.madurez"
    assert sorted(warehouse.execute(maturity)) == [
        (JAN, 0, None, 6, None, None),
        (JAN, 1, 4, 6, 0.6667, 0.6667),
        (JAN, 2, 7, 6, 1.1667, 1.0833),
        (JAN, 3, 6, 6, 1.0, 1.0),
        (FEB, 0, None, 3, None, None),
        (FEB, 1, 2, 3, 0.6667, 0.6667),
        (FEB, 2, 3, 3, 1.0, 1.0833),
        (MAR, 0, None, 1, None, None),
        (MAR, 1, 1, 1, 1.0, 0.6667),
    ]
    # Months typically hold 95% of their cases at k=2 (median 1.0833); at V4 only March is younger than that.
    trend = "select mes, casos, provisional from gold.tendencia_mensual order by mes"
    assert warehouse.execute(trend) == [(JAN, 6, False), (FEB, 3, False), (MAR, 1, True)]
