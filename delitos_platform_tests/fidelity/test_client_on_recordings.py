"""Our Socrata client against answers recorded from a production portal, replayed on loopback byte for byte.

What the platform reads of the source (metadata and its column types, rows, counts, errors) is read from the
real portal's own words, through real sodapy: the contract and the emulator are held to these, not to each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from delitos_platform.contract import SOURCE_COLUMNS, soda2_type
from delitos_platform.lake.quality import source_schema_drift
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.socrata.resource import PageDecoder
from delitos_platform_tests.fidelity.recordings import ReplayServer, cassette, rows_answers

RECORDED_DATASET = "uczf-rk3c"


@pytest.fixture(scope="module")
def portal() -> Iterator[ReplayServer]:
    """Every recorded answer of the portal, served again on loopback."""
    names = ("test_get", "test_get_all", "test_get_metadata_and_attachments", "test_get_missing")
    with ReplayServer(*names, "test_get_metadata_and_attachments_missing") as server:
        yield server


def socrata(portal: ReplayServer, dataset_id: str = RECORDED_DATASET) -> SocrataResource:
    """Our client over the replayed portal, asking SODA2: the recordings are SODA2 answers."""
    return SocrataResource(url=portal.url, dataset_id=dataset_id, max_retries=0, api="soda2")


def recorded_metadata() -> dict:
    return json.loads(cassette("test_get_metadata_and_attachments")[0].body)


# How datos.gov.co's metadata types the columns of 4v6r-wu98 (a floating timestamp is ``calendar_date`` there).
PORTAL_TYPES = {
    "fecha_hecho": "calendar_date",
    "cod_depto": "text",
    "departamento": "text",
    "cod_muni": "text",
    "municipio": "text",
    "descripcion_conducta": "text",
    "cantidad": "number",
}


def portal_columns_for_our_dataset() -> list[dict]:
    """Our dataset's columns as the portal describes a column of each kind: a recorded column entry per type.

    The recorded dataset has number and floating-timestamp columns; a text column is the same entry with the
    text type (the portal writes ``text`` in both places, as the rows' headers of another recording show).
    """
    recorded = recorded_metadata()["columns"]
    by_type = {column["dataTypeName"]: column for column in recorded}
    by_type["text"] = {**by_type["number"], "dataTypeName": "text", "renderTypeName": "text"}
    return [
        {**by_type[kind], "fieldName": name, "name": name, "position": position}
        for position, (name, kind) in enumerate(PORTAL_TYPES.items(), start=1)
    ]


def test_the_schema_check_accepts_columns_typed_as_the_portal_types_them() -> None:
    assert set(PORTAL_TYPES) == set(SOURCE_COLUMNS)
    assert source_schema_drift(portal_columns_for_our_dataset()) == []


def test_a_real_change_of_type_still_fails_the_schema_check() -> None:
    columns = portal_columns_for_our_dataset()
    columns[0] = {**columns[0], "dataTypeName": "text", "renderTypeName": "text"}
    assert source_schema_drift(columns) == ["column 'fecha_hecho' retyped calendar_date → text"]


def test_each_metadata_type_maps_to_the_type_the_rows_headers_name() -> None:
    """The one mapping (metadata ``dataTypeName`` -> ``X-SODA2-Types``) holds for every recorded column."""
    by_field = {column["fieldName"]: column for column in recorded_metadata()["columns"]}
    rows = cassette("test_get")[0]
    fields = json.loads(rows.header("X-SODA2-Fields"))
    types = json.loads(rows.header("X-SODA2-Types"))
    assert "calendar_date" in {column["dataTypeName"] for column in by_field.values()}
    for field, header_type in zip(fields, types, strict=True):
        assert by_field[field]["renderTypeName"] == by_field[field]["dataTypeName"]
        assert soda2_type(by_field[field]["dataTypeName"]) == header_type


def test_metadata_is_read_through_sodapy_as_the_portal_sends_it(portal: ReplayServer) -> None:
    metadata = socrata(portal).metadata()
    assert metadata["rowsUpdatedAt"] == 1745766729  # epoch seconds, an integer
    assert [column["fieldName"] for column in metadata["columns"]] == ["countid", "id", "date", "counts", "status"]
    assert portal.requests[-1] == ("GET", f"/api/views/{RECORDED_DATASET}.json", ())


def test_rows_are_read_through_sodapy_as_the_portal_sends_them(portal: ReplayServer) -> None:
    recorded = cassette("test_get")[0]
    rows = socrata(portal).query("reading rows")
    assert rows == json.loads(recorded.body)
    assert len(rows) == 1000 and all(isinstance(value, str) for row in rows for value in row.values())
    second_page = cassette("test_get_all")[1]
    assert socrata(portal).query("reading the second page", offset=1000) == json.loads(second_page.body)


@pytest.mark.parametrize("answer", list(rows_answers()), ids=lambda answer: f"{answer.path}?{answer.query}")
def test_a_page_decodes_into_exactly_the_recorded_rows(answer) -> None:
    fields = json.loads(answer.header("X-SODA2-Fields"))
    assert answer.body.startswith(b'[{"') and b"}\n,{" in answer.body and answer.body.endswith(b"}]\n")
    page = PageDecoder(fields).decode(answer.body)
    decoded = sorted(tuple(row.items()) for row in page.to_pylist())
    recorded = sorted(tuple((field, row.get(field)) for field in fields) for row in json.loads(answer.body))
    assert decoded == recorded


@pytest.mark.parametrize("dataset", ["songs"])
def test_a_missing_dataset_is_one_sentence_from_either_endpoint(portal: ReplayServer, dataset: str) -> None:
    for read in (lambda s: s.metadata(), lambda s: s.query("reading rows")):
        with pytest.raises(SocrataError) as raised:
            read(socrata(portal, dataset))
        assert str(raised.value) == f"dataset 'songs' does not exist at {portal.url} (Not found)"
