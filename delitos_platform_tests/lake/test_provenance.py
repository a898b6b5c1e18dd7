"""A lake built from our emulator is never compared with (or fed from) another source by accident.

The "other source" is an address on TEST-NET-1 (192.0.2.0/24, never routed) with no retries: a request to
it would fail the tick or the run with a connection error instead of the one sentence asserted here.
"""

from __future__ import annotations

import dagster as dg
import pytest

from delitos_platform.contract import DATASET_ID
from delitos_platform.defs.automation.sync import socrata_changes
from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.lake.checks import dataset_ledger_balances
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.provenance import (
    EMULATOR,
    SOURCE_KEY,
    record_source,
    recorded_dataset,
    recorded_source,
    source_name,
)
from delitos_platform.lake.storage import LocalLake, data_key
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.base import WarehouseResource
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake

ELSEWHERE = SocrataResource(url="http://192.0.2.1:9", max_retries=0, timeout_seconds=2.0)
MONTH = "2019-03-01"


def tick(socrata: SocrataResource, lake: LocalLake) -> dg.SensorResult:
    """One evaluation of the source sensor, with Dagster's own test context."""
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"socrata": socrata, "lake": lake})
        return socrata_changes(context)


@pytest.fixture
def demo_lake(tmp_path) -> LocalLake:
    """A lake folder that says it was built from the emulator, as ``delitos demo`` leaves it."""
    lake = LocalLake(root=str(tmp_path / "lake"))
    record_source(lake, "http://127.0.0.1:41234", DATASET_ID)
    return lake


def test_loopback_urls_are_the_emulator_and_others_are_named_without_credentials():
    assert {source_name(url) for url in ("http://127.0.0.1:1", "http://localhost:8000/", "http://[::1]:9")} == {
        EMULATOR
    }
    assert source_name("https://user:secret@www.datos.gov.co/") == "https://www.datos.gov.co"


def test_the_sensor_skips_another_source_on_the_demos_lake_without_a_request(demo_lake):
    result = tick(ELSEWHERE, demo_lake)

    reason = result.skip_reason.skip_message
    assert not result.run_requests
    assert "was built from our SODA emulator (delitos demo), not from http://192.0.2.1:9" in reason
    assert "`delitos dev`" in reason and "\n" not in reason


def test_a_run_against_another_source_fails_in_one_sentence_and_writes_nothing(demo_lake):
    before = sorted(path.name for path in demo_lake.path("").rglob("*"))

    message = failure_message(materialize_lake(ELSEWHERE, demo_lake, MONTH))

    assert message.startswith("the lake file://") and "open it with `delitos dev`" in message, message
    assert sorted(path.name for path in demo_lake.path("").rglob("*")) == before


def test_the_emulator_that_built_the_lake_is_used_as_before(demo_lake, emulator: EmulatorServer):
    served = emulator.requests_served

    assert materialize_lake(socrata_for(emulator), demo_lake, MONTH).success
    assert tick(socrata_for(emulator), demo_lake).skip_reason is None
    assert emulator.requests_served > served
    assert recorded_source(demo_lake) == EMULATOR


def test_the_ledger_check_against_another_source_fails_in_one_sentence(demo_lake):
    resources = {"socrata": ELSEWHERE, "lake": demo_lake}
    result = dg.materialize(
        [socrata_delitos, lake_delitos, dataset_ledger_balances],
        resources={**resources, "warehouse": WarehouseResource()},
        selection=dg.AssetSelection.checks(dataset_ledger_balances),
        raise_on_error=False,
    )

    assert "open it with `delitos dev`" in failure_message(result)


def test_a_lake_built_from_the_real_api_refuses_our_emulator_and_names_its_source(tmp_path, emulator):
    lake = LocalLake(root=str(tmp_path / "lake"))
    record_source(lake, "https://www.datos.gov.co/", DATASET_ID)

    message = failure_message(materialize_lake(socrata_for(emulator), lake, MONTH))

    assert "was built from https://www.datos.gov.co, not from our emulator" in message, message
    assert "open it with `delitos dev --source https://www.datos.gov.co`" in message, message


def _objects(lake: LocalLake) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in sorted(lake.path("").rglob("*")) if path.is_file()}


def test_the_first_publish_records_the_dataset_and_another_dataset_is_refused_in_one_sentence(tmp_path, emulator):
    lake = LocalLake(root=str(tmp_path / "lake"))  # no source.json: a lake a Dagster run built on its own
    assert materialize_lake(socrata_for(emulator), lake, MONTH).success
    assert recorded_dataset(lake) == DATASET_ID
    before = _objects(lake)

    other = socrata_for(emulator, dataset_id="zzzz-9999")
    served = emulator.requests_served
    message = failure_message(materialize_lake(other, lake, MONTH))
    skipped = tick(other, lake).skip_reason.skip_message

    assert (
        message
        == skipped
        == (
            f"the lake {lake.uri('')} holds Socrata dataset {DATASET_ID}, not zzzz-9999 (SOCRATA_DATASET): give "
            "another dataset a lake of its own (DELITOS_DATA_DIR, or DELITOS_LAKE_PREFIX on S3)"
        )
    )
    assert _objects(lake) == before and emulator.requests_served == served  # refused before any request


def test_a_source_json_written_before_lakes_recorded_their_dataset_keeps_working_and_learns_it(demo_lake, emulator):
    demo_lake.write(SOURCE_KEY, b'{"source": "emulator"}')

    assert materialize_lake(socrata_for(emulator), demo_lake, MONTH).success
    assert demo_lake.exists(data_key(MONTH))
    assert (recorded_source(demo_lake), recorded_dataset(demo_lake)) == (EMULATOR, DATASET_ID)
