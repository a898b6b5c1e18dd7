"""A source that empties or shrinks for one update changes nothing published, on DuckDB and on Snowflake (fakesnow).

Each script runs the platform against its own emulator, changed through the emulator's admin endpoint over HTTP
as an operator would, and reads every layer by row id: the lake's objects, bronze, silver; gold by content.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from delitos_platform.defs.automation.sync import socrata_changes
from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.defs.volume_guard import ACCEPT_DROP_TAG, VOLUME_CHECK
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import HELD, quarantine_key
from delitos_platform.partitions import Window, range_tags, tagged_range
from delitos_platform.transform import DBT_PROJECT_DIR
from delitos_platform_tests.automation.test_alerts import alerts, receiver, start_sensors, tick_all  # noqa: F401
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import (
    ASSETS,
    GOLD_TABLES,
    check_evaluations,
    duckdb_resources,
    lake_ids,
    query,
    source_ids,
)
from delitos_platform_tests.platform.test_platform_snowflake import Snowflake, snowflake_resources

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

MONTHS = ["2012-01-01", "2012-02-01", "2012-03-01", "2012-04-01"]  # 89, 46, 33 and 19 rows
FIRST, LAST = MONTHS[0], MONTHS[-1]
ENGINES = ["duckdb", "snowflake"]
# The gold tables built from silver.stg_delitos (the others are built from the row history).
FROM_SILVER = ["delitos_por_mes", "delitos_por_departamento", "top_municipios", "resumen_general"]
Query = Callable[[str], list[tuple]]


@dataclass
class Platform:
    """One engine's platform over its own emulator: its resources, a query on its warehouse, its dbt project."""

    server: EmulatorServer
    resources: dict[str, Any]
    ask: Query

    def run(self, instance: dg.DagsterInstance | None = None, **tags: str) -> dg.ExecuteInProcessResult:
        """The whole chain over the four months, as one run."""
        return dg.materialize(
            ASSETS,
            resources=self.resources,
            instance=instance,
            tags={**range_tags(FIRST, LAST), **tags},
            raise_on_error=False,
        )

    def admin(self, action: str, **payload: Any) -> dict[str, Any]:
        """The emulator's admin endpoint, over HTTP."""
        response = requests.post(f"{self.server.url}/admin/{action}", json=payload, timeout=30)
        response.raise_for_status()
        return response.json()

    def ids(self) -> dict[str, set[str]]:
        """The row ids of every layer (the lake's rows and quarantine together) and of the source."""
        where = Window(Window.for_month(FIRST).start, Window.for_month(LAST).end).soql()
        lake = self.resources["lake"]
        return {
            "source": source_ids(self.server, where),
            "lake": lake_ids(lake, MONTHS) | lake_ids(lake, MONTHS, key=quarantine_key),
            "bronze": {row_id for (row_id,) in self.ask("SELECT row_id FROM bronze.delitos")},
            "silver": {row_id for (row_id,) in self.ask("SELECT row_id FROM silver.stg_delitos")},
        }

    def gold(self) -> dict[str, list[tuple]]:
        """Every gold table's rows, sorted."""
        return {name: sorted(self.ask(f"SELECT * FROM gold.{name}"), key=repr) for name in GOLD_TABLES}

    def assert_exact(self) -> None:
        """Every layer holds exactly the source's row ids."""
        ids = self.ids()
        assert ids["source"], "the source serves rows"
        for layer in ("lake", "bronze", "silver"):
            assert ids[layer] == ids["source"], layer


