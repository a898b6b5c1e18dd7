"""The production chain on Snowflake, run the way Dagster runs it, against fakesnow's server.

Every part is real except the two clouds: the source is our emulator over the shipped snapshot, the lake
is a LocalLake folder under a ``file://`` stage (the production stage is an external S3 stage; fakesnow
cannot read S3 offline, but the loader runs the same ``COPY INTO`` either way), bronze is
``SnowflakeWarehouse`` through the real connector, and silver and gold are ``dbt build`` with the
``snowflake`` target of ``dbt_project/profiles.yml``, reaching fakesnow through the ``SNOWFLAKE_*`` variables.
fakesnow runs every statement through a SQL translator, so the run covers only six thin months of 2010.

Every other dataset of the family runs its own job (``<slug>_job``) on the same stand-ins, all three in one
database: each into its own ``BRONZE.<SLUG>`` and ledger, then its dbt silver ``SILVER.STG_<SLUG>`` and the
cross-crime gold, two months of a few dozen synthetic rows each.

An unset ``SNOWFLAKE_PASSWORD`` in a Dagster run is covered by ``warehouse/test_snowflake.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import snowflake.connector
from dagster_snowflake import SnowflakeResource

from delitos_platform.defs.bronze.assets import RECONCILED_CHECK
from delitos_platform.defs.family import FAMILY
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.dataset import LakeDataset
from delitos_platform.lake.storage import LocalLake, data_key
from delitos_platform.transform import DBT_EXECUTABLE, DelitosDbtCliResource, delitos_dbt_project
from delitos_platform.warehouse.snowflake import SnowflakeWarehouse
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import rows_per_month
from delitos_platform_tests.platform.helpers import (
    GOLD_TABLES,
    check_evaluations,
    family_snapshots,
    lake_id_list,
    run_family_job,
    run_months,
)
from delitos_platform_tests.test_charts import assert_readable_png, embedded_png

# fakesnow warns on every Arrow fetch the connector and dbt-snowflake make; it says nothing about the chain.
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

FIRST, LAST = "2010-01-01", "2010-06-01"
MONTHS = [f"2010-0{month}-01" for month in range(1, 7)]
STAGE = "RAW.LAKE_STAGE"
PREFIX = "lake"  # the stage's URL is the "bucket"; the lake's keys start under this prefix
BRONZE_COLUMNS = "row_id, fecha_hecho, cod_depto, departamento, cod_muni, municipio, descripcion_conducta, cantidad"
FAMILY_IDS = [member.dataset.id for member in FAMILY]
FAMILY_MONTHS = ["2024-01-01", "2024-02-01"]
FAMILY_ROWS = 30


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


@contextmanager
def staged_database(server: dict[str, Any], bucket: Path) -> Iterator[Snowflake]:
    """A fresh database on ``server`` holding the ``file://`` stage over ``bucket``."""
    database = Snowflake(server, f"P_{uuid.uuid4().hex[:12]}".upper())
    bucket.mkdir()
    try:
        database.query("CREATE SCHEMA IF NOT EXISTS RAW")
        # Trailing slash as Snowflake shows stage URLs: the stage path is appended to it.
        database.query(f"CREATE STAGE {STAGE} URL = '{bucket.as_uri()}/'")
        yield database
    finally:
        database.connection.close()


@pytest.fixture
def warehouse_db(fakesnow_server: dict[str, Any], tmp_path: Path) -> Iterator[Snowflake]:
    """A fresh database holding the ``file://`` stage over ``tmp_path/bucket``."""
    with staged_database(fakesnow_server, tmp_path / "bucket") as database:
        yield database


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


@pytest.fixture(scope="module")
def family_portal() -> Iterator[EmulatorServer]:
    """One emulator serving every family dataset, two months of synthetic rows each; tests only read it."""
    with EmulatorServer(datasets=family_snapshots(FAMILY_ROWS, FAMILY_IDS, ("2024-01", "2024-02")), port=0) as server:
        yield server


@pytest.fixture(scope="module")
def family_bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's bucket: one lake for the family, each dataset under its own prefix."""
    return tmp_path_factory.mktemp("family") / "bucket"


@pytest.fixture(scope="module")
def family_db(fakesnow_server: dict[str, Any], family_bucket: Path) -> Iterator[Snowflake]:
    """One database for the module, every family dataset's tables side by side; dbt's profile points at it."""
    with staged_database(fakesnow_server, family_bucket) as database, pytest.MonkeyPatch.context() as patch:
        for name, value in database.dbt_env().items():
            patch.setenv(name, value)
        patch.delenv("DELITOS_DBT_TARGET", raising=False)
        yield database


def family_bronze(database: Snowflake, dataset: LakeDataset) -> list[tuple]:
    """Every row of the dataset's bronze table but its load metadata, sorted by row id."""
    columns = ", ".join([*dataset.lake_schema.names, "mes"])
    return database.query(f"SELECT {columns} FROM {dataset.bronze_table} ORDER BY row_id")


def lake_cases(lake: LocalLake, dataset: LakeDataset) -> list[tuple]:
    """Cases per month and municipality of the dataset's lake objects, summed here with Arrow (no warehouse)."""
    rows = pa.concat_tables([lake.read_table(data_key(month, dataset)) for month in FAMILY_MONTHS])
    places = pa.table(
        {
            "mes": pc.floor_temporal(rows["fecha_hecho"], unit="month"),
            "cod_depto": pc.utf8_trim_whitespace(rows["cod_depto"]),
            "cod_muni": pc.utf8_trim_whitespace(rows["cod_muni"]),
            "cantidad": rows["cantidad"],
        }
    )
    summed = places.group_by(["mes", "cod_depto", "cod_muni"]).aggregate([("cantidad", "sum")])
    columns = ["mes", "cod_depto", "cod_muni", "cantidad_sum"]
    return sorted(tuple(row.values()) for row in summed.select(columns).to_pylist())


