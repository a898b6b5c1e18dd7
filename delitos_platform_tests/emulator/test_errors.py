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
    # As a production portal answers (shared/data/socrata/recorded/test_get_missing.yaml and its twin for views).
    for endpoint, code in (("resource", "dataset.missing"), ("api/views", "not_found")):
        response = requests.get(f"{emulator.url}/{endpoint}/abcd-1234.json", timeout=10)
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.json() == {"code": code, "error": True, "message": "Not found", "data": {"id": "abcd-1234"}}
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


MALFORMED, NO_COLUMN = "query.compiler.malformed", "query.soql.no-such-column"


# Each attempt's one real answer: 400 with Socrata's error code, or 200 with the exact body when the
# text was harmlessly data (a string literal), so a case that starts to answer differently fails.
@pytest.mark.parametrize(
    ("params", "status", "expected"),
    [
        ({"$where": "municipio = 'x'; DROP TABLE data"}, 400, MALFORMED),
        ({"$where": "municipio = 'x''; DELETE FROM data; --'"}, 200, []),  # one literal: x'; DELETE …
        ({"$where": "municipio = 'x' -- comment"}, 400, "query.soql.type-mismatch"),  # `-` is minus, not a comment
        ({"$where": "municipio = 'x' /* comment */"}, 400, MALFORMED),
        ({"$where": "1=1; DELETE FROM data"}, 400, MALFORMED),
        ({"$select": "count(*) FROM data; DELETE FROM data"}, 400, MALFORMED),
        ({"$select": "municipio); DELETE FROM data; SELECT (1"}, 400, MALFORMED),
        ({"$order": "(SELECT 1)"}, 400, MALFORMED),
        ({"$group": "municipio; DELETE FROM data"}, 400, MALFORMED),
        ({"$where": "read_csv('/etc/passwd') IS NULL"}, 400, "query.soql.no-such-function"),
        ({"$select": "`municipio; DELETE FROM data`"}, 400, NO_COLUMN),
        ({"$where": "\"municipio\" = 'x'"}, 200, []),  # double quotes make a string literal in SoQL
        ({"municipio; DELETE FROM data": "x"}, 400, NO_COLUMN),
        ({"$query": "SELECT * WHERE 1=1; DELETE FROM data"}, 400, MALFORMED),
    ],
)
def test_injection_attempts_are_refused_and_change_nothing(
    emulator: EmulatorServer, params: dict, status: int, expected: str | list
) -> None:
    before = _count(emulator)
    response = resource(emulator, params)
    assert response.status_code == status
    if status == 200:
        assert response.json() == expected
    else:
        assert response.json()["errorCode"] == expected
    assert _count(emulator) == before


def test_quoted_literals_are_data_not_sql(emulator: EmulatorServer) -> None:
    response = resource(emulator, {"$where": "municipio = 'O''Brien'' OR ''1''=''1'"})
    assert response.status_code == 200
    assert response.json() == []


def test_sodapy_raises_with_the_server_message(emulator: EmulatorServer) -> None:
    client: Socrata = client_for(emulator)
    with pytest.raises(requests.HTTPError, match="no-such-column"):
        client.get(DATASET, where="missing_column = 'x'")