@pytest.fixture
def small_source(snapshot_rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The snapshot's rows of the four months."""
    return [row for row in snapshot_rows if f"{row['fecha_hecho'][:7]}-01" in MONTHS]


@pytest.fixture(params=ENGINES)
def platform(
    request: pytest.FixtureRequest,
    small_source: list[dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Platform]:
    """The platform on DuckDB, then on Snowflake (fakesnow), each over an emulator of its own with admin on."""
    with EmulatorServer(snapshot=small_source, port=0, admin=True) as server:
        if request.param == "duckdb":
            database = tmp_path / "warehouse.duckdb"
            monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(database))  # where dbt's duckdb target finds it
            yield Platform(server, duckdb_resources(server, tmp_path), lambda sql: query(database, sql))
            return
        snowflake = Snowflake(request.getfixturevalue("fakesnow_server"), f"G_{uuid.uuid4().hex[:12]}".upper())
        snowflake.query("CREATE SCHEMA IF NOT EXISTS RAW")
        bucket = tmp_path / "bucket"
        bucket.mkdir()
        snowflake.query(f"CREATE STAGE RAW.LAKE_STAGE URL = '{bucket.as_uri()}/'")
        for name, value in snowflake.dbt_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("DELITOS_DBT_TARGET", raising=False)
        try:
            yield Platform(server, snowflake_resources(server, bucket, snowflake), snowflake.query)
        finally:
            snowflake.connection.close()


def test_an_emptied_source_is_held_alerted_once_and_healed_by_the_sensor_once_it_returns(
    platform: Platform,
    small_source: list[dict[str, str]],
    alerts,  # noqa: F811 (the fixtures imported above)
    receiver,  # noqa: F811
) -> None:
    with dg.instance_for_test() as instance:
        assert platform.run(instance).success
        ids, gold = platform.ids(), platform.gold()
        sensor = {key: platform.resources[key] for key in ("socrata", "lake")}
        cursor = socrata_changes(dg.build_sensor_context(instance=instance, resources=sensor)).cursor
        alerting = start_sensors(instance, alerts)
        for month in MONTHS:  # a re-publication: the source serves nothing for a while
            platform.admin("delete", month=month[:7])

        emptied = socrata_changes(dg.build_sensor_context(cursor=cursor, instance=instance, resources=sensor))
        [request] = emptied.run_requests
        held = platform.run(instance, **request.tags, **{"dagster/run_key": request.run_key})
        tick_all(instance, alerts, alerting)

        assert platform.ids() == {**ids, "source": set()}  # every layer keeps its row ids
        assert platform.gold() == gold
        assert not held.success
        [volume] = check_evaluations(held, VOLUME_CHECK)
        assert not volume.passed
        assert "3 months fell sharply: 2012-01: 89 → 0 rows (−100%)" in volume.description
        assert "delitos backfill --accept-drop" in volume.description
        assert any((Path(platform.resources["lake"].root) / HELD / held.run_id).rglob("*.parquet"))
        [alert] = receiver.posted_to("/hooks/")
        assert alert.json()["check"] == VOLUME_CHECK and "2012-01: 89 → 0 rows" in alert.json()["message"]

        # Held at this version of the source: not requested again, not alerted again.
        waiting = socrata_changes(dg.build_sensor_context(cursor=emptied.cursor, instance=instance, resources=sensor))
        assert waiting.run_requests == []
        tick_all(instance, alerts, alerting)
        assert len(receiver.posted_to("/hooks/")) == 1

        platform.admin("add", rows=small_source)  # the source comes back with the same rows
        restored = socrata_changes(dg.build_sensor_context(cursor=waiting.cursor, instance=instance, resources=sensor))
        [again] = restored.run_requests
        assert tagged_range(again.tags) == (FIRST, LAST)
        assert platform.run(instance, **again.tags, **{"dagster/run_key": again.run_key}).success

        platform.assert_exact()
        assert platform.gold() == gold


def test_a_month_losing_most_rows_is_held_a_few_lost_rows_and_an_accepted_drop_are_published_a_failed_gold_test_kept(
    platform: Platform, tmp_path: Path
) -> None:
    """One script: a 60% loss of one month (held), then accepted (published, recorded), then 3 rows lost (an
    ordinary revision: published), then a revision built by a dbt project whose gold test fails (gold kept)."""
    assert platform.run().success
    ids = platform.ids()
    january = sorted(_month_ids(platform, MONTHS[0]))
    platform.admin("delete", ids=january[: len(january) * 6 // 10])  # 60% of one month

    held = platform.run()

    published = {layer: row_ids for layer, row_ids in ids.items() if layer != "source"}
    assert {layer: row_ids for layer, row_ids in platform.ids().items() if layer != "source"} == published
    assert not held.success
    [volume] = check_evaluations(held, VOLUME_CHECK)
    assert "1 month fell sharply: 2012-01: 89 → 36 rows (−60%)" in volume.description
    assert "nothing was published" in failure_message(held)

    accepted = platform.run(**{ACCEPT_DROP_TAG: "true"})

    assert accepted.success
    platform.assert_exact()
    for layer in (LAKE_DELITOS, BRONZE_DELITOS):
        [evaluation] = [e for e in check_evaluations(accepted, VOLUME_CHECK) if e.asset_key == layer]
        assert evaluation.passed and evaluation.metadata["drop_accepted"].value is True
        recorded = [e for e in accepted.get_asset_materialization_events() if e.asset_key == layer]
        assert recorded and all(
            "2012-01: 89 → 36 rows" in event.materialization.metadata["volume_drop_accepted"].value
            for event in recorded
        )

    february = sorted(_month_ids(platform, MONTHS[1]))
    platform.admin("delete", ids=february[:3])  # an ordinary revision

    assert platform.run().success
    platform.assert_exact()

    before = platform.gold()
    platform.admin("revise", month=MONTHS[1][:7], rows=5)  # 5 rows' cantidad + 1: gold would change
    broken = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, broken, ignore=shutil.ignore_patterns("target", "logs"))
    model = broken / "models" / "gold" / "resumen_general.sql"
    model.write_text(
        model.read_text().replace("cast(sum(cantidad) as bigint) as casos", "cast(null as bigint) as casos")
    )
    dbt = platform.resources["dbt"]
    platform.resources["dbt"] = type(dbt)(project_dir=str(broken), dbt_executable=dbt.dbt_executable, target=dbt.target)

    failed = platform.run()

    after = platform.gold()
    assert after["resumen_general"] == before["resumen_general"]  # by content: the previous table
    assert after["delitos_por_mes"] != before["delitos_por_mes"]  # its tests passed: published
    assert not failed.success
    message = failure_message(failed)
    assert "resumen_general_column_rules" in message.split(" failed (")[0]  # the test that failed
    assert "gold/resumen_general kept its previous contents" in message


def _month_ids(platform: Platform, month: str) -> set[str]:
    return source_ids(platform.server, Window.for_month(month).soql())


def test_a_failed_silver_test_leaves_silver_and_gold_as_they_were_published(platform: Platform, tmp_path: Path) -> None:
    """Silver is audited before it is published, like gold: a month re-synced by a model that breaks a column rule
    (a null ``conducta``) changes no published row of silver (by id and content), nor any gold table built from it
    (the history's, built from bronze, are published), and the failure says silver was kept."""
    assert platform.run().success
    silver, gold = sorted(platform.ask("SELECT * FROM silver.stg_delitos"), key=repr), platform.gold()
    platform.admin("revise", month=MONTHS[1][:7], rows=5)  # 5 rows' cantidad + 1: silver and gold would change
    broken = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, broken, ignore=shutil.ignore_patterns("target", "logs"))
    model = broken / "models" / "silver" / "stg_delitos.sql"
    nulled = "cast(null as varchar) as conducta"
    model.write_text(model.read_text().replace("trim(descripcion_conducta) as conducta", nulled))
    dbt = platform.resources["dbt"]
    platform.resources["dbt"] = type(dbt)(project_dir=str(broken), dbt_executable=dbt.dbt_executable, target=dbt.target)

    failed = platform.run()

    assert not failed.success
    assert sorted(platform.ask("SELECT * FROM silver.stg_delitos"), key=repr) == silver
    after = platform.gold()
    assert {name: after[name] for name in FROM_SILVER} == {name: gold[name] for name in FROM_SILVER}
    assert after["revisiones_por_mes"] != gold["revisiones_por_mes"]  # the history saw the revision: published
    message = failure_message(failed)
    assert "stg_delitos_column_rules" in message.split(" failed (")[0]  # the test that failed
    assert "silver/stg_delitos kept its previous contents" in message
