"""The embedded warehouse: ``bronze.delitos`` in a DuckDB file, months swapped in one transaction."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from delitos_platform.contract import LAKE_SCHEMA
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.storage import LakeResource, data_key
from delitos_platform.partitions import Window, group_months
from delitos_platform.row_ids import RowIds
from delitos_platform.warehouse.base import (
    Approval,
    BronzeLoad,
    WarehouseError,
    WarehouseResource,
    approve_all,
    in_window,
)
from delitos_platform.warehouse.lock import WarehouseLock

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
# From this load's own table (its name is the platform's, never input); values are bound. Only the window's
# rows go in: one of another month would escape this window's delete and double on its own month.
INSERT_ROWS = """
INSERT INTO bronze.delitos
SELECT row_id, fecha_hecho, cod_depto, departamento, cod_muni, municipio, descripcion_conducta, cantidad,
       CAST(date_trunc('month', fecha_hecho) AS DATE), ?, CAST(current_timestamp AS TIMESTAMP)
FROM {source}
WHERE fecha_hecho >= ? AND fecha_hecho < ?
"""
LOAD_TABLE_PREFIX = "delitos_load_"
STALE_LOAD_TABLES = (
    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'bronze' "
    f"AND starts_with(table_name, '{LOAD_TABLE_PREFIX}')"
)
# The row ids of each month, as ``RowIds`` computes them (see delitos_platform/row_ids.py), asked a few months
# at a time: the ordered aggregate holds every id it digests, so one query over a large window grows with it.
COUNT_BY_MONTH = """
SELECT strftime(mes, '%Y-%m-%d') AS month, count(*) AS n FROM bronze.delitos WHERE mes >= ? AND mes < ? GROUP BY 1
"""
ROW_IDS_BY_MONTH = """
SELECT strftime(mes, '%Y-%m-%d') AS month, count(*) AS n, md5(string_agg(row_id, ',' ORDER BY row_id)) AS digest
FROM bronze.delitos WHERE mes >= ? AND mes < ? GROUP BY 1
"""
ROWS_DIGESTED_AT_ONCE = 200_000
# How long a run waits for another run to let go of the warehouse before it fails, changing nothing.
DEFAULT_WAIT_SECONDS = 1800.0


class DuckDBWarehouse(WarehouseResource):
    """``bronze.delitos`` in ``$DELITOS_DATA_DIR/warehouse.duckdb`` (dagster-duckdb's ``DuckDBResource``).

    Lake objects are read through the lake resource (S3 too: DuckDB's httpfs extension cannot be
    downloaded offline), copied month by month into a load table of their own, then swapped into bronze in ONE
    transaction, committed only once approved.
    """

    duckdb: DuckDBResource
    wait_seconds: float = Field(
        default=DEFAULT_WAIT_SECONDS,
        description="How long a run waits for the run that holds the warehouse (0: fail at once).",
    )
    _held: list[str] = PrivateAttr(default_factory=list)

    def hold(
        self,
        run_id: str,
        owner: int,
        log: Callable[[str], None],
        run_ended: Callable[[str], bool],
    ) -> None:
        """Take the DuckDB file for the run (a claim beside it, see ``warehouse/lock.py``) until this resource ends.

        Waits up to ``wait_seconds`` for another run to let go, saying once for which run; then WarehouseBusyError.
        """
        WarehouseLock(self.duckdb.database).claim(run_id, owner, self.wait_seconds, log, run_ended)
        self._held.append(run_id)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Let go of the warehouse: at the end of the run (of the step, when each step has its own process)."""
        while self._held:
            WarehouseLock(self.duckdb.database).release(self._held.pop())

    def load(self, lake: LakeResource, window: Window, run_id: str, approve: Approval = approve_all) -> BronzeLoad:
        started = time.perf_counter()
        with self._connection() as connection:
            load_table = self._copy_lake(connection, lake, window)
            try:
                connection.execute("BEGIN TRANSACTION")
                try:
                    connection.execute(DELETE_WINDOW, [window.start, window.end])
                    connection.execute(INSERT_ROWS.format(source=load_table), [run_id, window.start, window.end])
                    held = in_window(window, _row_ids(connection, window))
                    committed = approve(held)
                    connection.execute("COMMIT" if committed else "ROLLBACK")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
            finally:
                connection.execute(f"DROP TABLE IF EXISTS {load_table}")
        return BronzeLoad(held, run_id, time.perf_counter() - started, committed)

    @staticmethod
    def _copy_lake(connection: duckdb.DuckDBPyConnection, lake: LakeResource, window: Window) -> str:
        """Copy the window's objects, a month per statement, into a load table of this load's own.

        The swap then inserts from a table, not from Arrow: rows inserted from Arrow stay in memory until their
        transaction ends, so one transaction over a large window would grow with it; a table's pages are
        DuckDB's to spill. Load tables left by a killed run are dropped first (a DuckDB file has one writer).
        """
        for (stale,) in connection.execute(STALE_LOAD_TABLES).fetchall():
            connection.execute(f"DROP TABLE IF EXISTS bronze.{stale}")
        load_table = f"bronze.{LOAD_TABLE_PREFIX}{uuid.uuid4().hex}"
        connection.register("lake_month", LAKE_SCHEMA.empty_table())
        try:
            connection.execute(f"CREATE TABLE {load_table} AS SELECT * FROM lake_month")
            for month in window.month_keys():
                try:
                    table = from_parquet_bytes(lake.read(data_key(month))).cast(LAKE_SCHEMA)
                except (pa.ArrowException, ValueError) as error:
                    raise WarehouseError(f"cannot load {lake.uri(data_key(month))}: {error}") from None
                connection.register("lake_month", table)
                connection.execute(f"INSERT INTO {load_table} SELECT * FROM lake_month")
        except BaseException:
            connection.execute(f"DROP TABLE IF EXISTS {load_table}")
            raise
        finally:
            connection.unregister("lake_month")
        return load_table

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
    counts = dict(connection.execute(COUNT_BY_MONTH, [window.start, window.end]).fetchall())
    held = {}
    for months in group_months(sorted(counts), counts, ROWS_DIGESTED_AT_ONCE):
        bounds = [Window.for_month(months[0]).start, Window.for_month(months[-1]).end]
        rows = connection.execute(ROW_IDS_BY_MONTH, bounds).fetchall()
        held |= {month: RowIds(count, digest) for month, count, digest in rows}
    return held


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
