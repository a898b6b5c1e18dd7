"""The data contract of dataset ``4v6r-wu98``: source columns, the lake's Arrow schema, the 9 articles.

Source: Policía Nacional de Colombia, datos.gov.co dataset 4v6r-wu98, CC BY-SA 4.0.
"""

from __future__ import annotations

import pyarrow as pa

DATASET_ID = "4v6r-wu98"
# The Socrata domain that publishes it: the real API, which nothing talks to unless chosen.
SOCRATA_DOMAIN = "https://www.datos.gov.co"
ATTRIBUTION = "Source: Policía Nacional de Colombia, datos.gov.co dataset 4v6r-wu98, CC BY-SA 4.0"

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

# The source's columns as its metadata types them: fieldName -> dataTypeName.
SOURCE_COLUMNS: dict[str, str] = {
    "fecha_hecho": "calendar_date",
    "cod_depto": "text",
    "departamento": "text",
    "cod_muni": "text",
    "municipio": "text",
    "descripcion_conducta": "text",
    "cantidad": "number",
}


def soda2_type(metadata_type: str) -> str:
    """The name ``X-SODA2-Types`` gives a column the metadata types ``metadata_type`` (unknown names kept)."""
    return SODA2_TYPES.get(metadata_type, metadata_type)


def metadata_type(soda2: str) -> str:
    """The ``dataTypeName`` the metadata gives a column that ``X-SODA2-Types`` names ``soda2``."""
    return next((name for name, header in SODA2_TYPES.items() if header == soda2), soda2)


# Articles 269A–269J of Law 1273 of 2009 (there is no 269H): code -> short category name.
ARTICLES: dict[str, str] = {
    "269A": "ACCESO ABUSIVO",
    "269B": "OBSTACULIZACION DE SISTEMA O RED",
    "269C": "INTERCEPTACION DE DATOS",
    "269D": "DAÑO INFORMATICO",
    "269E": "SOFTWARE MALICIOSO",
    "269F": "VIOLACION DE DATOS PERSONALES",
    "269G": "SUPLANTACION DE SITIOS WEB",
    "269I": "HURTO POR MEDIOS INFORMATICOS",
    "269J": "TRANSFERENCIA NO CONSENTIDA DE ACTIVOS",
}

# One row of the lake: the Socrata row id plus the 7 source columns, typed.
LAKE_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string(), nullable=False),
        pa.field("fecha_hecho", pa.date32(), nullable=False),
        pa.field("cod_depto", pa.string(), nullable=False),
        pa.field("departamento", pa.string(), nullable=False),
        pa.field("cod_muni", pa.string(), nullable=False),
        pa.field("municipio", pa.string(), nullable=False),
        pa.field("descripcion_conducta", pa.string(), nullable=False),
        pa.field("cantidad", pa.int64(), nullable=False),
    ]
)

# A quarantined row: the raw source row as JSON and why it was refused.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string()),
        pa.field("fecha_hecho", pa.string()),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
