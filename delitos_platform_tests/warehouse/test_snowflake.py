"""SnowflakeWarehouse against fakesnow's server, through the real snowflake-connector-python.

The production stage is an external S3 stage; fakesnow cannot read S3 offline, so here the stage is a
``file://`` URL stage over a LocalLake folder: the loader runs the SAME ``COPY INTO`` SQL either way.
One fakesnow server serves the module; every test gets a database of its own.
"""

from __future__ import annotations

import gzip
import json
import socket
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
import snowflake.connector
from dagster_snowflake import SnowflakeResource

from delitos_platform.contract import LAKE_SCHEMA
from delitos_platform.datasets import configured
from delitos_platform.emulator import DEFAULT_SNAPSHOT
from delitos_platform.emulator.synthetic import synthetic_rows
from delitos_platform.lake.dataset import LakeDataset
from delitos_platform.lake.parquet import to_parquet_bytes
from delitos_platform.lake.rows import type_page
from delitos_platform.lake.storage import LocalLake, data_key
from delitos_platform.lake.versions import UPDATED_AT_METADATA, VERSION_METADATA
from delitos_platform.partitions import Window
from delitos_platform.warehouse.base import WarehouseError
from delitos_platform.warehouse.snowflake import SnowflakeWarehouse, Statement

fakesnow = pytest.importorskip("fakesnow")

# fakesnow warns on every Arrow fetch the connector makes; it says nothing about the loader.
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

MONTHS = ["2024-01-01", "2024-02-01", "2024-03-01"]
WINDOW = Window(date(2024, 1, 1), date(2024, 4, 1))
STAGE = "RAW.LAKE_STAGE"
PREFIX = "lake"  # the stage's URL is the "bucket"; the lake's keys start under this prefix
COLUMNS = [field.name for field in LAKE_SCHEMA]


@pytest.fixture(scope="module")
def server(fakesnow_server: dict[str, Any]) -> dict[str, Any]:
    """Connection kwargs of the session's fakesnow server."""
    return fakesnow_server


@pytest.fixture(scope="module")
def month_tables() -> dict[str, pa.Table]:
    """Each test month's rows from the shipped snapshot, typed as the lake stores them."""
    with gzip.open(DEFAULT_SNAPSHOT, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    tables = {}
    for month in MONTHS:
        picked = [row for row in rows if row["fecha_hecho"].startswith(month[:7])]
        typed = {
            "row_id": [f"row-{month[:7]}-{index:04d}" for index in range(len(picked))],
            "fecha_hecho": [date.fromisoformat(row["fecha_hecho"][:10]) for row in picked],
            **{name: [row[name] for row in picked] for name in COLUMNS[2:-1]},
            "cantidad": [int(row["cantidad"]) for row in picked],
        }
        tables[month] = pa.Table.from_pydict(typed, schema=LAKE_SCHEMA)
    return tables


@dataclass
class Setup:
    """A test's database, its lake and a connection of its own to look at bronze."""

    server: dict[str, Any]
    database: str
    lake: LocalLake
    bucket: Path

    def connection(self) -> snowflake.connector.SnowflakeConnection:
        """A raw connector connection to the test's database."""
        return snowflake.connector.connect(**self.server, database=self.database, schema="PUBLIC")

    def resource(self, **overrides: Any) -> SnowflakeResource:
        """The dagster-snowflake resource pointed at the fakesnow server."""
        extra = {key: self.server[key] for key in ("host", "port", "protocol", "session_parameters", "network_timeout")}
        settings = {"account": "fakesnow", "user": "fake", "password": "snow", "database": self.database}
        return SnowflakeResource(**{**settings, "additional_snowflake_connection_args": extra, **overrides})

    def warehouse(self, cls: type[SnowflakeWarehouse] = SnowflakeWarehouse, **overrides: Any) -> SnowflakeWarehouse:
        """The warehouse under test (overrides: stage, stage_prefix, snowflake)."""
        return cls(**{"snowflake": self.resource(), "stage": STAGE, "stage_prefix": PREFIX, **overrides})

    def write(self, month: str, table: pa.Table, dataset: LakeDataset | None = None) -> None:
        """Store a month object in the lake (4v6r-wu98's, or ``dataset``'s under its prefix), as the lake asset
        does."""
        key = data_key(month) if dataset is None else data_key(month, dataset)
        self.lake.write(key, to_parquet_bytes(table))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query in the test's database."""
        with self.connection() as connection:
            cursor = connection.cursor()
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]

    def bronze(self) -> list[tuple[Any, ...]]:
        """Every bronze row: the lake columns, then mes and _run_id."""
        return self.query(f"SELECT {', '.join(COLUMNS)}, mes, _run_id FROM BRONZE.DELITOS ORDER BY row_id")


