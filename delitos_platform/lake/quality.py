"""Quality of what the lake holds: its schema against the contract, its values against the rules."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from delitos_platform.contract import LAKE_SCHEMA
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.rows import rules, with_parsed_day

OUTSIDE_MONTH = "fecha_hecho outside its month"


def source_schema_drift(columns: list[Mapping[str, str]], dataset: LakeDataset = DELITOS) -> list[str]:
    """How the source's published columns differ from the dataset's entry, one readable line per difference."""
    expected = dataset.source_columns
    published = {c["fieldName"]: c["dataTypeName"] for c in columns if not c["fieldName"].startswith(":")}
    drift = [f"new column {name!r} ({kind})" for name, kind in published.items() if name not in expected]
    drift += [f"missing column {name!r} ({kind})" for name, kind in expected.items() if name not in published]
    drift += [
        f"column {name!r} retyped {kind} → {published[name]}"
        for name, kind in expected.items()
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


def value_offenders(tables: Mapping[str, pa.Table], dataset: LakeDataset = DELITOS) -> dict[str, dict[str, int]]:
    """Per month (``YYYY-MM-01``) of lake objects: the rows breaking each rule (rules without offenders left out).

    The months' rows are checked together, each rule once over all of them, then counted month by month.
    """
    if not tables:
        return {}
    months = list(tables)
    table = pa.concat_tables(month_rows.cast(dataset.lake_schema) for month_rows in tables.values())
    position = np.repeat(np.arange(len(months)), [rows.num_rows for rows in tables.values()])
    names = dataset.raw_schema.names
    raw = with_parsed_day(pa.table({name: table[name].cast(pa.string()) for name in names}), dataset)
    masks = {reason: test(raw) for reason, test in rules(dataset)}
    month_of_row = pa.array(np.array(months, dtype="datetime64[D]")[position]).cast(pa.date32())
    own_month = pc.equal(pc.floor_temporal(table["fecha_hecho"], unit="month"), month_of_row)
    masks[OUTSIDE_MONTH] = pc.invert(own_month.fill_null(False))
    offenders: dict[str, dict[str, int]] = {month: {} for month in months}
    for reason, mask in masks.items():
        per_month = np.bincount(position[mask.fill_null(False).to_numpy()], minlength=len(months))
        for index in np.flatnonzero(per_month):
            offenders[months[index]][reason] = int(per_month[index])
    return offenders
