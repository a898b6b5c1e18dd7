"""The data contract of dataset ``4v6r-wu98``: source columns, the lake's Arrow schema, the 9 articles.

Each is read from the dataset's entry (``datasets/4v6r-wu98.yaml``); the Socrata type names are kept here.

Source: Policía Nacional de Colombia, datos.gov.co dataset 4v6r-wu98, CC BY-SA 4.0.
"""

from __future__ import annotations

import pyarrow as pa

from delitos_platform.datasets import dataset_entry

DATASET_ID = "4v6r-wu98"
# Its declarative entry (delitos_platform/datasets/4v6r-wu98.yaml): the constants below are read from it.
ENTRY = dataset_entry(DATASET_ID)
# The Socrata domain that publishes it: the real API, which nothing talks to unless chosen.
SOCRATA_DOMAIN = "https://www.datos.gov.co"
ATTRIBUTION = ENTRY.attribution

# Socrata names a column's type twice, and the two names differ for timestamps: the dataset's metadata
# (`/api/views/{id}.json`, `dataTypeName` and `renderTypeName`) says `calendar_date` where the SODA2 answer's
# `X-SODA2-Types` header says `floating_timestamp`. Metadata name -> header name, for the types a dataset of this
# family can have; docs/operations.md says which pairs a recorded portal answer confirms.
SODA2_TYPES: dict[str, str] = {
    "calendar_date": "floating_timestamp",
    "date": "fixed_timestamp",
    "text": "text",
    "number": "number",
    "checkbox": "checkbox",
    "url": "url",
    "point": "point",
    "location": "location",
}

# The source's columns as its metadata types them: fieldName -> dataTypeName (the entry's, in its order).
SOURCE_COLUMNS: dict[str, str] = ENTRY.source_columns


def soda2_type(metadata_type: str) -> str:
    """The name ``X-SODA2-Types`` gives a column the metadata types ``metadata_type`` (unknown names kept)."""
    return SODA2_TYPES.get(metadata_type, metadata_type)


def metadata_type(soda2: str) -> str:
    """The ``dataTypeName`` the metadata gives a column that ``X-SODA2-Types`` names ``soda2``."""
    return next((name for name, header in SODA2_TYPES.items() if header == soda2), soda2)


# Articles 269A–269J of Law 1273 of 2009 (there is no 269H): code -> short category name.
ARTICLES: dict[str, str] = dict(ENTRY.column("descripcion_conducta").values or {})

# One row of the lake: the Socrata row id plus the 7 source columns, typed.
LAKE_SCHEMA: pa.Schema = ENTRY.lake_schema

# A quarantined row: the raw source row as JSON and why it was refused.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string()),
        pa.field("fecha_hecho", pa.string()),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
