"""Bronze on Snowflake: ``COPY INTO`` from an external stage over the lake, then one delete+insert transaction.

Each load copies the window's month objects of a dataset (under its lake prefix) into a transient load table of
its own, then swaps them into the dataset's bronze table (``BRONZE.DELITOS`` for 4v6r-wu98, ``BRONZE.<SLUG>`` for
every other dataset of the family, its columns those of its entry) in ONE transaction (delete the window's months,
insert the copied rows, commit). A failure anywhere rolls back and leaves the months that were there before.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import pyarrow as pa
import snowflake.connector.errors as sf_errors
from dagster_snowflake import SnowflakeResource
from pydantic import Field

from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.storage import LakeResource, data_key
from delitos_platform.partitions import Window
from delitos_platform.row_ids import RowIds
from delitos_platform.warehouse.base import (
    BRONZE_SCHEMA,
    Approval,
    BronzeLoad,
    WarehouseError,
    WarehouseResource,
    approve_all,
    in_window,
    ledger_entries,
    ledger_statements,
)

# Identifiers are pasted into SQL (stages and tables cannot be bound), so only plain, unquoted names pass.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")
# Paths inside a stage: the characters of lake keys (``delitos/mes=2019-03/...``), no quotes, blanks or ``..``.
STAGE_PATH = re.compile(r"^[A-Za-z0-9_\-=./]*$")

# Bronze's type of each lake column type (the dataset's entry says which columns; their names are its own).
SNOWFLAKE_TYPES: dict[pa.DataType, str] = {pa.string(): "VARCHAR", pa.date32(): "DATE", pa.int64(): "NUMBER(38,0)"}
# Snowflake enforces NOT NULL (and nothing else), so bronze refuses a row the contract forbids.
BRONZE_EXTRA_COLUMNS: dict[str, str] = {"MES": "DATE", "_RUN_ID": "VARCHAR", "_LOADED_AT": "TIMESTAMP_NTZ"}
# The load ledger: each month's source version, written in the load's transaction (see warehouse/base.py).
LEDGER_COLUMNS: dict[str, str] = {
    "MES": "DATE NOT NULL",
    "VERSION": "TIMESTAMP_NTZ NOT NULL",
    "VERSION_MES": "VARCHAR NOT NULL",
    "REGISTROS": "NUMBER(38,0) NOT NULL",
    "_RUN_ID": "VARCHAR NOT NULL",
    "_LOADED_AT": "TIMESTAMP_NTZ NOT NULL DEFAULT SYSDATE()",
}

# Connector error numbers that deserve their own sentence.
EMPTY_CREDENTIALS = {251001, 251005, 251006}  # account, user, password empty
LOGIN_REFUSED = {390100, 390101, 390102, 390144, 394304}  # wrong password/user, locked, bad JWT
OBJECT_MISSING = 2003

Statement = tuple[str, Sequence[Any] | None]


def lake_columns(dataset: LakeDataset) -> dict[str, str]:
    """The dataset's lake columns as bronze types them, in the lake's order (``ROW_ID`` first)."""
    return {field.name.upper(): SNOWFLAKE_TYPES[field.type] for field in dataset.lake_schema}


def bronze_table(dataset: LakeDataset) -> str:
    """The dataset's qualified bronze table: ``BRONZE.DELITOS``, ``BRONZE.HOMICIDIOS``, …"""
    return dataset.bronze_table.upper()


def ledger_table(dataset: LakeDataset) -> str:
    """The dataset's qualified load ledger: ``BRONZE.DELITOS_CARGAS``, ``BRONZE.HOMICIDIOS_CARGAS``, …"""
    return dataset.ledger_table.upper()


def checked_identifier(name: str, what: str) -> str:
    """``name`` if it is a plain (optionally qualified) Snowflake identifier, else a ``WarehouseError``."""
    if not IDENTIFIER.fullmatch(name):
        raise WarehouseError(f"refusing {what} {name!r}: expected a plain identifier like RAW.LAKE_STAGE")
    return name.upper()