@pytest.fixture
def setup(server: dict[str, Any], tmp_path: Path, month_tables: dict[str, pa.Table]) -> Setup:
    """A fresh database with the file:// stage over a lake that holds the three test months."""
    bucket = tmp_path / "bucket"
    setup = Setup(server, f"T_{uuid.uuid4().hex[:12]}".upper(), LocalLake(root=str(bucket / PREFIX)), bucket)
    for month, table in month_tables.items():
        setup.write(month, table)
    with setup.connection() as connection:
        connection.cursor().execute("CREATE SCHEMA IF NOT EXISTS RAW")
        # Trailing slash as Snowflake shows stage URLs: the stage path is appended to it.
        connection.cursor().execute(f"CREATE STAGE {STAGE} URL = '{bucket.as_uri()}/'")
    return setup


def expected_rows(tables: dict[str, pa.Table], run_id: str) -> list[tuple[Any, ...]]:
    """What bronze must hold after loading ``tables``: the lake's rows plus month and run id."""
    rows = []
    for month, table in tables.items():
        for row in table.to_pylist():
            rows.append((*(row[name] for name in COLUMNS), date.fromisoformat(month), run_id))
    return sorted(rows)


def test_load_puts_exactly_the_lakes_rows_in_bronze(setup: Setup, month_tables: dict[str, pa.Table]) -> None:
    """A 3-month load copies every lake row, typed, with its month and the run id."""
    warehouse = setup.warehouse()
    assert warehouse.count_by_month(WINDOW) == {}  # before the first load there is no table

    loaded = warehouse.load(setup.lake, WINDOW, "run-1")

    counts = {month: table.num_rows for month, table in month_tables.items()}
    assert loaded.rows_by_month == counts
    assert loaded.run_id == "run-1" and loaded.rows == sum(counts.values()) > 300
    assert setup.bronze() == expected_rows(month_tables, "run-1")
    assert warehouse.count_by_month(WINDOW) == counts
    assert warehouse.count_by_month(Window.for_month("2024-02-01")) == {"2024-02-01": counts["2024-02-01"]}


def test_reload_of_unchanged_objects_gives_the_same_rows(setup: Setup, month_tables: dict[str, pa.Table]) -> None:
    """Re-loading unchanged files neither empties the months (COPY load metadata) nor doubles them."""
    warehouse = setup.warehouse()
    warehouse.load(setup.lake, WINDOW, "run-1")
    again = warehouse.load(setup.lake, WINDOW, "run-2")

    assert again.rows_by_month == {month: table.num_rows for month, table in month_tables.items()}
    assert setup.bronze() == expected_rows(month_tables, "run-2")


def test_reload_after_a_rewrite_swaps_in_the_new_rows(setup: Setup, month_tables: dict[str, pa.Table]) -> None:
    """A month rewritten with fewer rows replaces the old month; the others stay as they were."""
    warehouse = setup.warehouse()
    warehouse.load(setup.lake, WINDOW, "run-1")
    fewer = month_tables["2024-02-01"].slice(0, 25)
    setup.write("2024-02-01", fewer)

    loaded = warehouse.load(setup.lake, Window.for_month("2024-02-01"), "run-2")

    assert loaded.rows_by_month == {"2024-02-01": 25}
    expected = expected_rows({m: t for m, t in month_tables.items() if m != "2024-02-01"}, "run-1")
    assert setup.bronze() == sorted(expected + expected_rows({"2024-02-01": fewer}, "run-2"))


