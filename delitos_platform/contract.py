"""The data contract of dataset ``4v6r-wu98``: source columns, the lake's Arrow schema, the 9 articles.

Source: Policía Nacional de Colombia, datos.gov.co dataset 4v6r-wu98, CC BY-SA 4.0.
"""

from __future__ import annotations

import pyarrow as pa

DATASET_ID = "4v6r-wu98"
# The Socrata domain that publishes it: the real API, which nothing talks to unless chosen.
SOCRATA_DOMAIN = "https://www.datos.gov.co"
ATTRIBUTION = "Source: Policía Nacional de Colombia, datos.gov.co dataset 4v6r-wu98, CC BY-SA 4.0"

# The source's columns as Socrata publishes them: fieldName -> dataTypeName.
SOURCE_COLUMNS: dict[str, str] = {
    "fecha_hecho": "floating_timestamp",
    "cod_depto": "text",
    "departamento": "text",
    "cod_muni": "text",
    "municipio": "text",
    "descripcion_conducta": "text",
    "cantidad": "number",
}

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
