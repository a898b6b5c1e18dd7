"""The two instance files: ``dagster.yaml`` (local, demo: SQLite) and ``deploy/dagster.yaml`` (production: Postgres).

Production must behave as what the tests and the demo run: the same queue, pools, retries and monitoring. The
process tests run webserver + daemon on ``deploy/dagster.yaml`` itself; this keeps its other sections from drifting.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL, PRODUCTION = REPO_ROOT / "dagster.yaml", REPO_ROOT / "deploy" / "dagster.yaml"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_production_instance_is_the_local_one_plus_postgres_storage():
    local, production = load(LOCAL), load(PRODUCTION)

    assert set(production) - set(local) == {"storage"}
    differing = [section for section in local if production.get(section) != local[section]]
    assert not differing, f"deploy/dagster.yaml differs from dagster.yaml in {differing}: copy them over"


def test_production_storage_is_postgres_with_every_setting_from_the_environment():
    settings = load(PRODUCTION)["storage"]["postgres"]["postgres_db"]
    connection = {key: value for key, value in settings.items() if key != "scheme"}

    assert set(connection) == {"hostname", "port", "username", "password", "db_name"}
    assert all(set(value) == {"env"} and value["env"].startswith("DAGSTER_PG_") for value in connection.values())
    assert settings["scheme"] == "postgresql+psycopg2"  # the driver dagster-postgres installs


def test_a_crashed_run_gives_its_pool_slots_back_and_a_lost_one_ends():
    monitoring = load(LOCAL)["run_monitoring"]

    assert monitoring["enabled"] and load(LOCAL)["run_retries"]["enabled"]
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 60
    assert monitoring["max_runtime_seconds"] > 0
