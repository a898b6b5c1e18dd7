"""Error bodies and statuses, and SoQL injection attempts that must change nothing."""

from __future__ import annotations

import pytest
import requests
from sodapy import Socrata

from delitos_platform.emulator import EmulatorServer
from delitos_platform_tests.emulator.conftest import DATASET, client_for, resource


def _count(server: EmulatorServer) -> int:
    return int(resource(server, {"$select": "count(*)"}).json()[0]["count"])


def test_unknown_dataset_is_404_dataset_missing(emulator: EmulatorServer) -> None:
    for url in (f"{emulator.url}/resource/abcd-1234.json", f"{emulator.url}/api/views/abcd-1234.json"):
        response = requests.get(url, timeout=10)
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/json;charset=utf-8"
        body = response.json()
        assert body["code"] == "dataset.missing" and body["error"] is True and body["data"] == {}
        assert body["message"].startswith("Not found")
    with pytest.raises(requests.HTTPError, match="404"):
        client_for(emulator).get("abcd-1234")


def test_limit_above_50000_is_refused(emulator: EmulatorServer) -> None:
    response = resource(emulator, {"$limit": 50001})
    assert response.status_code == 400
    assert "50000" in response.json()["message"]
    assert resource(emulator, {"$limit": 50000}).status_code == 200


@pytest.mark.parametrize(
    ("params", "code", "quoted"),
    [
        ({"$where": "municipio = "}, "query.compiler.malformed", "end of input"),
        ({"$where": "nope = 'x'"}, "query.soql.no-such-column", "nope"),
        ({"$select": "frobnicate(municipio)"}, "query.soql.no-such-function", "frobnicate"),
        ({"$where": "cod_muni = 68001"}, "query.soql.type-mismatch", "68001"),
        ({"$where": "fecha_hecho > 'yesterday'"}, "query.soql.type-mismatch", "yesterday"),
        ({"$select": "municipio, count(*)"}, "query.soql.not-grouped", "municipio"),
        ({"$order": "municipio sideways"}, "query.compiler.malformed", "sideways"),
        ({"$offset": "-1"}, "query.compiler.malformed", "-1"),
        ({"$bogus": "1"}, "query.soql.unknown-parameter", "$bogus"),
    ],
)
def test_bad_soql_is_400_quoting_the_problem(emulator: EmulatorServer, params: dict, code: str, quoted: str) -> None:
    response = resource(emulator, params)
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == code
    assert quoted in body["message"]
    assert isinstance(body["data"], dict)


@pytest.mark.parametrize(
    "params",
    [
        {"$where": "municipio = 'x'; DROP TABLE data"},
        {"$where": "municipio = 'x''; DELETE FROM data; --'"},
        {"$where": "municipio = 'x' -- comment"},
        {"$where": "municipio = 'x' /* comment */"},
        {"$where": "1=1; DELETE FROM data"},
        {"$select": "count(*) FROM data; DELETE FROM data"},
        {"$select": "municipio); DELETE FROM data; SELECT (1"},
        {"$order": "(SELECT 1)"},
        {"$group": "municipio; DELETE FROM data"},
        {"$where": "read_csv('/etc/passwd') IS NULL"},
        {"$select": "`municipio; DELETE FROM data`"},
        {"$where": "\"municipio\" = 'x'"},
        {"municipio; DELETE FROM data": "x"},
        {"$query": "SELECT * WHERE 1=1; DELETE FROM data"},
    ],
)
def test_injection_attempts_are_refused_and_change_nothing(emulator: EmulatorServer, params: dict) -> None:
    before = _count(emulator)
    response = resource(emulator, params)
    assert response.status_code in (200, 400)
    if response.status_code == 200:  # only possible when the text was harmlessly a string literal
        assert response.json() == [] or "DELETE" not in response.text
    assert _count(emulator) == before


def test_quoted_literals_are_data_not_sql(emulator: EmulatorServer) -> None:
    response = resource(emulator, {"$where": "municipio = 'O''Brien'' OR ''1''=''1'"})
    assert response.status_code == 200
    assert response.json() == []


def test_sodapy_raises_with_the_server_message(emulator: EmulatorServer) -> None:
    client: Socrata = client_for(emulator)
    with pytest.raises(requests.HTTPError, match="no-such-column"):
        client.get(DATASET, where="missing_column = 'x'")
