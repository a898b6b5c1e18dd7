"""Quality of what the lake holds: its schema against the contract, its values against the rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from delitos_platform.contract import LAKE_SCHEMA, SOURCE_COLUMNS
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.rows import RAW_SCHEMA, RULES, with_parsed_day
from delitos_platform.lake.storage import LakeResource, data_key

OUTSIDE_MONTH = "fecha_hecho outside its month"
# Rules run over many months at once (Python's share is per call); 24 months of the national data ≈ 50k rows.
MONTHS_CHECKED_AT_ONCE = 24
CHECKERS = 2


def source_schema_drift(columns: list[Mapping[str, str]]) -> list[str]:
    """How the source's published columns differ from the contract, one readable line per difference."""
    published = {c["fieldName"]: c["dataTypeName"] for c in columns if not c["fieldName"].startswith(":")}
    drift = [f"new column {name!r} ({kind})" for name, kind in published.items() if name not in SOURCE_COLUMNS]
    drift += [f"missing column {name!r} ({kind})" for name, kind in SOURCE_COLUMNS.items() if name not in published]
    drift += [
        f"column {name!r} retyped {kind} → {published[name]}"
        for name, kind in SOURCE_COLUMNS.items()
        if name in published and published[name] != kind
    ]
    return drift


def object_schema_drift(schema: pa.Schema, contract: pa.Schema = LAKE_SCHEMA) -> list[str]:
    """How a lake object's Parquet schema differs from ``contract`` (the month objects' ``LAKE_SCHEMA``)."""
    stored = {field.name: field.type for field in schema.remove_metadata()}
    expected = {field.name: field.type for field in contract}
    drift = [f"unexpected column {name!r}" for name in stored if name not in expected]
    drift += [f"missing column {name!r}" for name in expected if name not in stored]
    drift += [
        f"{name!r} is {stored[name]}, not {kind}" for name, kind in expected.items() if stored.get(name, kind) != kind
    ]
    return drift


def value_offenders(tables: Mapping[str, pa.Table]) -> dict[str, dict[str, int]]:
    """Per month (``YYYY-MM-01``) of lake objects: the rows breaking each rule (rules without offenders left out).

    The months' rows are checked together, each rule once over all of them, then counted month by month.
    """
    if not tables:
        return {}
    months = list(tables)
    table = pa.concat_tables(month_rows.cast(LAKE_SCHEMA) for month_rows in tables.values())
    position = np.repeat(np.arange(len(months)), [rows.num_rows for rows in tables.values()])
    raw = with_parsed_day(pa.table({name: table[name].cast(pa.string()) for name in RAW_SCHEMA.names}))
    masks = {reason: test(raw) for reason, test in RULES}
    month_of_row = pa.array(np.array(months, dtype="datetime64[D]")[position]).cast(pa.date32())
    own_month = pc.equal(pc.floor_temporal(table["fecha_hecho"], unit="month"), month_of_row)
    masks[OUTSIDE_MONTH] = pc.invert(own_month.fill_null(False))
    offenders: dict[str, dict[str, int]] = {month: {} for month in months}
    for reason, mask in masks.items():
        per_month = np.bincount(position[mask.fill_null(False).to_numpy()], minlength=len(months))
        for index in np.flatnonzero(per_month):
            offenders[months[index]][reason] = int(per_month[index])
    return offenders


def lake_value_offenders(lake: LakeResource, month_keys: Sequence[str]) -> dict[str, dict[str, int]]:
    """The rule breakers of each month's object as the lake stores it, a couple of years of months at a time."""

    def offenders_of(months: Sequence[str]) -> dict[str, dict[str, int]]:
        return value_offenders({month: from_parquet_bytes(lake.read(data_key(month))) for month in months})

    chunks = [
        month_keys[first : first + MONTHS_CHECKED_AT_ONCE]
        for first in range(0, len(month_keys), MONTHS_CHECKED_AT_ONCE)
    ]
    with ThreadPoolExecutor(max_workers=CHECKERS) as checkers:  # Arrow's kernels and reads let go of the GIL
        return {month: found for chunk in checkers.map(offenders_of, chunks) for month, found in chunk.items()}
