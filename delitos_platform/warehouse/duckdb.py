"""The embedded warehouse: ``bronze.delitos`` (and ``bronze.<slug>`` of every other dataset of the family) in a
DuckDB file, months swapped in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from delitos_platform.disk import disk_full, is_disk_full
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.storage import LakeResource, data_key
from delitos_platform.lake.versions import ObjectVersion
from delitos_platform.partitions import Window, group_months
from delitos_platform.row_ids import RowIds
from delitos_platform.warehouse.base import (
    Approval,
    BronzeLoad,
    WarehouseError,
    WarehouseResource,
    approve_all,
    in_window,
    ledger_entries,
    ledger_statements,
)
from delitos_platform.warehouse.lock import WarehouseLock

# The schemas dbt writes to exist from the start, named literally (never main_gold).
CREATE_SCHEMAS = [f"CREATE SCHEMA IF NOT EXISTS {schema}" for schema in ("bronze", "silver", "gold")]
# Bronze's type of each lake column type (the dataset's entry says which columns; their names are its own).
DUCKDB_TYPES = {pa.string(): "VARCHAR", pa.date32(): "DATE", pa.int64(): "BIGINT"}
LOAD_COLUMNS = ["mes DATE NOT NULL", "_run_id VARCHAR NOT NULL", "_loaded_at TIMESTAMP NOT NULL"]
LEDGER_COLUMNS = """(
    mes DATE NOT NULL,
    version TIMESTAMP NOT NULL,
    version_mes VARCHAR NOT NULL,
    registros BIGINT NOT NULL,
    _run_id VARCHAR NOT NULL,
    _loaded_at TIMESTAMP NOT NULL DEFAULT CAST(current_timestamp AS TIMESTAMP)
)"""


def create_tables(dataset: LakeDataset) -> list[str]:
    """The statements that make sure a dataset's bronze table and load ledger exist (its lake columns, in order,
    then ``mes`` and the load's metadata). Names come from a validated entry (lowercase snake case), never input."""
    columns = [f"{field.name} {DUCKDB_TYPES[field.type]} NOT NULL" for field in dataset.lake_schema]
    return [
        f"CREATE TABLE IF NOT EXISTS {dataset.bronze_table} (\n    " + ",\n    ".join(columns + LOAD_COLUMNS) + "\n)",
        f"CREATE TABLE IF NOT EXISTS {dataset.ledger_table} {LEDGER_COLUMNS}",
    ]


def delete_window(dataset: LakeDataset) -> str:
    """Delete a window's months from the dataset's bronze table (its bounds bound)."""
    return f"DELETE FROM {dataset.bronze_table} WHERE mes >= ? AND mes < ?"


def insert_rows(dataset: LakeDataset) -> str:
    """Insert the window's rows straight from the lake's Parquet files (their paths are the platform's; values are
    bound). Only the window's rows go in: one of another month would escape this window's delete and double on
    its own month."""
    columns = ", ".join(dataset.lake_schema.names)
    return f"""
INSERT INTO {dataset.bronze_table}
SELECT {columns},
       CAST(date_trunc('month', fecha_hecho) AS DATE), ?, CAST(current_timestamp AS TIMESTAMP)
FROM read_parquet(?, hive_partitioning = false)
WHERE fecha_hecho >= ? AND fecha_hecho < ?
"""


# DuckDB caches table pages up to its memory limit (80% of the machine by default), so a load's footprint would
# grow with the window; bounded, the pages spill to the database file and the peak stays flat with the data.
LOAD_MEMORY_LIMIT = "128MB"


# The row ids of each month, as ``RowIds`` computes them (see delitos_platform/row_ids.py), asked a few months
# at a time: the ordered aggregate holds every id it digests, so one query over a large window grows with it.
def count_by_month(dataset: LakeDataset) -> str:
    """Rows per month of the dataset's bronze table inside a window (its bounds bound)."""
    return (
        "SELECT strftime(mes, '%Y-%m-%d') AS month, count(*) AS n "
        f"FROM {dataset.bronze_table} WHERE mes >= ? AND mes < ? GROUP BY 1"
    )


def row_ids_by_month(dataset: LakeDataset) -> str:
    """Count and digest of the row ids per month of the dataset's bronze table inside a window."""
    return (
        "SELECT strftime(mes, '%Y-%m-%d') AS month, count(*) AS n, "
        "md5(string_agg(row_id, ',' ORDER BY row_id)) AS digest "
        f"FROM {dataset.bronze_table} WHERE mes >= ? AND mes < ? GROUP BY 1"
    )


