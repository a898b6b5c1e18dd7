"""The production chain on Snowflake, run the way Dagster runs it, against fakesnow's server.

Every part is real except the two clouds: the source is our emulator over the shipped snapshot, the lake
is a LocalLake folder under a ``file://`` stage (the production stage is an external S3 stage; fakesnow
cannot read S3 offline, but the loader runs the same ``COPY INTO`` either way), bronze is
``SnowflakeWarehouse`` through the real connector, and silver and gold are ``dbt build`` with the
``snowflake`` target of ``dbt_project/profiles.yml``, reaching fakesnow through the ``SNOWFLAKE_*`` variables.
fakesnow runs every statement through a SQL translator, so the run covers only six thin months of 2010.

An unset ``SNOWFLAKE_PASSWORD`` in a Dagster run is covered by ``warehouse/test_snowflake.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from dagster_snowflake import SnowflakeResource

from delitos_platform.defs.bronze.assets import RECONCILED_CHECK
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import LocalLake
from delitos_platform.transform import DBT_EXECUTABLE, DelitosDbtCliResource, delitos_dbt_project
from delitos_platform.warehouse.snowflake import SnowflakeWarehouse
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import rows_per_month
from delitos_platform_tests.platform.helpers import GOLD_TABLES, check_evaluations, run_months
from delitos_platform_tests.test_charts import assert_readable_png, embedded_png

# fakesnow warns on every Arrow fetch the connector and dbt-snowflake make; it says nothing about the chain.
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

FIRST, LAST = "2010-01-01", "2010-06-01"
MONTHS = [f"2010-0{month}-01" for month in range(1, 7)]
STAGE = "RAW.LAKE_STAGE"
PREFIX = "lake"  # the stage's URL is the "bucket"; the lake's keys start under this prefix
BRONZE_COLUMNS = "row_id, fecha_hecho, cod_depto, departamento, cod_muni, municipio, descripcion_conducta, cantidad"


class Snowflake:
    """The test's own database on the session's fakesnow server, and a connection to look into it."""

    def __init__(self, server: dict[str, Any], database: str) -> None:
        self.server = server
        self.database = database
        self.connection = snowflake.connector.connect(**server, database=database, schema="PUBLIC")

    def query(self, sql: str) -> list[tuple]:
        """Rows of a query in the test's database."""
        cursor = self.connection.cursor()
        cursor.execute(sql)
        return cursor.fetchall()

    def resource(self) -> SnowflakeResource:
        """The dagster-snowflake resource the warehouse connects with."""
        extra = {key: self.server[key] for key in ("host", "port", "protocol", "session_parameters", "network_timeout")}
        return SnowflakeResource(
            account="fakesnow",
            user="fake",
            password="snow",
            database=self.database,
            additional_snowflake_connection_args=extra,
        )

    def dbt_env(self) -> dict[str, str]:
        """The variables the profile's ``snowflake`` target reads, pointed at fakesnow and this database."""
        return {
            "SNOWFLAKE_ACCOUNT": "fakesnow",
            "SNOWFLAKE_USER": "fake",
            "SNOWFLAKE_PASSWORD": "snow",
            "SNOWFLAKE_ROLE": "TRANSFORMER",
            "SNOWFLAKE_DATABASE": self.database,
            "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
            "SNOWFLAKE_SCHEMA": "PUBLIC",
            "SNOWFLAKE_HOST": str(self.server["host"]),
            "SNOWFLAKE_PORT": str(self.server["port"]),
            "SNOWFLAKE_PROTOCOL": str(self.server["protocol"]),
        }


@pytest.fixture
def warehouse_db(fakesnow_server: dict[str, Any], tmp_path: Path) -> Iterator[Snowflake]:
    """A fresh database holding the ``file://`` stage over ``tmp_path/bucket``."""
    database = Snowflake(fakesnow_server, f"P_{uuid.uuid4().hex[:12]}".upper())
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    database.query("CREATE SCHEMA IF NOT EXISTS RAW")
    # Trailing slash as Snowflake shows stage URLs: the stage path is appended to it.
    database.query(f"CREATE STAGE {STAGE} URL = '{bucket.as_uri()}/'")
    yield database
    database.connection.close()


