"""SODA3 first, SODA2 where the portal has no SODA3: the chain is exact by row id on either, and says which.

Each portal is our emulator in one of the modes the tests choose: both APIs (as datos.gov.co), SODA3 only
(SODA2 answers 404), SODA2 only (SODA3 answers 404), SODA3 with a required app token.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.socrata import SocrataError
from delitos_platform.socrata.apis import soda3_body
from delitos_platform.socrata.versions import month_versions
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake
from delitos_platform_tests.platform.helpers import duckdb_resources, layer_identities, query, run_months

FIRST, LAST = "2019-02-01", "2019-03-01"
MONTHS = [FIRST, LAST]
TOKEN = "emulated-app-token"


@pytest.fixture
def portal(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """An emulator in the mode the test names (``indirect`` parameters: EmulatorServer's keyword arguments)."""
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, **getattr(request, "param", {})) as server:
        yield server


def _api_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id) if "queries go through" in entry.user_message]


@pytest.mark.parametrize(
    ("portal", "socrata", "api"),
    [
        pytest.param({"apis": ["soda3"]}, {}, "SODA3", id="soda3-only"),
        pytest.param({"apis": ["soda2"]}, {}, "SODA2", id="soda2-only"),
        pytest.param({"app_token": TOKEN, "require_token": True}, {"app_token": TOKEN}, "SODA3", id="soda3-token"),
    ],
    indirect=["portal"],
)
def test_the_whole_chain_is_exact_by_row_id_whichever_api_the_portal_speaks(
    portal, socrata, api, tmp_path, monkeypatch
):
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))  # where dbt finds it
    resources = {**duckdb_resources(portal, tmp_path), "socrata": socrata_for(portal, **socrata)}
    instance = dg.DagsterInstance.ephemeral()
    result = run_months(resources, FIRST, LAST, instance=instance)

    assert result.success
    portal.require_token = False  # the test's own reading of the source, below, carries no token
    identities = layer_identities(portal, resources["lake"], tmp_path / "warehouse.duckdb", MONTHS)
    assert identities["source"].count > 0
    assert identities["lake"] == identities["bronze"] == identities["silver"] == identities["source"]
    gold = query(tmp_path / "warehouse.duckdb", "SELECT registros FROM gold.resumen_general")
    assert gold == [(identities["source"].count,)]
    [materialization, *_] = result.asset_materializations_for_node("lake__delitos")
    assert materialization.metadata["source_api"].value == api
    assert len(_api_lines(instance, result.run_id)) == 1  # said once per run, not once per request
    assert _api_lines(instance, result.run_id)[0].endswith(f"queries go through {api}")


@pytest.mark.parametrize("portal", [{"apis": ["soda2"]}], indirect=True)
def test_auto_falls_back_to_soda2_only_where_the_portal_has_no_soda3(portal, local_lake):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_lake(socrata_for(portal), local_lake, LAST, instance=instance)

    assert result.success
    assert _api_lines(instance, result.run_id) == [
        f"Socrata at {portal.url} has no SODA3 endpoint for dataset 4v6r-wu98 (HTTP 404): queries go through SODA2"
    ]


@pytest.mark.parametrize("portal", [{"apis": ["soda2"]}], indirect=True)
def test_soda3_asked_for_by_name_never_falls_back(portal):
    with pytest.raises(SocrataError) as raised:
        socrata_for(portal, api="soda3").count("cantidad > 0", "counting rows")
    assert str(raised.value) == (
        f"Socrata at {portal.url} answered HTTP 404 to the SODA3 query of dataset 4v6r-wu98 (Not found): the portal "
        "has no SODA3 for it, or no such dataset; SOCRATA_API=auto falls back to SODA2"
    )


@pytest.mark.parametrize("portal", [{"app_token": TOKEN, "require_token": True}], indirect=True)
def test_a_required_token_that_is_missing_is_one_sentence_and_nothing_is_written(portal, local_lake):
    result = materialize_lake(socrata_for(portal), local_lake, LAST)

    assert failure_message(result) == (
        f"Socrata at {portal.url} refused the SODA3 request for dataset 4v6r-wu98 (HTTP 401) while counting the rows "
        "of 2019-03 (You must be logged in or provide an app token): the portal wants an app token; set "
        "SOCRATA_APP_TOKEN (docs/operations.md says how)"
    )
    assert not any(local_lake.path("").rglob("*.parquet"))


@pytest.mark.parametrize("portal", [{"app_token": TOKEN}], indirect=True)
def test_an_invalid_token_is_one_sentence_saying_to_set_a_valid_one(portal):
    with pytest.raises(SocrataError) as raised:
        month_versions(socrata_for(portal, app_token="not-the-token"), purpose="counting rows")
    assert str(raised.value) == (
        f"Socrata at {portal.url} refused the SODA3 request for dataset 4v6r-wu98 (HTTP 403) while counting rows "
        "(Invalid app_token specified): SOCRATA_APP_TOKEN is not a valid app token here (or the portal throttles "
        "it); set a valid one"
    )


def test_a_query_the_portal_rejects_names_the_api(emulator):
    with pytest.raises(SocrataError) as raised:
        socrata_for(emulator).query("reading rows", select="no_such_column", limit=1)
    message = str(raised.value)
    assert message.startswith("Socrata rejected the SODA3 query: ") and "no_such_column" in message
    assert message.endswith("(while reading rows)")


def test_soda3_pages_by_keyset_never_by_page_number():
    """The statement carries the keyset; the page asked is always the first."""
    body = soda3_body({"select": ":id, cantidad", "where": "(x) AND :id > 'row-a'", "order": ":id", "limit": 50_000})
    assert body == {
        "query": "SELECT :id, cantidad WHERE (x) AND :id > 'row-a' ORDER BY :id LIMIT 50000",
        "includeSynthetic": False,
        "page": {"pageNumber": 1, "pageSize": 50_000},
    }
