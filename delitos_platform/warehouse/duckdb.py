"""The embedded warehouse: ``bronze.delitos`` in a DuckDB file, months swapped in one transaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from delitos_platform.contract import LAKE_SCHEMA
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.storage import LakeError, LakeResource, data_key
from delitos_platform.partitions import Window
from delitos_platform.row_ids import RowIds
from delitos_platform.warehouse.base import (
    Approval,
    BronzeLoad,
    WarehouseError,
    WarehouseResource,
    approve_all,
    in_window,
)

# The schemas dbt writes to exist from the start, named literally (never main_gold).
CREATE_SCHEMAS = [f"CREATE SCHEMA IF NOT EXISTS {schema}" for schema in ("bronze", "silver", "gold")]
CREATE_BRONZE = """
CREATE TABLE IF NOT EXISTS bronze.delitos (
    row_id VARCHAR NOT NULL,
    fecha_hecho DATE NOT NULL,
    cod_depto VARCHAR NOT NULL,
    departamento VARCHAR NOT NULL,
    cod_muni VARCHAR NOT NULL,
    municipio VARCHAR NOT NULL,
    descripcion_conducta VARCHAR NOT NULL,
    cantidad BIGINT NOT NULL,
    mes DATE NOT NULL,
    _run_id VARCHAR NOT NULL,
    _loaded_at TIMESTAMP NOT NULL
)
"""
DELETE_WINDOW = "DELETE FROM bronze.delitos WHERE mes >= ? AND mes < ?"
# ``lake_rows`` is an Arrow stream registered on the connection: no value is ever pasted into SQL. Only the
# window's rows go in: one of another month would escape this window's delete and double on its own month.
INSERT_ROWS = """
INSERT INTO bronze.delitos
SELECT row_id, fecha_hecho, cod_depto, departamento, cod_muni, municipio, descripcion_conducta, cantidad,
       CAST(date_trunc('month', fecha_hecho) AS DATE), ?, CAST(current_timestamp AS TIMESTAMP)
FROM lake_rows
WHERE fecha_hecho >= ? AND fecha_hecho < ?
"""
# The row ids of each month, as ``RowIds`` computes them (see delitos_platform/row_ids.py).
ROW_IDS_BY_MONTH = """
SELECT strftime(mes, '%Y-%m-%d') AS month, count(*) AS n, md5(string_agg(row_id, ',' ORDER BY row_id)) AS digest
FROM bronze.delitos WHERE mes >= ? AND mes < ? GROUP BY 1
"""


class DuckDBWarehouse(WarehouseResource):
    """``bronze.delitos`` in ``$DELITOS_DATA_DIR/warehouse.duckdb`` (dagster-duckdb's ``DuckDBResource``).

    Lake objects are read through the lake resource (S3 too: DuckDB's httpfs extension cannot be
    downloaded offline) and inserted month by month inside ONE transaction, committed only once approved.
    """

    duckdb: DuckDBResource

    def load(self, lake: LakeResource, window: Window, run_id: str, approve: Approval = approve_all) -> BronzeLoad:
        started = time.perf_counter()
        failures: list[Exception] = []  # DuckDB reports a failing stream in its own words: keep the lake's

        def lake_batches() -> Iterator[pa.RecordBatch]:
            for month in window.month_keys():
                try:
                    table = from_parquet_bytes(lake.read(data_key(month))).cast(LAKE_SCHEMA)
                except LakeError as error:
                    failures.append(error)
                    raise
                except (pa.ArrowException, ValueError) as error:
                    failures.append(WarehouseError(f"cannot load {lake.uri(data_key(month))}: {error}"))
                    raise
                yield from table.to_batches()

        # One INSERT streaming every month, object by object: one statement, a month in memory at a time.
        lake_rows = pa.RecordBatchReader.from_batches(LAKE_SCHEMA, lake_batches())
        with self._connection() as connection:
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(DELETE_WINDOW, [window.start, window.end])
                connection.register("lake_rows", lake_rows)
                connection.execute(INSERT_ROWS, [run_id, window.start, window.end])
                held = in_window(window, _row_ids(connection, window))
                committed = approve(held)
                connection.execute("COMMIT" if committed else "ROLLBACK")
            except BaseException:
                connection.execute("ROLLBACK")
                if failures:
                    raise failures[0] from None
                raise
            finally:
                connection.unregister("lake_rows")
        return BronzeLoad(held, run_id, time.perf_counter() - started, committed)

    def row_ids_by_month(self, window: Window) -> dict[str, RowIds]:
        with self._connection() as connection:
            return _row_ids(connection, window)

    def fetch(self, sql: str) -> list[tuple]:
        with self._connection() as connection:
            return connection.execute(sql).fetchall()

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection whose schemas and bronze table exist; DuckDB failures told in one sentence."""
        try:
            with self.duckdb.get_connection() as connection:
                try:
                    for statement in [*CREATE_SCHEMAS, CREATE_BRONZE]:
                        connection.execute(statement)
                    yield connection
                finally:
                    connection.close()  # dagster-duckdb closes it only when the block succeeded
        except duckdb.Error as error:
            raise WarehouseError(f"DuckDB warehouse {self.duckdb.database}: {_first_line(error)}") from None


def _row_ids(connection: duckdb.DuckDBPyConnection, window: Window) -> dict[str, RowIds]:
    rows = connection.execute(ROW_IDS_BY_MONTH, [window.start, window.end]).fetchall()
    return {month: RowIds(count, digest) for month, count, digest in rows}


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