def checked_stage_path(path: str, what: str) -> str:
    """``path`` if it is a safe path inside a stage (no quotes, blanks or ``..``), else a ``WarehouseError``."""
    if not STAGE_PATH.fullmatch(path) or ".." in path.split("/"):
        raise WarehouseError(f"refusing {what} {path!r}: only letters, digits and _ - = . / are allowed")
    return path


class SnowflakeWarehouse(WarehouseResource):
    """Bronze on Snowflake, loaded with ``COPY INTO`` from an external stage that points at the lake."""

    snowflake: SnowflakeResource
    stage: str = Field(
        description="Fully qualified stage over the lake, e.g. RAW.LAKE_STAGE (DELITOS_SNOWFLAKE_STAGE)."
    )
    stage_prefix: str = Field(default="", description="Path inside the stage where the lake's keys start.")

    def load(
        self,
        lake: LakeResource,
        window: Window,
        run_id: str,
        approve: Approval = approve_all,
        dataset: LakeDataset = DELITOS,
    ) -> BronzeLoad:
        """Swap the window's months of ``dataset`` in from its lake objects through the stage, in one approved
        transaction."""
        started = time.monotonic()
        months = window.month_keys()
        source = self._stage_location()
        keys = [data_key(month, dataset) for month in months]
        files = [checked_stage_path(key, "lake key") for key in keys]
        self._require_objects(lake, months, dataset)
        versions = {month: lake.object_version(key) for month, key in zip(months, keys, strict=True)}
        # A load table of its own: two partitions loading at once never see each other's rows.
        load_table = f"{bronze_table(dataset)}_LOAD_{uuid.uuid4().hex}".upper()
        with self._cursor() as cursor:
            self._create_tables(cursor, load_table, dataset)
            try:
                self._copy(cursor, load_table, source, files)
                self._refuse_strays(cursor, load_table, months)
                statements = self._swap_statements(load_table, window, run_id, dataset)

                def ledger(held: dict[str, RowIds]) -> list[Statement]:  # the months' rows are known only then
                    return ledger_statements(ledger_table(dataset), ledger_entries(versions, held), run_id, "%s")

                held, committed = self._swap(cursor, statements, window, approve, ledger=ledger, dataset=dataset)
            finally:
                # Best effort: a dead connection must not hide the error that killed it.
                with suppress(sf_errors.Error):
                    cursor.execute(f"DROP TABLE IF EXISTS {load_table}")
        return BronzeLoad(held, run_id, time.monotonic() - started, committed)

    def row_ids_by_month(self, window: Window, dataset: LakeDataset = DELITOS) -> dict[str, RowIds]:
        """The row ids the dataset's bronze table holds per month key inside ``window`` (none before its first
        load)."""
        try:
            with self._cursor() as cursor:
                return self._row_ids(cursor, window, dataset)
        except WarehouseError as error:
            cause = error.__cause__
            message = str(getattr(cause, "msg", "")).upper()
            # Before the first load there is no bronze table: that holds no rows rather than failing.
            # A missing database (often also named DELITOS) still fails: that is a misconfiguration.
            if (
                isinstance(cause, sf_errors.ProgrammingError)
                and cause.errno == OBJECT_MISSING
                and dataset.slug.upper() in message
                and "DATABASE" not in message
            ):
                return {}
            raise

    # -- steps of a load -------------------------------------------------------------------------

    def fetch(self, sql: str) -> list[tuple]:
        with self._cursor() as cursor:
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]

    def _stage_location(self) -> str:
        """``@STAGE/prefix/``, checked before any SQL runs."""
        stage = checked_identifier(self.stage, "stage name")
        prefix = checked_stage_path(self.stage_prefix.strip("/"), "stage prefix")
        return f"@{stage}/{prefix}/" if prefix else f"@{stage}/"

    @staticmethod
    def _require_objects(lake: LakeResource, months: list[str], dataset: LakeDataset) -> None:
        # COPY fails on a missing file with a cryptic remote-file error; say which month is missing instead.
        missing = [month[:7] for month in months if not lake.exists(data_key(month, dataset))]
        if missing:
            raise WarehouseError(
                f"the lake holds no object for {', '.join(missing)}: materialize lake/{dataset.slug} for it first"
            )

    @staticmethod
    def _create_tables(cursor: Any, load_table: str, dataset: LakeDataset) -> None:
        """The dataset's bronze table and ledger if missing, and this load's transient table (DDL commits, so it
        runs before the swap). Names come from a validated entry (lowercase snake case), never input."""
        columns = lake_columns(dataset)
        load_columns = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        bronze_columns = ", ".join(
            f"{name} {kind} NOT NULL" for name, kind in {**columns, **BRONZE_EXTRA_COLUMNS}.items()
        )
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {BRONZE_SCHEMA.upper()}")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {bronze_table(dataset)} ({bronze_columns})")
        ledger_columns = ", ".join(f"{name} {kind}" for name, kind in LEDGER_COLUMNS.items())
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ledger_table(dataset)} ({ledger_columns})")
        # Nullable on purpose: the copy takes the objects as they are and bronze's NOT NULL judges them.
        cursor.execute(f"CREATE TRANSIENT TABLE {load_table} ({load_columns})")

    @staticmethod
    def _copy(cursor: Any, load_table: str, source: str, files: list[str]) -> None:
        """Copy the month objects into the load table.

        FORCE=TRUE: Snowflake skips a file its load metadata says was already loaded, so without it a
        re-run of an unchanged month would delete the month and insert nothing.
        """
        placeholders = ", ".join(["%s"] * len(files))
        cursor.execute(
            f"COPY INTO {load_table} FROM {source} FILES = ({placeholders}) FILE_FORMAT = (TYPE = PARQUET) "
            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = ABORT_STATEMENT FORCE = TRUE",
            files,
        )
        # Result rows: file, status, ...; with FORCE every listed file must say LOADED.
        statuses = {str(row[0]): str(row[1]) for row in cursor.fetchall()}
        refused = [name for name, status in statuses.items() if status.upper() != "LOADED"]
        if refused or len(statuses) != len(files):
            raise WarehouseError(f"COPY INTO did not load every month object (refused: {refused or 'some missing'})")

    @staticmethod
    def _refuse_strays(cursor: Any, load_table: str, months: list[str]) -> None:
        """A row outside its object's month would escape the window's delete and double on its own month."""
        cursor.execute(f"SELECT DISTINCT DATE_TRUNC('MONTH', fecha_hecho)::DATE FROM {load_table}")
        found = {mes.isoformat() if mes else "null" for (mes,) in cursor.fetchall()}
        strays = sorted(found - set(months))
        if strays:
            raise WarehouseError(f"the lake objects hold rows outside the window's months: {', '.join(strays)}")

    def _swap_statements(self, load_table: str, window: Window, run_id: str, dataset: LakeDataset) -> list[Statement]:
        """The statements of the swap transaction: delete the window's months, insert the window's copied rows."""
        table, columns = bronze_table(dataset), ", ".join(lake_columns(dataset))
        bounds = (window.start, window.end)
        return [
            (f"DELETE FROM {table} WHERE mes >= %s AND mes < %s", bounds),
            (
                f"INSERT INTO {table} ({columns}, mes, _run_id, _loaded_at) "
                f"SELECT {columns}, DATE_TRUNC('MONTH', fecha_hecho)::DATE, %s, SYSDATE() FROM {load_table} "
                "WHERE fecha_hecho >= %s AND fecha_hecho < %s",
                (run_id, *bounds),
            ),
        ]

    @staticmethod
    def _row_ids(cursor: Any, window: Window, dataset: LakeDataset) -> dict[str, RowIds]:
        """The row ids of each month, as ``RowIds`` computes them (see delitos_platform/row_ids.py)."""
        cursor.execute(
            f"SELECT mes, COUNT(*), MD5(LISTAGG(row_id, ',') WITHIN GROUP (ORDER BY row_id)) "
            f"FROM {bronze_table(dataset)} WHERE mes >= %s AND mes < %s GROUP BY mes",
            (window.start, window.end),
        )
        return {mes.isoformat(): RowIds(count, digest) for mes, count, digest in cursor.fetchall()}

    def _swap(
        self,
        cursor: Any,
        statements: list[Statement],
        window: Window,
        approve: Approval,
        *,
        ledger: Callable[[dict[str, RowIds]], list[Statement]],
        dataset: LakeDataset,
    ) -> tuple[dict[str, RowIds], bool]:
        """Run ``statements``, then the ``ledger``'s for what they swapped in, in ONE explicit transaction,
        committed only when ``approve`` agrees with the result.

        Any failure rolls every statement back.
        """
        cursor.execute("BEGIN")
        try:
            for sql, params in statements:
                cursor.execute(sql, params)
            held = in_window(window, self._row_ids(cursor, window, dataset))
            for sql, params in ledger(held):
                cursor.execute(sql, params)
            committed = approve(held)
            cursor.execute("COMMIT" if committed else "ROLLBACK")
            return held, committed
        except BaseException:
            # Snowflake keeps a transaction open after a failed statement; end it, keep the first error.
            with suppress(sf_errors.Error):
                cursor.execute("ROLLBACK")
            raise

    # -- connection and errors -------------------------------------------------------------------

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor on a fresh connection; every connector failure becomes one ``WarehouseError`` sentence."""
        if self.snowflake.paramstyle not in (None, "pyformat"):
            # Values are bound as %s; another paramstyle would make every statement fail.
            raise WarehouseError(
                f"SnowflakeWarehouse binds values as %s: leave paramstyle unset, not {self.snowflake.paramstyle!r}"
            )
        with ExitStack() as stack:
            connection = self._connect(stack)
            try:
                yield connection.cursor()
            except sf_errors.Error as error:
                raise WarehouseError(self._explain(error)) from error

    def _connect(self, stack: ExitStack) -> Any:
        """Open the connection inside ``stack``, telling credential and network failures in one sentence."""
        try:
            return stack.enter_context(self.snowflake.get_connection())
        except sf_errors.Error as error:
            raise WarehouseError(self._explain(error)) from error
        except OSError as error:
            # Raised while reading SNOWFLAKE_PRIVATE_KEY_PATH; the error names the file, never the key.
            raise WarehouseError(f"cannot read the Snowflake private key file: {error.strerror or error}") from None
        except ValueError:
            # cryptography refuses a key it cannot decrypt or parse; its message is not repeated on purpose.
            raise WarehouseError("cannot load the Snowflake private key: wrong passphrase or not a PEM key") from None

    def _explain(self, error: sf_errors.Error) -> str:
        """One sentence for a connector error (its server message never holds a credential)."""
        errno = getattr(error, "errno", None)
        message = (getattr(error, "msg", None) or str(error)).strip().splitlines()
        detail = message[-1] if message else type(error).__name__
        account = self.snowflake.account
        if errno in EMPTY_CREDENTIALS:
            return (
                f"Snowflake credentials are missing for account {account}: "
                "set SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH (and SNOWFLAKE_USER)"
            )
        if errno in LOGIN_REFUSED:
            return f"Snowflake refused the login of user {self.snowflake.user} on account {account}: {detail}"
        if errno == OBJECT_MISSING and "stage" in detail.lower():
            return f"stage {self.stage} does not exist or is not authorized for the loader's role"
        if isinstance(error, sf_errors.OperationalError) and errno in (250001, 250003):
            return f"cannot connect to Snowflake account {account}: {detail}"
        return f"Snowflake refused a bronze statement: {detail}"
