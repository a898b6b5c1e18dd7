"""Typing a page of the source's text: each refused row says the one true reason it was refused."""

from __future__ import annotations

import pyarrow as pa

from delitos_platform.lake.rows import RAW_SCHEMA, type_page

ROW = {
    "cod_depto": "68",
    "departamento": "SANTANDER",
    "cod_muni": "68001",
    "municipio": "BUCARAMANGA",
    "descripcion_conducta": "ARTICULO 269F. VIOLACIÓN DE DATOS PERSONALES",
    "cantidad": "1",
}
ZONED = "fecha_hecho has a time zone (Socrata's floating_timestamp has none: its day cannot be known)"


def _page(dates: list[str | None]) -> pa.Table:
    rows = [{**ROW, "row_id": f"row-{index}", "fecha_hecho": day} for index, day in enumerate(dates)]
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


def test_a_fecha_hecho_with_z_or_an_offset_is_quarantined_for_its_time_zone():
    zoned = ["2019-03-01T00:00:00.000Z", "2019-03-01T23:30:00.000-05:00", "2019-03-01T00:00:00+0500", "2019-03-01Z"]
    typed = type_page(_page(["2019-03-01T00:00:00.000", *zoned, "yesterday", None]))

    assert typed.rows["row_id"].to_pylist() == ["row-0"]
    reasons = dict(zip(typed.quarantine["row_id"].to_pylist(), typed.quarantine["reason"].to_pylist(), strict=True))
    assert reasons == {
        **{f"row-{index}": ZONED for index in range(1, 5)},
        "row-5": "fecha_hecho is missing or not a date",
        "row-6": "fecha_hecho is missing or not a date",
    }


def test_a_conduct_naming_an_article_outside_the_entrys_nine_is_quarantined():
    named = {code: f"ARTICULO {code}. ALGO" for code in ("269A", "269C", "269I", "269J", "269H", "269K", "270A")}
    rows = [
        {**ROW, "row_id": code, "fecha_hecho": "2019-03-01T00:00:00.000", "descripcion_conducta": text}
        for code, text in named.items()
    ]
    typed = type_page(pa.Table.from_pylist(rows, schema=RAW_SCHEMA))

    assert typed.rows["row_id"].to_pylist() == ["269A", "269C", "269I", "269J"]
    assert typed.quarantine["row_id"].to_pylist() == ["269H", "269K", "270A"]