def family_layers(database: Snowflake, dataset: LakeDataset) -> dict[str, list[tuple]]:
    """The dataset's bronze (without load metadata), its silver, and its rows of the cross-crime gold, sorted."""
    gold = f"WHERE dataset = '{dataset.id}'"
    return {
        "bronze": family_bronze(database, dataset),
        "silver": database.query(f"SELECT * FROM SILVER.STG_{dataset.slug.upper()} ORDER BY row_id"),
        "casos": sorted(database.query(f"SELECT * FROM GOLD.CASOS_POR_MUNICIPIO_MES {gold}"), key=repr),
        "resumen": database.query(f"SELECT * FROM GOLD.RESUMEN_POR_DELITO {gold}"),
    }


def bronze_tables(database: Snowflake) -> set[str]:
    """The tables of the BRONZE schema."""
    rows = database.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'BRONZE'")
    return {name for (name,) in rows}


@pytest.mark.parametrize("dataset_id", FAMILY_IDS)
def test_a_family_datasets_job_builds_its_bronze_silver_and_the_cross_crime_gold_on_snowflake_exact_by_row_id(
    family_portal: EmulatorServer, family_bucket: Path, family_db: Snowflake, dataset_id: str
) -> None:
    """Its lake prefix copied INTO ``BRONZE.<SLUG>`` (the lake's row ids, its entry's columns, ledger and checks),
    its silver built by dbt's snowflake target, its cases in the cross-crime gold; a re-run changes nothing."""
    member = next(member for member in FAMILY if member.dataset.id == dataset_id)
    dataset, resources = member.dataset, snowflake_resources(family_portal, family_bucket, family_db)
    slug = dataset.slug.upper()

    first = run_family_job(member, resources, FAMILY_MONTHS[0], FAMILY_MONTHS[-1])

    assert first.success
    kept = lake_id_list(resources["lake"], FAMILY_MONTHS, lambda month: data_key(month, dataset))
    assert len(kept) == FAMILY_ROWS
    assert sorted(row_id for (row_id,) in family_db.query(f"SELECT row_id FROM {dataset.bronze_table}")) == sorted(kept)
    # Its table has its entry's columns (homicidios: zona, sexo, arma_medio, ...), then the load's.
    columns = family_db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'BRONZE' "
        f"AND table_name = '{slug}' ORDER BY ordinal_position"
    )
    assert [name for (name,) in columns] == [
        *(n.upper() for n in dataset.lake_schema.names),
        "MES",
        "_RUN_ID",
        "_LOADED_AT",
    ]
    ledger = family_db.query(f"SELECT mes, registros, _run_id FROM {dataset.ledger_table} ORDER BY mes")
    monthly = family_db.query(
        f"SELECT mes, count(*), min(_run_id) FROM {dataset.bronze_table} GROUP BY mes ORDER BY mes"
    )
    assert ledger == monthly and sum(rows for _, rows, _ in ledger) == FAMILY_ROWS
    assert {run_id for _, _, run_id in ledger} == {first.run_id}
    # Silver holds the lake's row ids; the cross-crime gold counts its cases as the lake's objects sum them.
    silver = family_db.query(f"SELECT row_id FROM SILVER.STG_{slug}")
    assert sorted(row_id for (row_id,) in silver) == sorted(kept)
    layers = family_layers(family_db, dataset)
    assert [row[1:] for row in layers["casos"]] == lake_cases(resources["lake"], dataset)
    [summary] = layers["resumen"]
    assert summary[:3] == (dataset.id, dataset.entry.title, FAMILY_ROWS)
    assert summary[3] == sum(cases for *_, cases in lake_cases(resources["lake"], dataset))
    # Every check passed (dbt's on silver and gold too) but the dataset's ledger, which finds the calendar's other
    # months unread.
    evaluations = {(e.asset_key.path[0], e.check_name): e.passed for e in first.get_asset_check_evaluations()}
    assert {check for check, passed in evaluations.items() if not passed} == {("lake", "dataset_ledger_balances")}
    assert {check for check in evaluations if check[0] == "bronze"} == {
        ("bronze", "reconciled_with_source"),
        ("bronze", "volume_plausible"),
        ("bronze", "values_valid"),
    }
    # Its own two tables beside the others' (4v6r-wu98's never made here), no load table left behind.
    tables = bronze_tables(family_db)
    assert {slug, f"{slug}_CARGAS"} <= tables and "DELITOS" not in tables
    assert not [table for table in tables if "_LOAD_" in table]
    before = layers, ledger

    again = run_family_job(member, resources, FAMILY_MONTHS[0], FAMILY_MONTHS[-1])

    assert again.success
    # The swap replaced the months with the same rows; the ledger's (month, version) entries are the same.
    ledger = family_db.query(f"SELECT mes, registros, _run_id FROM {dataset.ledger_table} ORDER BY mes")
    assert family_layers(family_db, dataset) == before[0]
    assert [(mes, rows) for mes, rows, _ in ledger] == [(mes, rows) for mes, rows, _ in before[1]]
    assert family_db.query(f"SELECT DISTINCT _run_id FROM {dataset.bronze_table}") == [(again.run_id,)]
