"""A snapshot of a Socrata dataset held in a DuckDB table, plus the mutations tests need.

Small snapshots live in memory (tests start many servers); a large snapshot file goes to a file-backed
database in a private temporary folder, and every dataset has a DuckDB ``memory_limit`` and a private
``temp_directory`` so that a national-scale snapshot is served in bounded memory.  The folder is
removed by :meth:`Dataset.close` (or when the dataset is garbage collected, or at exit).

Column values are stored typed (TIMESTAMP, DOUBLE, VARCHAR) under internal column names ``c0``, ``c1``, …
so that no name coming from a file or a query is ever pasted into SQL.  The system fields live in
``_id``, ``_created_at`` and ``_updated_at``; ``_pos`` keeps the file order (the default row order).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from delitos_platform.contract import ENTRY, soda2_type
from delitos_platform.datasets import DatasetEntry

TEXT, NUMBER, FLOATING = "text", "number", "floating_timestamp"
COLUMN_TYPES = {TEXT: "VARCHAR", NUMBER: "DOUBLE", FLOATING: "TIMESTAMP"}


def contract_types(entry: DatasetEntry) -> dict[str, str]:
    """An entry's columns as the emulator types them: as its answers' ``X-SODA2-Types`` name them.

    The metadata renames them back (``calendar_date`` for a ``floating_timestamp``).
    """
    return {name: soda2_type(kind) for name, kind in entry.source_columns.items()}


# 4v6r-wu98's: the columns of a snapshot served under an id no entry configures.
CONTRACT_TYPES = contract_types(ENTRY)
# The real rows shipped with the emulator, each file named by the entry of its dataset (``snapshot``).
SHIPPED_SNAPSHOTS = Path(__file__).parent / "data"
DEFAULT_SNAPSHOT = SHIPPED_SNAPSHOTS / str(ENTRY.snapshot)
# What a dataset is served from: a .json/.json.gz file of rows, or the rows themselves.
Snapshot = str | Path | Sequence[Mapping[str, Any]]
# The fixed creation/update time of every row of a freshly loaded file (deterministic ids and dates).
LOAD_TIME = datetime(2026, 5, 1, tzinfo=UTC)
FLOATING_RE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?)?")
_FLOATING_SQL = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?)?$"
# A snapshot file larger than this (as stored, gzip or not) is held on disk: the shipped 20k-row snapshot
# (0.1 MB gzip) stays in memory, a national one (≥ 2.8 MB gzip for 492k rows) goes to disk.
ON_DISK_ABOVE_BYTES = 1_000_000
# DuckDB's own default is 80% of the machine: without a limit it keeps every page it ever touched.
# 2 GB, not 1: at 4.92M rows a 1 GB limit makes the load spill (131 s, against 19 s at 2 GB).
MEMORY_LIMIT = "2GB"
# Socrata-looking row ids: 12 characters from a 32-letter alphabet, ``row-xxxx.xxxx_xxxx``.
_ID_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyz"


@dataclass(frozen=True)
class Column:
    """One data column: its Socrata field name and type, and its internal SQL name."""

    field_name: str
    data_type: str
    sql: str


def read_snapshot(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``.json`` or ``.json.gz`` file holding a JSON array of row objects."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            rows = json.load(handle)
    except (json.JSONDecodeError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON array of rows ({error})") from error
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path}: expected a JSON array of row objects")
    return rows


def _as_text(value: Any) -> str | None:
    """A source value as the string Socrata would publish (``None`` stays missing)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def infer_types(rows: Sequence[Mapping[str, Any]], contract: Mapping[str, str] = CONTRACT_TYPES) -> dict[str, str]:
    """Field name -> Socrata type: the contract's columns, then any extra column in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    types = dict(contract)
    for name in seen:
        if name in types:
            continue
        values = [_as_text(row.get(name)) for row in rows]
        present = [value for value in values if value is not None]
        is_time = bool(present) and all(FLOATING_RE.fullmatch(value) for value in present)
        types[name] = FLOATING if is_time else TEXT
    return types


def _now_epoch() -> int:
    return int(time.time())


class Dataset:
    """A live dataset: typed rows in DuckDB, a ``rowsUpdatedAt`` clock and the mutations tests call."""

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        dataset_id: str,
        name: str = ENTRY.title,
        *,
        contract: Mapping[str, str] = CONTRACT_TYPES,
        on_disk: bool = False,
        memory_limit: str = MEMORY_LIMIT,
    ):
        """Load rows (API-shaped dicts); raises ValueError naming the first row and field that do not fit.

        ``contract``: the dataset's own columns (field name -> SODA2 type, see :func:`contract_types`), first and
        in this order whatever the rows hold. ``on_disk`` keeps the table in a database file of a private
        temporary folder instead of memory; ``memory_limit`` caps DuckDB's memory (beyond it DuckDB spills there).
        """
        self._setup(dataset_id, name, contract, on_disk, memory_limit)
        try:
            self._create(infer_types(rows, contract))
            self._insert(rows, LOAD_TIME.replace(tzinfo=None))
        except BaseException:
            self.close()
            raise

    def _setup(self, dataset_id: str, name: str, contract: Mapping[str, str], on_disk: bool, memory_limit: str) -> None:
        self.dataset_id = dataset_id
        self.name = name
        self._contract = dict(contract)
        self._lock = threading.RLock()
        self.folder = Path(tempfile.mkdtemp(prefix="soda-emulator-"))
        self.on_disk = on_disk
        database = str(self.folder / "dataset.duckdb") if on_disk else ":memory:"
        config = {"memory_limit": memory_limit, "temp_directory": str(self.folder / "spill")}
        self._con = duckdb.connect(database, config=config)
        # Also on garbage collection or at exit: a dataset nobody closed must not leave its folder behind.
        self._cleanup = weakref.finalize(self, _release, self._con, self.folder)
        self._generation = 0
        self._next_pos = 0
        self._next_sql = 0
        self.columns: list[Column] = []
        self.rows_updated_at = int(LOAD_TIME.timestamp())
        self.version = 0

    def _create(self, types: Mapping[str, str]) -> None:
        for field_name, data_type in types.items():
            self.columns.append(self._new_column(field_name, data_type))
        defs = ", ".join(f"{c.sql} {COLUMN_TYPES[c.data_type]}" for c in self.columns)
        self._con.execute(
            f"CREATE TABLE data (_pos BIGINT, _id VARCHAR, _created_at TIMESTAMP, _updated_at TIMESTAMP, {defs})"
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        dataset_id: str,
        name: str = ENTRY.title,
        *,
        contract: Mapping[str, str] = CONTRACT_TYPES,
        on_disk: bool | None = None,
        memory_limit: str = MEMORY_LIMIT,
    ) -> Dataset:
        """Load a ``.json`` or ``.json.gz`` JSON array of rows.

        DuckDB parses the file itself (much faster and ~4x less memory than Python dicts); values are
        read as text by key, with keys bound as parameters, then typed exactly as :meth:`add_rows` does.
        ``on_disk`` defaults to whether the file is larger than :data:`ON_DISK_ABOVE_BYTES`.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such snapshot file")
        if on_disk is None:
            on_disk = path.stat().st_size > ON_DISK_ABOVE_BYTES
        dataset = cls.__new__(cls)
        dataset._setup(dataset_id, name, contract, on_disk, memory_limit)
        try:
            dataset._load_file(path)
        except BaseException:
            dataset.close()
            raise
        return dataset

    def _load_file(self, path: Path) -> None:
        """Fill the empty dataset from a snapshot file."""
        keys = self._read_raw(path)
        self._create(self._file_types(keys))
        try:
            count = self._con.execute("SELECT count(*) FROM raw").fetchall()[0][0]
            extract = ", ".join(f"raw.j ->> ? AS {c.sql}" for c in self.columns)
            self._con.execute(
                f"CREATE TEMP TABLE staged AS SELECT _pos, {extract} FROM raw", [c.field_name for c in self.columns]
            )
            self._con.execute("DROP TABLE raw")
            self._insert_staged(0, LOAD_TIME.replace(tzinfo=None))
        finally:
            self._con.execute("DROP TABLE IF EXISTS staged")
            self._con.execute("DROP TABLE IF EXISTS raw")
        self._next_pos = count
        if self.on_disk:
            # Written compressed now rather than at the first automatic checkpoint, mid-request.
            self._con.execute("CHECKPOINT")

    def close(self) -> None:
        """Release the database and remove its temporary folder; the dataset is unusable afterwards."""
        self._cleanup()

    def _read_raw(self, path: Path) -> list[str]:
        """Read the file's objects into temp table ``raw(_pos, j)``; returns the keys in first-seen order."""
        # One thread while reading keeps row_number() in file order.
        self._con.execute("SET threads = 1")
        try:
            self._con.execute(
                "CREATE TEMP TABLE raw AS SELECT row_number() OVER () - 1 AS _pos, json AS j "
                "FROM read_json_objects(?, format = 'array')",
                [str(path)],
            )
        except duckdb.Error as error:
            raise ValueError(f"{path}: not a JSON array of rows ({str(error).splitlines()[0]})") from None
        finally:
            self._con.execute("RESET threads")
        bad = self._con.execute("SELECT _pos FROM raw WHERE json_type(j) <> 'OBJECT' ORDER BY _pos LIMIT 1").fetchall()
        if bad:
            raise ValueError(f"{path}: row {bad[0][0]} is not a JSON object")
        found = self._con.execute(
            "SELECT k FROM (SELECT _pos, unnest(json_keys(j)) AS k, generate_subscripts(json_keys(j), 1) AS i "
            "FROM raw) GROUP BY k ORDER BY min(_pos), min(i)"
        ).fetchall()
        return [row[0] for row in found]

    def _file_types(self, keys: Sequence[str]) -> dict[str, str]:
        """The contract's types, then extra keys typed as in :func:`infer_types`."""
        types = dict(self._contract)
        for key in keys:
            if key in types:
                continue
            present, timelike = self._con.execute(
                "SELECT count(j ->> ?), count(*) FILTER (WHERE regexp_full_match(j ->> ?, ?)) FROM raw",
                [key, key, _FLOATING_SQL],
            ).fetchall()[0]
            types[key] = FLOATING if present and present == timelike else TEXT
        return types

    # ----------------------------------------------------------------- reading
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A fresh cursor on the dataset's database, for one request's queries."""
        return self._con.cursor()

    def column(self, field_name: str) -> Column | None:
        """The data column called ``field_name``, if any."""
        for column in self.columns:
            if column.field_name == field_name:
                return column
        return None

    def __len__(self) -> int:
        with self._lock:
            return self._con.execute("SELECT count(*) FROM data").fetchall()[0][0]

    def dump(self) -> dict[str, dict[str, Any]]:
        """Every row as ``{:id: {field: python value}}`` (for tests comparing before/after)."""
        names = ", ".join(c.sql for c in self.columns)
        with self._lock:
            result = self._con.execute(f"SELECT _id, {names} FROM data").fetchall()
        return {
            row[0]: {c.field_name: v for c, v in zip(self.columns, row[1:], strict=True) if v is not None}
            for row in result
        }

    # --------------------------------------------------------------- loading
    def _new_column(self, field_name: str, data_type: str) -> Column:
        if data_type not in COLUMN_TYPES:
            raise ValueError(f"unknown column type {data_type!r} (expected one of {sorted(COLUMN_TYPES)})")
        column = Column(field_name, data_type, f"c{self._next_sql}")
        self._next_sql += 1
        return column

    def _stage(self, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
        """The rows as an all-string Arrow table with their positions, unknown fields refused."""
        known = {c.field_name for c in self.columns}
        for index, row in enumerate(rows):
            extra = set(row) - known
            if extra:
                raise ValueError(f"row {index}: unknown field(s) {sorted(extra)}")
        arrays = {"_pos": pa.array(range(self._next_pos, self._next_pos + len(rows)), pa.int64())}
        for column in self.columns:
            name = column.field_name
            arrays[column.sql] = pa.array([_as_text(row.get(name)) for row in rows], pa.string())
        return pa.table(arrays)

    def _validate(self, first_pos: int) -> None:
        """Fail with the row index and field of the first value that does not fit its column type."""
        for column in self.columns:
            if column.data_type == TEXT:
                continue
            if column.data_type == NUMBER:
                bad = f"TRY_CAST({column.sql} AS DOUBLE) IS NULL OR NOT isfinite(TRY_CAST({column.sql} AS DOUBLE))"
            else:
                bad = f"NOT regexp_full_match({column.sql}, ?) OR TRY_CAST({column.sql} AS TIMESTAMP) IS NULL"
            params = [] if column.data_type == NUMBER else [_FLOATING_SQL]
            found = self._con.execute(
                f"SELECT _pos, {column.sql} FROM staged WHERE {column.sql} IS NOT NULL AND ({bad}) "
                "ORDER BY _pos LIMIT 1",
                params,
            ).fetchall()
            if found:
                found = found[0]
                raise ValueError(
                    f"row {found[0] - first_pos}: field {column.field_name!r} is not a valid "
                    f"{column.data_type}: {found[1]!r}"
                )

    def _id_sql(self) -> str:
        """SQL computing ``_id`` from ``_h`` (a 64-bit hash): ``row-`` and 12 base-32 letters."""
        letters = [f"substr('{_ID_ALPHABET}', (((_h >> {5 * i}) & 31)::INTEGER) + 1, 1)" for i in range(12)]
        parts = [" || ".join(letters[0:4]), " || ".join(letters[4:8]), " || ".join(letters[8:12])]
        return f"'row-' || {parts[0]} || '.' || {parts[1]} || '_' || {parts[2]}"

    def _hash_sql(self, source: str) -> str:
        """SQL hashing (generation, position, content) of each row of ``source`` into ``_h``."""
        content = ", ".join(f"coalesce(CAST({c.sql} AS VARCHAR), chr(0))" for c in self.columns)
        return (
            f"SELECT *, md5_number_lower(concat_ws(chr(30), CAST(? AS VARCHAR), CAST(_pos AS VARCHAR), "
            f"{content})) AS _h FROM {source}"
        )

    def _insert(self, rows: Sequence[Mapping[str, Any]], stamp: datetime) -> list[str]:
        """Validate and append rows; returns their new ids in order."""
        first = self._next_pos
        self._con.register("staged", self._stage(rows))
        try:
            ids = self._insert_staged(first, stamp, want_ids=True)
        finally:
            self._con.unregister("staged")
        self._next_pos = first + len(rows)
        return ids

    def _insert_staged(self, first: int, stamp: datetime, want_ids: bool = False) -> list[str]:
        """Validate, type and append the all-text rows of ``staged``; returns their ids in order."""
        self._validate(first)
        typed = ", ".join(f"CAST({c.sql} AS {COLUMN_TYPES[c.data_type]}) AS {c.sql}" for c in self.columns)
        names = ", ".join(c.sql for c in self.columns)
        try:
            self._con.execute(f"CREATE OR REPLACE TEMP TABLE typed AS SELECT _pos, {typed} FROM staged")
            # Stored in :id order (queries never rely on it: the file order is _pos): keyset pages
            # ($where=:id > 'x', $order=:id) then skip whole row groups by their min/max :id.
            self._con.execute(
                f"INSERT INTO data (_pos, _id, _created_at, _updated_at, {names}) "
                f"SELECT * FROM (SELECT _pos, {self._id_sql()} AS _id, ?::TIMESTAMP, ?::TIMESTAMP, {names} "
                f"FROM ({self._hash_sql('typed')})) ORDER BY _id",
                [stamp, stamp, self._generation],
            )
        finally:
            self._con.execute("DROP TABLE IF EXISTS typed")
        if not want_ids:
            return []
        return [
            r[0] for r in self._con.execute("SELECT _id FROM data WHERE _pos >= ? ORDER BY _pos", [first]).fetchall()
        ]

    # ------------------------------------------------------------- mutations
    def _bump(self) -> None:
        """Move ``rowsUpdatedAt`` strictly forward (clients compare it to detect changes)."""
        self.rows_updated_at = max(_now_epoch(), self.rows_updated_at + 1)
        self.version += 1

    @staticmethod
    def _stamp() -> datetime:
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)

    def _month_filter(self, month: str) -> tuple[str, list[Any]]:
        """SQL filter (and parameters) for rows whose ``fecha_hecho`` falls in ``YYYY-MM``."""
        if not re.fullmatch(r"\d{4}-\d{2}", month):
            raise ValueError(f"month must look like YYYY-MM, got {month!r}")
        column = self.column("fecha_hecho")
        if column is None or column.data_type != FLOATING:
            raise ValueError("the dataset has no floating_timestamp column fecha_hecho")
        start = datetime.strptime(month, "%Y-%m")
        return f"date_trunc('month', {column.sql}) = ?", [start]

    def revise_month(self, month: str, rows: int = 5) -> list[str]:
        """Change ``cantidad`` (+1) of the first ``rows`` rows of ``month``; keep ids, set ``:updated_at``."""
        where, params = self._month_filter(month)
        cantidad = self.column("cantidad")
        if cantidad is None:
            raise ValueError("the dataset has no cantidad column")
        with self._lock:
            ids = [
                r[0]
                for r in self._con.execute(
                    f"SELECT _id FROM data WHERE {where} ORDER BY _pos LIMIT ?", [*params, rows]
                ).fetchall()
            ]
            self._con.execute(
                f"UPDATE data SET {cantidad.sql} = coalesce({cantidad.sql}, 0) + 1, _updated_at = ? "
                "WHERE _id IN (SELECT unnest(?::VARCHAR[]))",
                [self._stamp(), ids],
            )
            self._bump()
        return ids

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Append API-shaped rows (string values); returns their new ids."""
        with self._lock:
            ids = self._insert(list(rows), self._stamp())
            self._bump()
        return ids

    def delete_rows(self, ids: Iterable[str]) -> int:
        """Delete the rows with these ids; returns how many were deleted."""
        with self._lock:
            before = len(self)
            self._con.execute("DELETE FROM data WHERE _id IN (SELECT unnest(?::VARCHAR[]))", [list(ids)])
            deleted = before - len(self)
            self._bump()
        return deleted

    def delete_month(self, month: str) -> int:
        """Delete every row of ``month`` (``YYYY-MM``); returns how many were deleted."""
        where, params = self._month_filter(month)
        with self._lock:
            before = len(self)
            self._con.execute(f"DELETE FROM data WHERE {where}", params)
            deleted = before - len(self)
            self._bump()
        return deleted

    def duplicate_ids(self, month: str, rows: int = 1) -> str:
        """A source fault: ``rows`` more rows of ``month`` (``YYYY-MM``) served under its first row's ``:id``.

        Returns that id. Socrata promises each ``:id`` once; a portal that breaks it must not double a row.
        """
        where, params = self._month_filter(month)
        with self._lock:
            ids = [
                r[0]
                for r in self._con.execute(
                    f"SELECT _id FROM data WHERE {where} ORDER BY _pos LIMIT ?", [*params, rows + 1]
                ).fetchall()
            ]
            if len(ids) < rows + 1:
                raise ValueError(f"{month} has fewer than {rows + 1} rows")
            self._con.execute(
                "UPDATE data SET _id = ?, _updated_at = ? WHERE _id IN (SELECT unnest(?::VARCHAR[]))",
                [ids[0], self._stamp(), ids[1:]],
            )
            self._bump()
        return ids[0]

    def replace_ids(self) -> None:
        """Re-publish wholesale: every row gets a new id and new dates; contents stay the same."""
        with self._lock:
            self._generation += 1
            stamp = self._stamp()
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE renamed AS SELECT _pos, {self._id_sql()} AS _id "
                f"FROM ({self._hash_sql('data')})",
                [self._generation],
            )
            self._con.execute(
                "UPDATE data SET _id = renamed._id, _created_at = ?, _updated_at = ? "
                "FROM renamed WHERE data._pos = renamed._pos",
                [stamp, stamp],
            )
            self._con.execute("DROP TABLE renamed")
            self._bump()

    def touch(self) -> None:
        """Bump ``rowsUpdatedAt`` without changing any row."""
        with self._lock:
            self._bump()

    # --------------------------------------------------------- schema drift
    def add_column(self, name: str, data_type: str = TEXT) -> None:
        """Add an empty column (every row null)."""
        with self._lock:
            if self.column(name) is not None:
                raise ValueError(f"column {name!r} already exists")
            column = self._new_column(name, data_type)
            self._con.execute(f"ALTER TABLE data ADD COLUMN {column.sql} {COLUMN_TYPES[data_type]}")
            self.columns.append(column)
            self._bump()

    def drop_column(self, name: str) -> None:
        """Remove a column and its values."""
        with self._lock:
            column = self._require(name)
            self._con.execute(f"ALTER TABLE data DROP COLUMN {column.sql}")
            self.columns.remove(column)
            self._bump()

    def retype_column(self, name: str, data_type: str) -> None:
        """Change a column's type, converting values (values that do not convert become null)."""
        with self._lock:
            column = self._require(name)
            new = Column(name, data_type, column.sql)
            if data_type not in COLUMN_TYPES:
                raise ValueError(f"unknown column type {data_type!r}")
            self._con.execute(
                f"ALTER TABLE data ALTER {column.sql} TYPE {COLUMN_TYPES[data_type]} "
                f"USING TRY_CAST({column.sql} AS {COLUMN_TYPES[data_type]})"
            )
            self.columns[self.columns.index(column)] = new
            self._bump()

    def _require(self, name: str) -> Column:
        column = self.column(name)
        if column is None:
            raise ValueError(f"no such column {name!r}")
        return column


def _release(connection: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Close a dataset's database and remove its temporary folder (a finalizer: holds no dataset)."""
    connection.close()
    shutil.rmtree(folder, ignore_errors=True)


def is_finite_number(text: str) -> bool:
    """True when ``text`` parses as a finite float (used to coerce SoQL literals)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