def test_each_loaded_month_is_recorded_at_the_source_version_its_object_was_read_at(
    setup: Setup, month_tables: dict[str, pa.Table]
) -> None:
    """The load ledger, written in the load's transaction: one entry per month and source version."""
    for month, table in month_tables.items():
        version = {VERSION_METADATA: f"{table.num_rows}@x", UPDATED_AT_METADATA: "1700000000"}
        setup.write(month, table.replace_schema_metadata(version))
    warehouse = setup.warehouse()
    warehouse.load(setup.lake, WINDOW, "run-1")
    warehouse.load(setup.lake, WINDOW, "run-2")  # the same version again: no second entry
    failing = setup.warehouse(FailingBetweenDeleteAndInsert)
    with pytest.raises(WarehouseError):
        failing.load(setup.lake, WINDOW, "run-3")

    with setup.connection() as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT mes, version, version_mes, registros, _run_id FROM BRONZE.DELITOS_CARGAS ORDER BY mes")
        ledger = [tuple(row) for row in cursor.fetchall()]
    read_at = datetime(2023, 11, 14, 22, 13, 20)
    assert ledger == [
        (date.fromisoformat(month), read_at, f"{table.num_rows}@x", table.num_rows, "run-2")
        for month, table in month_tables.items()
    ]


class FailingBetweenDeleteAndInsert(SnowflakeWarehouse):
    """A warehouse whose swap fails after its DELETE ran and before its INSERT."""

    def _swap_statements(self, load_table: str, window: Window, run_id: str, dataset: LakeDataset) -> list[Statement]:
        delete, insert = super()._swap_statements(load_table, window, run_id, dataset)
        return [delete, ("INSERT INTO BRONZE.NO_SUCH_TABLE SELECT 1", None), insert]


def test_failure_between_delete_and_insert_keeps_the_previous_months(
    setup: Setup, month_tables: dict[str, pa.Table]
) -> None:
    """The swap is one transaction: a failure after the delete rolls it back."""
    setup.warehouse().load(setup.lake, WINDOW, "run-1")
    setup.write("2024-02-01", month_tables["2024-02-01"].slice(0, 10))

    with pytest.raises(WarehouseError, match="NO_SUCH_TABLE"):
        setup.warehouse(FailingBetweenDeleteAndInsert).load(setup.lake, WINDOW, "run-2")

    assert setup.bronze() == expected_rows(month_tables, "run-1")


def test_a_row_bronze_refuses_rolls_the_whole_load_back(setup: Setup, month_tables: dict[str, pa.Table]) -> None:
    """An object breaking bronze's NOT NULL fails the INSERT after the DELETE: nothing changes."""
    setup.warehouse().load(setup.lake, WINDOW, "run-1")
    schema = pa.schema([field.with_nullable(True) for field in LAKE_SCHEMA])
    rows = month_tables["2024-03-01"].slice(0, 5).cast(schema)
    setup.write("2024-03-01", rows.set_column(0, schema.field("row_id"), pa.array([None] * 5, pa.string())))

    with pytest.raises(WarehouseError):
        setup.warehouse().load(setup.lake, WINDOW, "run-2")

    assert setup.bronze() == expected_rows(month_tables, "run-1")


def test_missing_lake_object_is_told_before_any_copy(setup: Setup) -> None:
    """A month the lake has not materialized fails in one sentence naming it."""
    with pytest.raises(WarehouseError, match=r"^the lake holds no object for 2024-04: materialize lake/delitos"):
        setup.warehouse().load(setup.lake, Window(date(2024, 3, 1), date(2024, 5, 1)), "run-1")


