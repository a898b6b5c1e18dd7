"""Pages of Socrata rows → typed Arrow tables, with malformed rows set aside for quarantine.

Per-row work happens in Arrow compute kernels: Python only moves each page's values into columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

from delitos_platform.contract import QUARANTINE_SCHEMA
from delitos_platform.lake.dataset import DELITOS, LakeDataset


def source_fields(dataset: LakeDataset = DELITOS) -> list[str]:
    """What the lake asks of the source: the row key and the dataset's columns, nothing more."""
    return [":id", *dataset.source_columns]


# 4v6r-wu98's: a page as the API sends it, and rows between typing and writing (text held as dictionaries).
SOURCE_FIELDS = source_fields()
RAW_SCHEMA = DELITOS.raw_schema
MEMORY_SCHEMA = DELITOS.memory_schema

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


def article_pattern(articles: dict[str, str]) -> str:
    """A value names one of the articles its entry lists: ``ARTICULO 269A. ACCESO ABUSIVO A UN SISTEMA …``."""
    return rf"^ARTICULO ({'|'.join(articles)})\."


POSITIVE_INTEGER = r"^[1-9][0-9]{0,17}$"
INTEGER = r"^-?[0-9]{1,18}$"

FAMILY_RULES: list[Rule] = [
    (":id is missing", lambda raw: pc.is_null(raw["row_id"])),
    ("fecha_hecho has a time zone (Socrata's floating_timestamp has none: its day cannot be known)", _has_time_zone),
    ("fecha_hecho is missing or not a date", _not_a_date),
    ("cod_depto is not 2 digits", _fails_pattern("cod_depto", r"^\d{2}$")),
    ("departamento is empty", _is_blank("departamento")),
    ("cod_muni is not 5 digits", _fails_pattern("cod_muni", r"^\d{5}$")),
    ("cod_muni does not start with cod_depto", _muni_outside_depto),
    ("municipio is empty", _is_blank("municipio")),
]


@cache
def rules(dataset: LakeDataset = DELITOS) -> list[Rule]:
    """The rules a row of ``dataset`` must pass: the family's (a date, the codes, a positive ``cantidad``), a rule
    for each further number column, and, where the entry lists the articles a conduct names, one of them."""
    own: list[Rule] = []
    articles = dataset.articles()
    if articles:
        reason = f"descripcion_conducta is not one of the {len(articles)} articles of Law 1273/2009"
        own.append((reason, _fails_pattern("descripcion_conducta", article_pattern(articles))))
    own.append(("cantidad is not a positive integer", _fails_pattern("cantidad", POSITIVE_INTEGER)))
    others = [name for name, kind in dataset.source_columns.items() if kind == "number" and name != "cantidad"]
    own += [(f"{name} is not an integer", _fails_pattern(name, INTEGER)) for name in others]
    return [*FAMILY_RULES, *own]


# 4v6r-wu98's rules (its article rule included).
RULES = rules()


def type_page(raw: pa.Table, dataset: LakeDataset = DELITOS) -> TypedPage:
    """Validate a page of strings against the dataset's entry, type the good rows, explain every refused one."""
    raw = with_parsed_day(raw, dataset)
    failures = [(reason, test(raw)) for reason, test in rules(dataset)]
    refused = failures[0][1]
    for _, mask in failures[1:]:
        refused = pc.or_(refused, mask)
    kept = _typed(raw.filter(pc.invert(refused)), dataset)
    return TypedPage(rows=kept, quarantine=_quarantined(raw, refused, failures, dataset))


def with_parsed_day(raw: pa.Table, dataset: LakeDataset = DELITOS) -> pa.Table:
    """The raw columns plus ``day``: ``fecha_hecho`` parsed once for every rule that needs it."""
    return raw.select(dataset.raw_schema.names).append_column("day", _parse_day(raw))


def _typed(raw: pa.Table, dataset: LakeDataset) -> pa.Table:
    columns = {name: raw[name] for name in dataset.raw_schema.names}
    columns["fecha_hecho"] = raw["day"]
    for name, kind in dataset.source_columns.items():
        if kind == "number":
            columns[name] = raw[name].cast(pa.int64())
    # Codes and names repeat on every row: held as dictionaries they take a fraction of the memory
    # until the month is written (the lake schema casts them back to plain strings).
    for name in dataset.text_columns:
        columns[name] = pc.dictionary_encode(columns[name])
    return pa.table(columns).cast(dataset.memory_schema)


def _quarantined(
    raw: pa.Table,
    refused: pa.ChunkedArray,
    failures: list[tuple[str, pa.ChunkedArray]],
    dataset: LakeDataset,
) -> pa.Table:
    # Refused rows are rare: explaining them one by one in Python costs nothing.
    indices = pc.indices_nonzero(refused).to_pylist()
    masks = [(reason, mask.to_pylist()) for reason, mask in failures if pc.any(mask).as_py()]
    reasons = ["; ".join(reason for reason, mask in masks if mask[i]) for i in indices]
    return quarantine_rows(raw.take(pa.array(indices, pa.int64())), reasons, dataset)


def quarantine_rows(raw: pa.Table, reasons: list[str], dataset: LakeDataset = DELITOS) -> pa.Table:
    """Raw rows set aside, each with the row as the API sent it (JSON) and why it was refused."""
    rows = raw.select(dataset.raw_schema.names).to_pylist()
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
