"""Our emulator answers as the recorded production portal does, wherever a client could tell them apart.

Each test puts an emulator answer beside a recorded one: the shape of the body, every value a string, the
headers and their spelling, the metadata's fields and column types, the error bodies. Where the emulator does not
match a recording on purpose, the test says why.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime

import requests

from delitos_platform.contract import SOURCE_COLUMNS
from delitos_platform.emulator import EmulatorServer
from delitos_platform_tests.fidelity.recordings import Interaction, cassette

# Headers every recorded answer of rows carries, all of which a client may read.
ROWS_HEADERS = (
    "Content-Type",
    "Last-Modified",
    "ETag",
    "X-SODA2-Fields",
    "X-SODA2-Types",
    "X-SODA2-Truth-Last-Modified",
    "X-SODA2-Secondary-Last-Modified",
    "X-SODA2-Data-Out-Of-Date",
    "Access-Control-Allow-Origin",
    "X-Socrata-RequestId",
)
# Column fields the portal sends that the emulator leaves out: statistics of the column's values and its width
# in the portal's grid, which no client of ours reads.
UNSERVED_COLUMN_FIELDS = {"cachedContents", "width"}


def recorded_rows() -> Interaction:
    return cassette("test_get")[0]


def recorded_metadata() -> dict:
    return json.loads(cassette("test_get_metadata_and_attachments")[0].body)


def get(emulator: EmulatorServer, path: str, **params: str) -> requests.Response:
    return requests.get(f"{emulator.url}{path}", params=params, timeout=10)


def test_rows_come_framed_like_the_portals_one_row_a_line_comma_first(emulator: EmulatorServer) -> None:
    served = get(emulator, "/resource/4v6r-wu98.json", **{"$limit": "3"}).content
    recorded = recorded_rows().body
    for body in (served, recorded):
        assert body.startswith(b'[{"') and body.endswith(b"}]\n")
        lines = body.decode().split("\n")
        assert all(line.startswith(",{") for line in lines[1:-1]) and lines[-1] == ""
    assert len(served.decode().split("\n")) == 4


def test_every_value_is_a_string_and_a_missing_value_is_left_out() -> None:
    rows = [
        {"fecha_hecho": "2024-01-05T00:00:00.000", "cod_depto": "68", "departamento": "SANTANDER"},
        {"fecha_hecho": "2024-01-06T00:00:00.000", "cod_depto": "68", "departamento": "SANTANDER", "cantidad": "2"},
    ]
    with EmulatorServer(snapshot=rows) as emulator:
        served = get(emulator, "/resource/4v6r-wu98.json", **{"$select": "fecha_hecho, cantidad"}).json()
    assert served == [
        {"fecha_hecho": "2024-01-05T00:00:00.000"},
        {"fecha_hecho": "2024-01-06T00:00:00.000", "cantidad": "2"},
    ]
    recorded = json.loads(recorded_rows().body)
    assert all(isinstance(value, str) for row in recorded for value in row.values())


def test_rows_carry_the_portals_headers_spelt_as_it_spells_them(emulator: EmulatorServer) -> None:
    served = get(emulator, "/resource/4v6r-wu98.json", **{"$limit": "1"}).headers
    recorded = recorded_rows()
    for name in ROWS_HEADERS:
        assert served.get(name), name
        assert recorded.header(name), name
    assert served["Content-Type"] == recorded.header("Content-Type") == "application/json;charset=utf-8"
    assert served["X-SODA2-Data-Out-Of-Date"] == recorded.header("X-SODA2-Data-Out-Of-Date") == "false"
    for name in ("X-SODA2-Fields", "X-SODA2-Types"):  # compact JSON arrays, no spaces
        assert " " not in served[name] and " " not in recorded.header(name)
    assert json.loads(served["X-SODA2-Fields"]) == list(SOURCE_COLUMNS)
    assert json.loads(served["X-SODA2-Types"])[0] == json.loads(recorded.header("X-SODA2-Types"))[2]
    for name in ("Last-Modified", "X-SODA2-Truth-Last-Modified"):  # RFC 1123 dates in GMT
        assert served[name].endswith(" GMT") and recorded.header(name).endswith(" GMT")
        assert parsedate_to_datetime(served[name]) == parsedate_to_datetime(served["Last-Modified"])


def test_metadata_has_the_portals_fields_with_the_portals_types(emulator: EmulatorServer) -> None:
    response = get(emulator, "/api/views/4v6r-wu98.json")
    served, recorded = response.json(), recorded_metadata()
    assert response.headers["Content-Type"] == cassette("test_get_metadata_and_attachments")[0].header("Content-Type")
    shared = set(served) & set(recorded)
    assert {"id", "name", "rowsUpdatedAt", "viewLastModified", "createdAt", "columns", "publicationStage"} <= shared
    for key in shared:
        assert type(served[key]) is type(recorded[key]), key
    recorded_fields = set(recorded["columns"][0]) - UNSERVED_COLUMN_FIELDS
    for column in served["columns"]:
        assert set(column) == recorded_fields
        assert column["dataTypeName"] == column["renderTypeName"] == SOURCE_COLUMNS[column["fieldName"]]
    assert served["columns"][0]["dataTypeName"] == "calendar_date"
    assert {c["dataTypeName"] for c in recorded["columns"]} >= {"calendar_date", "number"}


def test_metadata_and_errors_are_laid_out_as_the_portal_writes_them(emulator: EmulatorServer) -> None:
    served = get(emulator, "/api/views/4v6r-wu98.json").text
    recorded = cassette("test_get_metadata_and_attachments")[0].body.decode()
    for body in (served, recorded):
        assert body.startswith('{\n  "id" : "') and body.endswith("}\n")


def test_a_missing_dataset_is_answered_as_the_portal_answers_it(emulator: EmulatorServer) -> None:
    for path, name in (
        ("/resource/songs.json", "test_get_missing"),
        ("/api/views/songs.json", "test_get_metadata_and_attachments_missing"),
    ):
        served = get(emulator, path)
        recorded = cassette(name)[0]
        assert served.status_code == recorded.status == 404
        assert served.text == recorded.body.decode()
        assert served.headers["Content-Type"] == recorded.header("Content-Type")
        assert served.headers["Cache-Control"] == recorded.header("Cache-Control")
        for header in ("X-Error-Code", "X-Error-Message"):
            assert served.headers.get(header, "") == recorded.header(header)