def test_bad_stage_is_told_in_one_sentence(setup: Setup) -> None:
    """A stage that does not exist (or the role may not use) is named in the error."""
    with pytest.raises(WarehouseError) as caught:
        setup.warehouse(stage="RAW.NO_SUCH_STAGE").load(setup.lake, WINDOW, "run-1")
    assert str(caught.value) == "stage RAW.NO_SUCH_STAGE does not exist or is not authorized for the loader's role"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"stage": "RAW.LAKE_STAGE; DROP TABLE BRONZE.DELITOS"}, "stage name"),
        ({"stage": 'RAW."lake stage"'}, "stage name"),
        ({"stage": "@RAW.LAKE_STAGE"}, "stage name"),
        ({"stage_prefix": "lake') FILES=('x"}, "stage prefix"),
        ({"stage_prefix": "../../etc"}, "stage prefix"),
    ],
)
def test_injection_characters_are_refused_before_any_sql(setup: Setup, overrides: dict[str, str], refused: str) -> None:
    """Names are checked before connecting: pointed at a closed port, only the check can answer."""
    unreachable = setup.resource(additional_snowflake_connection_args={"host": "127.0.0.1", "port": closed_port()})
    warehouse = setup.warehouse(snowflake=unreachable, **overrides)
    with pytest.raises(WarehouseError, match=rf"^refusing {refused} "):
        warehouse.load(setup.lake, WINDOW, "run-1")


def test_missing_password_is_told_without_any_secret(setup: Setup) -> None:
    """An empty password (SNOWFLAKE_PASSWORD set to nothing) gives one sentence naming the variables."""
    warehouse = setup.warehouse(snowflake=setup.resource(password=""))
    with pytest.raises(WarehouseError, match=r"^Snowflake credentials are missing .*SNOWFLAKE_PASSWORD"):
        warehouse.count_by_month(WINDOW)


def test_unreadable_private_key_is_told_without_the_key(setup: Setup, tmp_path: Path) -> None:
    """Key-pair auth with a key file that is not there names the problem, never a key."""
    resource = setup.resource(password=None, private_key_path=str(tmp_path / "missing.p8"))
    with pytest.raises(WarehouseError, match=r"^cannot read the Snowflake private key file: No such file"):
        setup.warehouse(snowflake=resource).count_by_month(WINDOW)


def test_unreachable_account_is_told_in_one_sentence(setup: Setup) -> None:
    """No server behind the host: a connection error, quickly (no retries for minutes)."""
    extra = {"host": "127.0.0.1", "port": closed_port(), "protocol": "http", "network_timeout": 1}
    resource = setup.resource(login_timeout=2, additional_snowflake_connection_args=extra)
    with pytest.raises(WarehouseError, match=r"^cannot connect to Snowflake account fakesnow: "):
        setup.warehouse(snowflake=resource).count_by_month(WINDOW)


def run_with_env_secrets(setup: Setup, raise_on_error: bool = False) -> dg.ExecuteInProcessResult:
    """Load the window in a Dagster run whose warehouse takes its password from SNOWFLAKE_PASSWORD."""

    @dg.asset
    def bronze(warehouse: SnowflakeWarehouse, lake: LocalLake) -> int:
        return warehouse.load(lake, WINDOW, "run-env").rows

    warehouse = setup.warehouse(snowflake=setup.resource(password=dg.EnvVar("SNOWFLAKE_PASSWORD")))
    return dg.materialize(
        [bronze], resources={"warehouse": warehouse, "lake": setup.lake}, raise_on_error=raise_on_error
    )


