"""Pages of Socrata rows → typed Arrow tables, with malformed rows set aside for quarantine.

Per-row work happens in Arrow compute kernels: Python only moves each page's values into columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from delitos_platform.contract import ARTICLES, LAKE_SCHEMA, QUARANTINE_SCHEMA, SOURCE_COLUMNS

# What the lake asks of the source: the row key and the contract's columns, nothing more.
SOURCE_FIELDS = [":id", *SOURCE_COLUMNS]
RAW_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in ["row_id", *SOURCE_COLUMNS]])
# A value names one of the articles its entry lists: ``ARTICULO 269A. ACCESO ABUSIVO A UN SISTEMA INFORMATICO``.
ARTICLE_PATTERN = rf"^ARTICULO ({'|'.join(ARTICLES)})\."
DICTIONARY_COLUMNS = ("cod_depto", "departamento", "cod_muni", "municipio", "descripcion_conducta")
# Rows between typing and writing: ``LAKE_SCHEMA`` with the repetitive text held as dictionaries.
MEMORY_SCHEMA = pa.schema(
    [
        field.with_type(pa.dictionary(pa.int32(), pa.string())) if field.name in DICTIONARY_COLUMNS else field
        for field in LAKE_SCHEMA
    ]
)

Rule = tuple[str, Callable[[pa.Table], pa.ChunkedArray]]


@dataclass(frozen=True)
class TypedPage:
    """One page split in two: rows typed to ``LAKE_SCHEMA`` and rows refused, with their reasons."""

    rows: pa.Table
    quarantine: pa.Table


def _fails_pattern(column: str, pattern: str) -> Callable[[pa.Table], pa.ChunkedArray]:
    return lambda raw: pc.invert(pc.match_substring_regex(raw[column], pattern)).fill_null(True)


def _is_blank(column: str) -> Callable[[pa.Table], pa.ChunkedArray]:
    return lambda raw: pc.equal(pc.utf8_trim_whitespace(raw[column]), "").fill_null(True)


def _parse_day(raw: pa.Table) -> pa.ChunkedArray:
    """``fecha_hecho`` as a date, null where it is missing or is not a floating timestamp."""
    fecha = raw["fecha_hecho"]
    looks_right = pc.match_substring_regex(fecha, r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,3})?)?$")
    day = pc.strptime(pc.utf8_slice_codeunits(fecha, 0, 10), format="%Y-%m-%d", unit="s", error_is_null=True)
    return pc.if_else(looks_right, day, None).cast(pa.date32())


# A date or timestamp that ends in ``Z`` or an offset. Socrata sends a floating_timestamp without one (its docs and
# every recorded response); a zoned value is a fixed_timestamp, whose day depends on a zone nobody recorded: refused
# for that reason, never shifted to a day of our choosing.
ZONED_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)$"


def _has_time_zone(raw: pa.Table) -> pa.ChunkedArray:
    return pc.match_substring_regex(raw["fecha_hecho"], ZONED_TIMESTAMP).fill_null(False)


def _not_a_date(raw: pa.Table) -> pa.ChunkedArray:
    """No day, for another reason than a time zone (that one is said on its own)."""
    return pc.and_(pc.is_null(raw["day"]), pc.invert(_has_time_zone(raw)))


def _muni_outside_depto(raw: pa.Table) -> pa.ChunkedArray:
    prefix = pc.utf8_slice_codeunits(raw["cod_muni"], 0, 2)
    return pc.not_equal(prefix, raw["cod_depto"]).fill_null(True)


RULES: list[Rule] = [
    (":id is missing", lambda raw: pc.is_null(raw["row_id"])),
    ("fecha_hecho has a time zone (Socrata's floating_timestamp has none: its day cannot be known)", _has_time_zone),
    ("fecha_hecho is missing or not a date", _not_a_date),
    ("cod_depto is not 2 digits", _fails_pattern("cod_depto", r"^\d{2}$")),
    ("departamento is empty", _is_blank("departamento")),
    ("cod_muni is not 5 digits", _fails_pattern("cod_muni", r"^\d{5}$")),
    ("cod_muni does not start with cod_depto", _muni_outside_depto),
    ("municipio is empty", _is_blank("municipio")),
    (
        "descripcion_conducta is not one of the 9 articles of Law 1273/2009",
        _fails_pattern("descripcion_conducta", ARTICLE_PATTERN),
    ),
    ("cantidad is not a positive integer", _fails_pattern("cantidad", r"^[1-9][0-9]{0,17}$")),
]


def type_page(raw: pa.Table) -> TypedPage:
    """Validate a page of strings against the contract, type the good rows, explain every refused one."""
    raw = with_parsed_day(raw)
    failures = [(reason, test(raw)) for reason, test in RULES]
    refused = failures[0][1]
    for _, mask in failures[1:]:
        refused = pc.or_(refused, mask)
    return TypedPage(rows=_typed(raw.filter(pc.invert(refused))), quarantine=_quarantined(raw, refused, failures))


def with_parsed_day(raw: pa.Table) -> pa.Table:
    """The raw columns plus ``day``: ``fecha_hecho`` parsed once for every rule that needs it."""
    return raw.select(RAW_SCHEMA.names).append_column("day", _parse_day(raw))


def _typed(raw: pa.Table) -> pa.Table:
    columns = {name: raw[name] for name in RAW_SCHEMA.names}
    columns["fecha_hecho"] = raw["day"]
    columns["cantidad"] = raw["cantidad"].cast(pa.int64())
    # Codes and names repeat on every row: held as dictionaries they take a fraction of the memory
    # until the month is written (``LAKE_SCHEMA`` casts them back to plain strings).
    for name in DICTIONARY_COLUMNS:
        columns[name] = pc.dictionary_encode(columns[name])
    return pa.table(columns).cast(MEMORY_SCHEMA)


def _quarantined(
    raw: pa.Table,
    refused: pa.ChunkedArray,
    failures: list[tuple[str, pa.ChunkedArray]],
) -> pa.Table:
    # Refused rows are rare: explaining them one by one in Python costs nothing.
    indices = pc.indices_nonzero(refused).to_pylist()
    masks = [(reason, mask.to_pylist()) for reason, mask in failures if pc.any(mask).as_py()]
    reasons = ["; ".join(reason for reason, mask in masks if mask[i]) for i in indices]
    return quarantine_rows(raw.take(pa.array(indices, pa.int64())), reasons)


def quarantine_rows(raw: pa.Table, reasons: list[str]) -> pa.Table:
    """Raw rows set aside, each with the row as the API sent it (JSON) and why it was refused."""
    rows = raw.select(RAW_SCHEMA.names).to_pylist()
    columns = {
        "row_id": [row["row_id"] for row in rows],
        "fecha_hecho": [row["fecha_hecho"] for row in rows],
        "raw": [json.dumps(_as_source_row(row), ensure_ascii=False, sort_keys=True) for row in rows],
        "reason": reasons,
    }
    return pa.table(columns, schema=QUARANTINE_SCHEMA)


def _as_source_row(row: dict[str, str | None]) -> dict[str, str]:
    """A row as the API sent it: ``:id`` under its own name, absent fields left out."""
    named = {(":id" if key == "row_id" else key): value for key, value in row.items()}
    return {key: value for key, value in named.items() if value is not None}
