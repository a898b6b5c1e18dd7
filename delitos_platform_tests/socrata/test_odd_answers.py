"""Answers that look fine but are not what was asked: each is retried when it may pass, else one sentence.

A portal under maintenance answers 200 with an HTML page; a proxy or a portal bug, 200 with a JSON object where
rows or metadata were asked for; Socrata, 202 while it is still computing a query; some portals throttle with a
403 and ``Retry-After``. Every one is the emulator's, over real HTTP, read through real sodapy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.socrata import SocrataError
from delitos_platform.socrata.versions import month_versions
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake

MONTH = "2019-03-01"
METADATA = ["/api/views/"]


@pytest.fixture(scope="module")
def soda() -> Iterator[EmulatorServer]:
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def portal(soda: EmulatorServer) -> Iterator[EmulatorServer]:
    """The module's emulator, with no fault armed when the test ends."""
    yield soda
    soda.faults.clear()


def _one_sentence(message: str) -> str:
    assert "\n" not in message and "Traceback" not in message and "dagster._core" not in message, message
    return message


def test_a_maintenance_page_on_the_metadata_fails_the_lake_in_one_sentence_writing_nothing(portal, local_lake):
    portal.faults.inject("html", count=1, paths=METADATA)
    result = materialize_lake(socrata_for(portal, max_retries=0), local_lake, MONTH)

    assert _one_sentence(failure_message(result)) == (
        f"Socrata at {portal.url} answered an HTML page titled 'Portal en mantenimiento' instead of JSON (HTTP 200) "
        "while reading the dataset's metadata (dataset 4v6r-wu98): the portal may be down for maintenance; "
        "run again later"
    )
    assert not any(local_lake.path("").rglob("*.parquet"))


def test_a_maintenance_page_instead_of_rows_is_one_sentence(portal):
    portal.faults.inject("html", count=1)
    with pytest.raises(SocrataError) as raised:
        socrata_for(portal).query("reading rows of 2019-03", limit=1)
    assert _one_sentence(str(raised.value)).startswith(
        f"Socrata at {portal.url} answered an HTML page titled 'Portal en mantenimiento' instead of JSON (HTTP 200) "
        "while reading rows of 2019-03"
    )


def test_an_object_for_metadata_is_one_sentence_not_a_schema_drift(portal, local_lake):
    portal.faults.inject("object", count=1, paths=METADATA)
    result = materialize_lake(socrata_for(portal), local_lake, MONTH)

    message = _one_sentence(failure_message(result))
    assert message == (
        f"Socrata at {portal.url} answered a JSON object saying 'Query accepted' instead of the dataset's metadata "
        "(an object with columns and rowsUpdatedAt) (HTTP 200) while reading the dataset's metadata "
        "(dataset 4v6r-wu98): run again later"
    )
    assert "missing column" not in message


@pytest.mark.parametrize(
    "read",
    [
        lambda socrata: socrata.count("cantidad > 0", "counting rows"),
        lambda socrata: month_versions(socrata, purpose="counting rows"),
        lambda socrata: list(socrata.pages([":id", "cantidad"], "cantidad > 0", "counting rows")),
    ],
    ids=["count", "grouped-count", "page"],
)
def test_an_object_instead_of_rows_is_one_sentence(portal, read):
    portal.faults.inject("object", count=1)
    with pytest.raises(SocrataError) as raised:
        read(socrata_for(portal))
    message = _one_sentence(str(raised.value))
    assert message.startswith(f"Socrata at {portal.url} answered ")
    assert "JSON object" in message and "while counting rows (dataset 4v6r-wu98)" in message


def test_a_202_on_the_grouped_count_is_waited_out_and_the_month_is_read(portal, local_lake, snapshot_rows):
    portal.faults.inject("202", count=1)
    result = materialize_lake(socrata_for(portal), local_lake, MONTH)

    assert result.success
    assert portal.faults.fired["202"] == 1
    rows = result.asset_materializations_for_node("lake__delitos")[0].metadata["rows"].value
    assert rows == sum(row["fecha_hecho"].startswith("2019-03") for row in snapshot_rows)


def test_a_throttling_403_with_retry_after_is_retried(portal):
    portal.faults.inject("403", count=1, retry_after=0)
    assert socrata_for(portal).count("cantidad > 0", "counting rows") > 0
    assert portal.faults.fired["403"] == 1


def test_a_plain_403_says_to_set_a_token_in_one_sentence(portal):
    portal.faults.inject("403", count=1)
    with pytest.raises(SocrataError) as raised:
        socrata_for(portal).count("cantidad > 0", "counting rows")
    assert _one_sentence(str(raised.value)) == (
        f"Socrata at {portal.url} refused the SODA3 request for dataset 4v6r-wu98 (HTTP 403) while counting rows "
        "(Forbidden): the portal refuses or throttles anonymous requests; set SOCRATA_APP_TOKEN"
    )
