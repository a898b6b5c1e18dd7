"""The Policía Nacional datasets the platform knows: one declarative entry each, read and validated here.

An entry is a YAML file in this folder, named for the dataset's id by custom (``4v6r-wu98.yaml``). It names the
id, title, slug (the short name of its asset keys and tables), date column, columns with their Socrata metadata
types, first month, attribution, and optionally the values a text column may take (``values``) and plausible
values for synthetic rows (``examples``). The lake's Arrow type of each column follows from its Socrata type
(:data:`LAKE_TYPES`). A bad entry is one sentence naming its file and what is wrong, raised before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENTRIES_FOLDER = Path(__file__).parent
# The lake's Arrow type of a column, by the type the portal's metadata gives it (``dataTypeName``). A
# calendar_date is a floating timestamp whose day is all the lake keeps; a number of this family is a count of
# cases (``cantidad``). An entry may use these types only: they are the ones the lake knows how to type.
LAKE_TYPES: dict[str, pa.DataType] = {
    "calendar_date": pa.date32(),
    "text": pa.string(),
    "number": pa.int64(),
}
# The lake's row key, first in every lake schema: Socrata's ``:id``.
ROW_ID = pa.field("row_id", pa.string(), nullable=False)
DATASET_ID_PATTERN = r"[a-z0-9]{4}-[a-z0-9]{4}"
# Lowercase snake case: safe in an asset key, a table name and a dbt model name alike.
NAME_PATTERN = r"[a-z_][a-z0-9_]*"


class DatasetConfigError(ValueError):
    """A dataset entry that cannot be used, said in one sentence naming its file."""


class ColumnEntry(BaseModel):
    """One source column: its field name, its Socrata metadata type, the values it may take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=f"^{NAME_PATTERN}$")
    type: str
    # The values (or codes the values name) a text column may take -> a short name for each.
    values: dict[str, str] | None = None
    # Plausible values for synthetic rows, most frequent first; not a contract.
    examples: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _known_type(self) -> ColumnEntry:
        if self.type not in LAKE_TYPES:
            raise ValueError(
                f"column {self.name!r} has type {self.type!r}, which is not a Socrata type the lake can hold "
                f"({', '.join(sorted(LAKE_TYPES))})"
            )
        if (self.values or self.examples) and self.type != "text":
            raise ValueError(f"column {self.name!r} is {self.type}: only a text column takes values or examples")
        return self


class DatasetEntry(BaseModel):
    """One dataset of the family, as its entry declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=f"^{DATASET_ID_PATTERN}$")
    title: str = Field(min_length=1)
    slug: str = Field(pattern=f"^{NAME_PATTERN}$")
    date_column: str
    first_month: str
    attribution: str = Field(min_length=1)
    columns: tuple[ColumnEntry, ...] = Field(min_length=1)
    # A file of real rows shipped with the emulator (``emulator/data/``); without one it serves synthetic rows.
    snapshot: str | None = None

    @field_validator("first_month", mode="before")
    @classmethod
    def _a_month(cls, value: Any) -> str:
        text = str(value)
        match = re.fullmatch(r"(\d{4})-(\d{2})", text)
        if not isinstance(value, str) or match is None or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"first_month {text!r} is not a month written YYYY-MM")
        return text

    @model_validator(mode="after")
    def _date_column_is_a_column(self) -> DatasetEntry:
        names = [column.name for column in self.columns]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"column {repeated[0]!r} is listed more than once")
        if self.date_column not in names:
            raise ValueError(f"date column {self.date_column!r} is not among its columns ({', '.join(names)})")
        if self.source_columns[self.date_column] != "calendar_date":
            raise ValueError(f"date column {self.date_column!r} is not a calendar_date")
        return self

    @property
    def source_columns(self) -> dict[str, str]:
        """The source's columns as its metadata types them: fieldName -> dataTypeName, in order."""
        return {column.name: column.type for column in self.columns}

    @property
    def lake_schema(self) -> pa.Schema:
        """One row of the lake: the Socrata row id, then every source column typed by :data:`LAKE_TYPES`."""
        return pa.schema([ROW_ID, *(pa.field(c.name, LAKE_TYPES[c.type], nullable=False) for c in self.columns)])

    def column(self, name: str) -> ColumnEntry:
        """The column called ``name`` (a KeyError naming the dataset when it has none)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"dataset {self.id} has no column {name!r}")


def _problem(error: ValidationError) -> str:
    """The first thing pydantic found wrong, as a clause (``missing required field 'title'``)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return f"missing required field {where!r}"
    if first["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    message = first["msg"].removeprefix("Value error, ")
    # Our own validators name the field in their message; pydantic's say only what is wrong.
    return message if first["type"] == "value_error" else f"{where}: {message}"


def read_entry(path: str | Path) -> DatasetEntry:
    """Read and validate one entry file; a :class:`DatasetConfigError` names the file and what is wrong."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise DatasetConfigError(f"dataset entry {path}: not valid YAML{line}") from None
    if not isinstance(document, Mapping):
        raise DatasetConfigError(f"dataset entry {path}: not a YAML mapping of fields (id, title, columns, …)")
    try:
        entry = DatasetEntry.model_validate(document)
    except ValidationError as error:
        raise DatasetConfigError(f"dataset entry {path}: {_problem(error)}") from None
    return entry


def load_entries(folder: str | Path = ENTRIES_FOLDER) -> dict[str, DatasetEntry]:
    """Every entry of ``folder`` by dataset id, in file-name order; two entries may not share an id or a slug."""
    entries: dict[str, DatasetEntry] = {}
    files: dict[tuple[str, str], Path] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        entry = read_entry(path)
        for field, value in (("id", entry.id), ("slug", entry.slug)):
            earlier = files.setdefault((field, value), path)
            if earlier != path:
                raise DatasetConfigError(f"dataset entry {path}: {field} {value!r} is already that of {earlier.name}")
        entries[entry.id] = entry
    return entries


@cache
def configured() -> dict[str, DatasetEntry]:
    """The entries shipped with the package (read once), by dataset id."""
    return load_entries(ENTRIES_FOLDER)


def dataset_entry(dataset_id: str) -> DatasetEntry:
    """The shipped entry of ``dataset_id``; a :class:`DatasetConfigError` when none is configured."""
    entries = configured()
    if dataset_id not in entries:
        raise DatasetConfigError(
            f"no dataset entry for {dataset_id!r} in {ENTRIES_FOLDER} (configured: {', '.join(entries)})"
        )
    return entries[dataset_id]