ROWS_DIGESTED_AT_ONCE = 200_000
# How long a run waits for another run to let go of the warehouse before it fails, changing nothing.
DEFAULT_WAIT_SECONDS = 1800.0


class DuckDBWarehouse(WarehouseResource):
    """``bronze.delitos`` in ``$DELITOS_DATA_DIR/warehouse.duckdb`` (dagster-duckdb's ``DuckDBResource``).

    DuckDB reads the lake's Parquet files itself (an S3 lake's are downloaded first: DuckDB's httpfs extension
    cannot be installed offline) and swaps the window into bronze in ONE transaction, committed only once approved.
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

    def load(
        self,
        lake: LakeResource,
        window: Window,
        run_id: str,
        approve: Approval = approve_all,
        dataset: LakeDataset = DELITOS,
    ) -> BronzeLoad:
        started = time.perf_counter()
        keys = [data_key(month, dataset) for month in window.month_keys()]
        with lake.local_files(keys) as files, self._connection(dataset) as connection:
            paths = [str(files[key]) for key in keys]
            versions = {}
            for month, key, path in zip(window.month_keys(), keys, paths, strict=True):
                with lake.readable(key):
                    schema = pq.read_schema(path)
                    _check_columns(lake.uri(key), schema, dataset)
                versions[month] = ObjectVersion.of(schema.metadata)
            connection.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(delete_window(dataset), [window.start, window.end])
                connection.execute(insert_rows(dataset), [run_id, paths, window.start, window.end])
                held = in_window(window, _row_ids(connection, window, dataset))
                entries = ledger_entries(versions, held)
                for sql, values in ledger_statements(dataset.ledger_table, entries, run_id, "?"):
                    connection.execute(sql, values)
                committed = approve(held)
                connection.execute("COMMIT" if committed else "ROLLBACK")
            except BaseException:
                with suppress(duckdb.Error):  # a failed COMMIT has ended the transaction: keep its error
                    connection.execute("ROLLBACK")
                raise
        return BronzeLoad(held, run_id, time.perf_counter() - started, committed)

    def row_ids_by_month(self, window: Window, dataset: LakeDataset = DELITOS) -> dict[str, RowIds]:
        with self._connection(dataset) as connection:
            return _row_ids(connection, window, dataset)

    def count_by_month(self, window: Window, dataset: LakeDataset = DELITOS) -> dict[str, int]:
        with self._connection(dataset) as connection:  # counts alone: no digest of every id
            return dict(connection.execute(count_by_month(dataset), [window.start, window.end]).fetchall())

    def fetch(self, sql: str) -> list[tuple]:
        with self._connection() as connection:
            return connection.execute(sql).fetchall()

    @contextmanager
    def _connection(self, dataset: LakeDataset = DELITOS) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection whose schemas and the dataset's bronze tables exist; DuckDB failures told in one sentence."""
        try:
            with self.duckdb.get_connection() as connection:
                try:
                    for statement in [*CREATE_SCHEMAS, *create_tables(dataset)]:
                        connection.execute(statement)
                    yield connection
                finally:
                    connection.close()  # dagster-duckdb closes it only when the block succeeded
        except duckdb.Error as error:
            if is_disk_full(error):
                raise WarehouseError(f"{disk_full(self.duckdb.database)}: bronze was left as it was") from None
            raise WarehouseError(f"DuckDB warehouse {self.duckdb.database}: {_first_line(error)}") from None


def _row_ids(connection: duckdb.DuckDBPyConnection, window: Window, dataset: LakeDataset) -> dict[str, RowIds]:
    counts = dict(connection.execute(count_by_month(dataset), [window.start, window.end]).fetchall())
    held = {}
    for months in group_months(sorted(counts), counts, ROWS_DIGESTED_AT_ONCE):
        bounds = [Window.for_month(months[0]).start, Window.for_month(months[-1]).end]
        rows = connection.execute(row_ids_by_month(dataset), bounds).fetchall()
        held |= {month: RowIds(count, digest) for month, count, digest in rows}
    return held


def _check_columns(uri: str, schema: pa.Schema, dataset: LakeDataset) -> None:
    """Fail in one sentence naming the object when its columns are not the lake's."""
    # Names and types: a column that could hold nulls but holds none loads the same (bronze's NOT NULL decides).
    expected = [(field.name, field.type) for field in dataset.lake_schema]
    if [(field.name, field.type) for field in schema] != expected:
        raise WarehouseError(f"cannot load {uri}: its columns are not the lake's ({', '.join(schema.names)})")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