def test_password_from_env_var_in_a_dagster_run(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The production wiring: a dg.EnvVar secret resolves at run time and the load goes through."""
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "snow")
    result = run_with_env_secrets(setup)
    assert result.success
    assert result.output_for_node("bronze") == len(setup.bronze()) > 300


def test_unset_password_env_var_fails_the_run_naming_it(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset SNOWFLAKE_PASSWORD is refused by Dagster before any step runs, naming the variable."""
    monkeypatch.delenv("SNOWFLAKE_PASSWORD", raising=False)
    with pytest.raises(dg.DagsterInvalidConfigError) as caught:
        run_with_env_secrets(setup, raise_on_error=True)
    assert 'environment variable "SNOWFLAKE_PASSWORD" which is not set' in str(caught.value)


HOMICIDIOS = LakeDataset(configured()["m8fd-ahd9"])


def homicidios_month(month: str, rows: int) -> pa.Table:
    """A month of synthetic homicides typed as the lake stores them (the lake's own typing), read at a version."""
    raw = list(synthetic_rows(HOMICIDIOS.entry, rows=rows, start=month[:7], end=month[:7]))
    ids = [f"row-hom-{month[:7]}-{index:04d}" for index in range(len(raw))]
    page = pa.Table.from_pylist([{"row_id": row_id, **row} for row_id, row in zip(ids, raw, strict=True)])
    typed = type_page(page, HOMICIDIOS).rows.cast(HOMICIDIOS.lake_schema)
    return typed.replace_schema_metadata({VERSION_METADATA: f"{rows}@x", UPDATED_AT_METADATA: "1700000000"})


def test_a_family_dataset_loads_from_its_prefix_into_its_own_table_beside_4v6r_wu98s(setup: Setup) -> None:
    """Homicides go to BRONZE.HOMICIDIOS with their entry's columns; BRONZE.DELITOS keeps its rows."""
    warehouse = setup.warehouse()
    warehouse.load(setup.lake, WINDOW, "run-delitos")
    delitos = setup.bronze()
    months = {month: homicidios_month(month, 8) for month in MONTHS}
    for month, table in months.items():
        setup.write(month, table, HOMICIDIOS)
    assert warehouse.count_by_month(WINDOW, HOMICIDIOS) == {}  # the bronze schema exists, its table not yet

    loaded = warehouse.load(setup.lake, WINDOW, "run-hom", dataset=HOMICIDIOS)

    assert loaded.rows_by_month == dict.fromkeys(MONTHS, 8)
    names = HOMICIDIOS.lake_schema.names
    held = setup.query(f"SELECT {', '.join(names)}, mes, _run_id FROM BRONZE.HOMICIDIOS ORDER BY row_id")
    expected = [
        (*(row[name] for name in names), date.fromisoformat(month), "run-hom")
        for month, table in months.items()
        for row in table.to_pylist()
    ]
    assert held == sorted(expected)
    ledger = setup.query("SELECT mes, registros, _run_id FROM BRONZE.HOMICIDIOS_CARGAS ORDER BY mes")
    assert ledger == [(date.fromisoformat(month), 8, "run-hom") for month in MONTHS]
    assert warehouse.row_ids_by_month(WINDOW, HOMICIDIOS) == loaded.ids_by_month
    assert setup.bronze() == delitos


def test_a_family_object_holding_a_row_of_another_month_is_refused_and_bronze_is_unchanged(setup: Setup) -> None:
    """The stray refusal holds for every dataset: a row outside its object's month would double on its own."""
    warehouse = setup.warehouse()
    for month in MONTHS:
        setup.write(month, homicidios_month(month, 6), HOMICIDIOS)
    warehouse.load(setup.lake, WINDOW, "run-1", dataset=HOMICIDIOS)
    before = setup.query("SELECT row_id, mes, _run_id FROM BRONZE.HOMICIDIOS ORDER BY row_id")
    strays = pa.concat_tables([homicidios_month("2024-02-01", 6), homicidios_month("2024-05-01", 1)])
    setup.write("2024-02-01", strays, HOMICIDIOS)

    with pytest.raises(WarehouseError) as refused:
        warehouse.load(setup.lake, Window.for_month("2024-02-01"), "run-2", dataset=HOMICIDIOS)

    assert str(refused.value) == "the lake objects hold rows outside the window's months: 2024-05-01"
    assert setup.query("SELECT row_id, mes, _run_id FROM BRONZE.HOMICIDIOS ORDER BY row_id") == before


def test_a_family_month_missing_from_the_lake_names_its_own_lake_asset(setup: Setup) -> None:
    """4v6r-wu98's objects do not stand in for a family dataset's: its missing month names lake/homicidios."""
    with pytest.raises(WarehouseError) as missing:
        setup.warehouse().load(setup.lake, WINDOW, "run-1", dataset=HOMICIDIOS)

    assert str(missing.value) == (
        "the lake holds no object for 2024-01, 2024-02, 2024-03: materialize lake/homicidios for it first"
    )
