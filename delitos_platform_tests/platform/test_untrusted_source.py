"""What the source sends is untrusted: a fault of the portal is held in one sentence and changes nothing published."""

from __future__ import annotations

import dagster as dg
import pytest

from delitos_platform.defs.lake.assets import IDS_CHECK
from delitos_platform.lake.storage import data_key, quarantine_key
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import (
    check_evaluations,
    duckdb_resources,
    layer_identities,
    query,
    run_months,
    warehouse_contents,
)

MONTH = "2019-03-01"
HISTORY_KEYS = "SELECT row_id, version, count(*) FROM silver.delitos_versiones GROUP BY ALL HAVING count(*) > 1"


@pytest.fixture(autouse=True)
def warehouse_env(tmp_path, monkeypatch):
    """dbt's profile opens the same DuckDB file as the bronze asset."""
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))


def test_duplicate_ids_are_held_as_a_source_fault_and_the_history_recovers_once_the_source_is_fixed(
    fresh_emulator, tmp_path
):
    resources = duckdb_resources(fresh_emulator, tmp_path)
    database, lake = tmp_path / "warehouse.duckdb", resources["lake"]
    assert run_months(resources, MONTH, MONTH).success
    published = warehouse_contents(database)
    history = query(database, "SELECT * FROM silver.delitos_versiones ORDER BY ALL")
    objects = [lake.read(key(MONTH)) for key in (data_key, quarantine_key)]

    doubled = fresh_emulator.dataset.duplicate_ids("2019-03", rows=2)  # three rows served under one :id
    result = run_months(resources, MONTH, MONTH)

    assert not result.success
    assert failure_message(result) == (
        f"the source served 1 :id more than once in 2019-03 ({doubled} on 3 rows): a fault of the source; nothing "
        "was published, and the month is held until it serves each :id once"
    )
    [evaluation] = check_evaluations(result, IDS_CHECK)
    assert not evaluation.passed  # a failed blocking check: alerted, and nothing downstream built
    assert {event.asset_key for event in result.get_asset_materialization_events()} == set()
    assert warehouse_contents(database) == published
    assert query(database, "SELECT * FROM silver.delitos_versiones ORDER BY ALL") == history
    assert [lake.read(key(MONTH)) for key in (data_key, quarantine_key)] == objects

    fresh_emulator.dataset.replace_ids()  # the portal fixes its ids: every row its own again
    fixed = run_months(resources, MONTH, MONTH)

    assert fixed.success
    identities = layer_identities(fresh_emulator, lake, database, [MONTH])
    assert len(set(identities.values())) == 1, identities  # source = lake = bronze = silver, by row id
    assert query(database, HISTORY_KEYS) == []
    assert dg.AssetKey(["gold", "revisiones_por_mes"]) in {
        event.asset_key for event in fixed.get_asset_materialization_events()
    }
