"""Quality of what the lake holds: its schema against the contract, its values against the rules."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from delitos_platform.contract import LAKE_SCHEMA, SOURCE_COLUMNS
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.rows import RAW_SCHEMA, RULES, with_parsed_day
from delitos_platform.lake.storage import LakeResource, data_key
from delitos_platform.partitions import Window

OUTSIDE_MONTH = "fecha_hecho outside its month"


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


def object_schema_drift(schema: pa.Schema) -> list[str]:
    """How a lake object's Parquet schema differs from ``LAKE_SCHEMA``."""
    stored = {field.name: field.type for field in schema.remove_metadata()}
    expected = {field.name: field.type for field in LAKE_SCHEMA}
    drift = [f"unexpected column {name!r}" for name in stored if name not in expected]
    drift += [f"missing column {name!r}" for name in expected if name not in stored]
    drift += [
        f"{name!r} is {stored[name]}, not {kind}" for name, kind in expected.items() if stored.get(name, kind) != kind
    ]
    return drift


def value_offenders(table: pa.Table, month_key: str) -> dict[str, int]:
    """Rows of a month's lake object breaking each rule (only rules with offenders are listed)."""
    raw = pa.table({name: table[name].cast(pa.string()) for name in RAW_SCHEMA.names})
    raw = with_parsed_day(raw)
    counts = {reason: pc.sum(test(raw)).as_py() or 0 for reason, test in RULES}
    window = Window.for_month(month_key)
    inside = pc.and_(pc.greater_equal(table["fecha_hecho"], window.start), pc.less(table["fecha_hecho"], window.end))
    counts[OUTSIDE_MONTH] = pc.sum(pc.invert(inside.fill_null(False))).as_py() or 0
    return {reason: count for reason, count in counts.items() if count}


def lake_value_offenders(lake: LakeResource, month_key: str) -> dict[str, int]:
    """The rule breakers of the month's object as the lake stores it."""
    return value_offenders(from_parquet_bytes(lake.read(data_key(month_key))), month_key)