def snowflake_resources(server: EmulatorServer, bucket: Path, database: Snowflake) -> dict[str, Any]:
    """The production platform's resources with the clouds swapped for local stand-ins."""
    return {
        "socrata": socrata_for(server),
        "lake": LocalLake(root=str(bucket / PREFIX)),
        "warehouse": SnowflakeWarehouse(snowflake=database.resource(), stage=STAGE, stage_prefix=PREFIX),
        "dbt": DelitosDbtCliResource(
            project_dir=delitos_dbt_project, dbt_executable=DBT_EXECUTABLE, target="snowflake"
        ),
    }


def contents(database: Snowflake) -> dict[str, list[tuple]]:
    """Every bronze (without load metadata), silver and gold row, sorted: what a re-run must not change."""
    tables = {
        "bronze": f"SELECT {BRONZE_COLUMNS}, mes FROM BRONZE.DELITOS ORDER BY row_id",
        "silver": "SELECT * FROM SILVER.STG_DELITOS ORDER BY row_id",
    }
    tables |= {name: f"SELECT * FROM GOLD.{name.upper()}" for name in GOLD_TABLES}
    return {name: sorted(database.query(sql), key=repr) for name, sql in tables.items()}


def test_the_snowflake_chain_reconciles_and_a_second_run_changes_nothing(
    emulator: EmulatorServer,
    tmp_path: Path,
    snapshot_rows: list[dict[str, str]],
    warehouse_db: Snowflake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Source → lake → COPY INTO bronze → dbt on Snowflake: every layer holds the source's rows, twice."""
    for name, value in warehouse_db.dbt_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DELITOS_DBT_TARGET", raising=False)
    resources = snowflake_resources(emulator, tmp_path / "bucket", warehouse_db)
    source = sum(rows_per_month(snapshot_rows)[month] for month in MONTHS)

    first = run_months(resources, FIRST, LAST)

    assert first.success
    [evaluation] = check_evaluations(first, RECONCILED_CHECK)
    assert evaluation.passed, evaluation.description
    counts = ("source_rows", "lake_rows", "bronze_rows")
    assert {key: evaluation.metadata[key].value for key in counts} == dict.fromkeys(counts, source)
    assert evaluation.metadata["quarantined_rows"].value == 0
    assert warehouse_db.query("SELECT count(*) FROM BRONZE.DELITOS") == [(source,)]
    assert warehouse_db.query("SELECT count(*) FROM SILVER.STG_DELITOS") == [(source,)]
    assert warehouse_db.query("SELECT sum(registros) FROM GOLD.DELITOS_POR_MES") == [(source,)]
    assert warehouse_db.query("SELECT registros FROM GOLD.RESUMEN_GENERAL") == [(source,)]
    monthly = warehouse_db.query("SELECT mes, count(*) FROM BRONZE.DELITOS GROUP BY mes ORDER BY mes")
    assert [(mes.isoformat(), count) for mes, count in monthly] == [
        (month, rows_per_month(snapshot_rows)[month]) for month in MONTHS
    ]
    # The charts' SQL speaks Snowflake too: each chart is a real PNG.
    gold = {
        event.asset_key.path[-1]: event.materialization.metadata for event in first.get_asset_materialization_events()
    }
    charts = {
        "tendencia_mensual": "monthly_trend",
        "delitos_por_mes": "cases_by_article",
        "delitos_por_departamento": "departments",
    }
    for table, chart in charts.items():
        assert_readable_png(embedded_png(gold[table][chart].value)[1])
    # The rows came through the loader's COPY INTO in this run, not from anywhere else.
    assert warehouse_db.query("SELECT DISTINCT _run_id FROM BRONZE.DELITOS") == [(first.run_id,)]
    before = contents(warehouse_db)
    assert all(before.values()), "every table holds rows"

    second = run_months(resources, FIRST, LAST)

    assert second.success
    [again] = check_evaluations(second, RECONCILED_CHECK)
    assert again.passed, again.description
    # FORCE=TRUE copied the unchanged objects again and the swap replaced the months: same rows, new run.
    assert contents(warehouse_db) == before
    assert warehouse_db.query("SELECT DISTINCT _run_id FROM BRONZE.DELITOS") == [(second.run_id,)]
