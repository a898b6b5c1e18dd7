"""The dbt project, really run: DuckDB builds checked against an independent recount in Python,
the windowed incremental of silver, idempotent re-runs, and the Snowflake target on fakesnow.

dbt runs in-process through ``dbtRunner``: a subprocess would pay dbt's ~4 s start-up on every call.
dbt-duckdb keeps its DuckDB file open for the life of the process, so each call ends by closing
it, or the test's own connections to the same file would be refused.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.cli.main import dbtRunner

from delitos_platform.contract import ARTICLES

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

WINDOW_START, WINDOW_END = date(2019, 3, 1), date(2019, 4, 1)
WINDOW_VARS = json.dumps({"window_start": WINDOW_START.isoformat(), "window_end": WINDOW_END.isoformat()})

# stg_delitos and what is built from it, without the family layer (models/family/), whose cross-crime gold reads
# stg_delitos too but which Dagster does not build yet (test_family.py builds it).
STG_DELITOS_DOWNSTREAM = ("--select", "stg_delitos+", "--exclude", "fqn:delitos.family")
SILVER_MODELS = ("stg_delitos", "delitos_versiones", "delitos_historial")
GOLD_TABLES = ("delitos_por_mes", "delitos_por_departamento", "top_municipios", "tendencia_mensual", "resumen_general")

# The bronze table as the platform loads it (load metadata included).
BRONZE_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("fecha_hecho", pa.date32()),
        ("cod_depto", pa.string()),
        ("departamento", pa.string()),
        ("cod_muni", pa.string()),
        ("municipio", pa.string()),
        ("descripcion_conducta", pa.string()),
        ("cantidad", pa.int64()),
        ("mes", pa.date32()),
        ("_run_id", pa.string()),
        ("_loaded_at", pa.timestamp("us")),
    ]
)
BRONZE_DDL = """
    create or replace table bronze.delitos (
        row_id varchar, fecha_hecho date, cod_depto varchar, departamento varchar, cod_muni varchar,
        municipio varchar, descripcion_conducta varchar, cantidad bigint, mes date,
        _run_id varchar, _loaded_at timestamp
    )
"""


@dataclass(frozen=True)
class BronzeRow:
    """One row of ``bronze.delitos``, as the platform would load it."""

    row_id: str
    fecha_hecho: date
    cod_depto: str
    departamento: str
    cod_muni: str
    municipio: str
    descripcion_conducta: str
    cantidad: int

    @property
    def mes(self) -> date:
        """First day of the row's month (the platform's partition)."""
        return self.fecha_hecho.replace(day=1)

    def as_record(self) -> dict[str, Any]:
        """The row with the bronze table's columns, load metadata included."""
        record = {name: getattr(self, name) for name in BRONZE_SCHEMA.names if not name.startswith("_")}
        return record | {"_run_id": "test", "_loaded_at": None}


def bronze_rows_from_snapshot(snapshot_rows: list[dict[str, str]]) -> list[BronzeRow]:
    """The snapshot's rows typed like the bronze table; the snapshot has no ids, so number them."""
    return [
        BronzeRow(
            row_id=f"row-{number:06d}",
            fecha_hecho=date.fromisoformat(raw["fecha_hecho"][:10]),
            cod_depto=raw["cod_depto"],
            departamento=raw["departamento"],
            cod_muni=raw["cod_muni"],
            municipio=raw["municipio"],
            descripcion_conducta=raw["descripcion_conducta"],
            cantidad=int(raw["cantidad"]),
        )
        for number, raw in enumerate(snapshot_rows, start=1)
    ]


# The load ledger as the platform writes it; these tests load every month at one source version.
LEDGER_DDL = """
    create or replace table bronze.delitos_cargas (
        mes date, version timestamp, version_mes varchar, registros bigint, _run_id varchar, _loaded_at timestamp
    )
"""
LEDGER_ROWS = """
    insert into bronze.delitos_cargas
    select mes, {version}, 'test', count(*), 'test', current_timestamp from bronze.delitos group by mes
"""
SOURCE_VERSION = "timestamp '2024-06-01 00:00:00'"


def write_bronze(
    warehouse: Path, rows: Iterable[BronzeRow], version: str = SOURCE_VERSION, months: Iterable[date] = ()
) -> None:
    """(Re)create ``bronze.delitos`` in a DuckDB file with exactly these rows, every month (and ``months``,
    left empty) loaded at source ``version`` (a SQL timestamp literal)."""
    table = pa.Table.from_pylist([row.as_record() for row in rows], schema=BRONZE_SCHEMA)
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema if not exists bronze")
        connection.execute(BRONZE_DDL)
        connection.register("bronze_rows", table)
        connection.execute("insert into bronze.delitos select * from bronze_rows")
        connection.execute(LEDGER_DDL)
        connection.execute(LEDGER_ROWS.format(version=version))
        for month in months:
            connection.execute(
                f"insert into bronze.delitos_cargas values (?, {version}, 'test', 0, 'test', current_timestamp)",
                [month],
            )


# --- The independent recount: plain Python over the bronze rows, no SQL. ---------------------


def _article(text: str) -> str:
    """The article code in a conduct's text, e.g. ``269I``."""
    match = re.search(r"269[A-J]", text.upper())
    assert match, text
    return match.group(0)


def _months(first: date, last: date) -> Iterator[date]:
    """Every first-of-month from ``first`` to ``last`` inclusive."""
    month = first
    while month <= last:
        yield month
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)


def recount(rows: list[BronzeRow]) -> dict[str, list[tuple]]:
    """Every gold table recomputed from the bronze rows, as sorted tuples in the contract's column order."""
    clean = [
        {
            "fecha": row.fecha_hecho,
            "mes": row.mes,
            "anio": row.fecha_hecho.year,
            "cod_depto": row.cod_depto.strip(),
            "departamento": row.departamento.strip().upper(),
            "cod_muni": row.cod_muni.strip(),
            "municipio": row.municipio.strip().upper(),
            "articulo": _article(row.descripcion_conducta),
            "cantidad": row.cantidad,
        }
        for row in rows
    ]

    def grouped(*keys: str) -> dict[tuple, list[dict[str, Any]]]:
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for row in clean:
            groups[tuple(row[key] for key in keys)].append(row)
        return groups

    def casos(group: list[dict[str, Any]]) -> int:
        return sum(row["cantidad"] for row in group)

    def distinct(group: list[dict[str, Any]], key: str) -> int:
        return len({row[key] for row in group})

    # One name per code: the greatest spelling, as the models choose it.
    depto_name = {key[0]: max(r["departamento"] for r in group) for key, group in grouped("cod_depto").items()}
    muni_info = {
        key[0]: (
            max(r["municipio"] for r in group),
            max(r["cod_depto"] for r in group),
            max(r["departamento"] for r in group),
        )
        for key, group in grouped("cod_muni").items()
    }

    por_mes = [
        (mes, art, ARTICLES[art], casos(g), len(g), distinct(g, "cod_depto"), distinct(g, "cod_muni"))
        for (mes, art), g in grouped("mes", "articulo").items()
    ]
    por_departamento = [
        (
            anio,
            depto,
            art,
            depto_name[depto],
            casos(g),
            len(g),
            distinct(g, "cod_muni"),
            min(r["fecha"] for r in g),
            max(r["fecha"] for r in g),
        )
        for (anio, depto, art), g in grouped("anio", "cod_depto", "articulo").items()
    ]

    top: list[tuple] = []
    per_year: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for (anio, muni), g in grouped("anio", "cod_muni").items():
        per_year[anio].append((muni, casos(g)))
    for anio, municipalities in per_year.items():
        ranked = sorted(municipalities, key=lambda item: (-item[1], item[0]))[:20]
        for posicion, (muni, total) in enumerate(ranked, start=1):
            nombre, depto, departamento = muni_info[muni]
            top.append((anio, posicion, muni, nombre, depto, departamento, total))

    by_month = {key[0]: casos(g) for key, g in grouped("mes").items()}
    tendencia: list[tuple] = []
    if by_month:
        series = [(mes, by_month.get(mes, 0)) for mes in _months(min(by_month), max(by_month))]
        for index, (mes, total) in enumerate(series):
            previous = series[index - 1][1] if index else None
            pct = None if not previous else round(100.0 * (total - previous) / previous, 6)
            rolling = sum(value for _, value in series[max(0, index - 11) : index + 1])
            tendencia.append((mes, total, previous, pct, rolling))

    per_article = {key[0]: casos(g) for key, g in grouped("articulo").items()}
    resumen = [
        (
            casos(clean),
            len(clean),
            distinct(clean, "cod_depto"),
            distinct(clean, "cod_muni"),
            min(r["fecha"] for r in clean),
            max(r["fecha"] for r in clean),
            min(per_article, key=lambda art: (-per_article[art], art)),
        )
    ]
    return {
        "delitos_por_mes": sorted(por_mes),
        "delitos_por_departamento": sorted(por_departamento),
        "top_municipios": sorted(top),
        "tendencia_mensual": tendencia,
        "resumen_general": resumen,
    }


GOLD_COLUMNS = {
    "delitos_por_mes": "mes, articulo, categoria, casos, registros, departamentos, municipios",
    "delitos_por_departamento": (
        "anio, cod_depto, articulo, departamento, casos, registros, municipios, primera_fecha, ultima_fecha"
    ),
    "top_municipios": "anio, posicion, cod_muni, municipio, cod_depto, departamento, casos",
    "tendencia_mensual": "mes, casos, casos_mes_anterior, variacion_pct, casos_12m",
    "resumen_general": (
        "casos, registros, departamentos, municipios, primera_fecha, ultima_fecha, articulo_mas_frecuente"
    ),
}


def _plain(value: Any) -> Any:
    """A fetched value comparable with the recount's: Snowflake's NUMBER arrives as Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def read_gold(cursor: Any) -> dict[str, list[tuple]]:
    """Every gold table through a DB-API cursor (DuckDB or Snowflake), sorted, ints as ints."""
    tables = {}
    for name, columns in GOLD_COLUMNS.items():
        cursor.execute(f"select {columns} from gold.{name}")
        tables[name] = sorted(tuple(_plain(value) for value in row) for row in cursor.fetchall())
    return tables


# --- Running dbt. ---------------------------------------------------------------------------


@dataclass
class DbtRun:
    """Where a dbt invocation writes: its warehouse and its own target/log folders (never the repo); which project."""

    warehouse: Path
    work: Path
    project: Path = PROJECT_DIR

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, target: str = "duckdb", succeed: bool = True
    ) -> dict[str, str]:
        """Run dbt; return each node's status. Unless ``succeed`` is false, fail with dbt's log if dbt fails;
        when it is false, dbt must run to the end and report a node's failure (not crash)."""
        command = [
            *args,
            "--no-use-colors",
            "--quiet",
            "--target",
            target,
            "--project-dir",
            str(self.project),
            "--profiles-dir",
            str(self.project),
            "--target-path",
            str(self.work / "target"),
            "--log-path",
            str(self.work / "logs"),
        ]
        settings = {"DELITOS_WAREHOUSE_PATH": str(self.warehouse), "DO_NOT_TRACK": "1"} | (env or {})
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("DELITOS_DBT_TARGET", raising=False)
            for key, value in settings.items():
                patch.setenv(key, value)
            try:
                result = dbtRunner().invoke(command)
            finally:
                DuckDBConnectionManager.close_all_connections()
                gc.collect()  # drops the closed environment's DuckDB handle, releasing the file
        log = (self.work / "logs" / "dbt.log").read_text()[-8000:] if (self.work / "logs" / "dbt.log").exists() else ""
        if succeed:
            assert result.success, f"dbt {' '.join(args)} failed: {result.exception}\n{log}"
        else:
            assert not result.success and result.exception is None, f"dbt {' '.join(args)}: {result.exception}\n{log}"
        if args[0] not in ("build", "run", "test"):
            return {}
        return {node["unique_id"]: node["status"] for node in self.node_results()}

    def node_results(self) -> list[dict[str, Any]]:
        """The last invocation's results of its nodes (not of the on-run-end hook that publishes audited tables)."""
        results = json.loads((self.work / "target" / "run_results.json").read_text())["results"]
        return [result for result in results if not result["unique_id"].startswith("operation.")]

    def copy(self, destination: Path) -> DbtRun:
        """A copy of this warehouse in another folder, free to be changed."""
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.warehouse, destination / "warehouse.duckdb")
        return replace(self, warehouse=destination / "warehouse.duckdb", work=destination)


def assert_all_passed(statuses: dict[str, str]) -> None:
    """Every model succeeded and every test passed (error severity: nothing may warn)."""
    assert statuses
    failed = {node: status for node, status in statuses.items() if status not in ("success", "pass")}
    assert not failed, failed


def table_rows(warehouse: Path, query: str) -> list[tuple]:
    """A query's rows, sorted."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return sorted(connection.execute(query).fetchall())


# --- Fixtures. --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bronze_rows(snapshot_rows: list[dict[str, str]]) -> list[BronzeRow]:
    """The real snapshot as bronze rows."""
    return bronze_rows_from_snapshot(snapshot_rows)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, bronze_rows: list[BronzeRow]) -> tuple[DbtRun, dict[str, str]]:
    """A warehouse with the snapshot in bronze after a full ``dbt build``, and that build's statuses."""
    work = tmp_path_factory.mktemp("dbt")
    dbt = DbtRun(warehouse=work / "warehouse.duckdb", work=work)
    write_bronze(dbt.warehouse, bronze_rows)
    return dbt, dbt("build")


# --- Tests. -----------------------------------------------------------------------------------


def test_full_build_passes_every_test_and_matches_recount(
    built: tuple[DbtRun, dict[str, str]], bronze_rows: list[BronzeRow]
) -> None:
    """A full build on the real snapshot: all models and tests pass, and gold equals the recount."""
    dbt, statuses = built
    assert_all_passed(statuses)
    assert sum(node.startswith("model.") for node in statuses) == len(SILVER_MODELS) + len(GOLD_TABLES) + 2
    assert sum(node.startswith("test.") for node in statuses) > 20

    with duckdb.connect(str(dbt.warehouse), read_only=True) as connection:
        gold = read_gold(connection.cursor())
        silver_rows = connection.execute("select count(*), sum(cantidad) from silver.stg_delitos").fetchone()
        schemas = {
            row[0] for row in connection.execute("select table_schema from information_schema.tables").fetchall()
        }
    expected = recount(bronze_rows)
    for name in GOLD_TABLES:
        assert gold[name] == expected[name], name
    assert silver_rows == (len(bronze_rows), sum(row.cantidad for row in bronze_rows))
    assert {"bronze", "silver", "gold"} <= schemas
    assert not {schema for schema in schemas if schema.endswith(("_silver", "_gold"))}
    # The snapshot itself: 20,327 rows, every one of the 9 articles, all in Santander.
    assert expected["resumen_general"][0][1] == 20_327
    assert {row[1] for row in expected["delitos_por_mes"]} == set(ARTICLES)


def test_every_silver_and_gold_column_is_listed_with_the_type_it_has(built: tuple[DbtRun, dict[str, str]]) -> None:
    """``schema.yml`` lists every column of every silver and gold table, in the table's order, with the type the
    built table has: the column types the UI shows are the warehouse's."""
    dbt, _ = built
    nodes = json.loads((dbt.work / "target" / "manifest.json").read_text())["nodes"]
    columns_sql = """
        select column_name, data_type from information_schema.columns
        where table_schema = ? and table_name = ? order by ordinal_position
    """
    with duckdb.connect(str(dbt.warehouse), read_only=True) as connection:
        for model in ("stg_delitos", *GOLD_TABLES):
            node = nodes[f"model.delitos.{model}"]
            built_columns = connection.execute(columns_sql, [node["schema"], model]).fetchall()
            listed = [(name, column.get("data_type")) for name, column in node["columns"].items()]
            assert listed == built_columns, model


def test_window_build_replaces_exactly_the_window(
    built: tuple[DbtRun, dict[str, str]], bronze_rows: list[BronzeRow], tmp_path: Path
) -> None:
    """Upstream deletes and changes in one month reach silver and gold through a windowed build only."""
    dbt = built[0].copy(tmp_path)
    in_window = [row for row in bronze_rows if WINDOW_START <= row.fecha_hecho < WINDOW_END]
    assert len(in_window) > 20, "the snapshot should have rows in the test's month"

    # Drop every third row of the month and multiply the cantidad of every fifth remaining one.
    deleted = {row.row_id for row in in_window[::3]}
    changed = {row.row_id for row in in_window if row.row_id not in deleted}
    changed = set(sorted(changed)[::5])
    new_rows = [
        replace(row, cantidad=row.cantidad * 7) if row.row_id in changed else row
        for row in bronze_rows
        if row.row_id not in deleted
    ]
    write_bronze(dbt.warehouse, new_rows)

    outside_query = f"select * from silver.stg_delitos where mes < date '{WINDOW_START}' or mes >= date '{WINDOW_END}'"
    outside_before = table_rows(dbt.warehouse, outside_query)

    assert_all_passed(dbt("build", "--vars", WINDOW_VARS, *STG_DELITOS_DOWNSTREAM))

    window_query = (
        f"select row_id, cantidad from silver.stg_delitos where mes >= date '{WINDOW_START}' "
        f"and mes < date '{WINDOW_END}'"
    )
    expected_window = sorted(
        (row.row_id, row.cantidad) for row in new_rows if WINDOW_START <= row.fecha_hecho < WINDOW_END
    )
    assert table_rows(dbt.warehouse, window_query) == expected_window
    assert not deleted & {row_id for row_id, _ in table_rows(dbt.warehouse, window_query)}
    assert table_rows(dbt.warehouse, outside_query) == outside_before

    with duckdb.connect(str(dbt.warehouse), read_only=True) as connection:
        gold = read_gold(connection.cursor())
    expected = recount(new_rows)
    for name in GOLD_TABLES:
        assert gold[name] == expected[name], name


def test_a_second_build_changes_nothing(built: tuple[DbtRun, dict[str, str]], tmp_path: Path) -> None:
    """``dbt build`` is idempotent: silver and gold are identical after running it again."""
    dbt = built[0].copy(tmp_path)
    tables = ["silver.stg_delitos", *(f"gold.{name}" for name in GOLD_TABLES)]
    before = {table: table_rows(dbt.warehouse, f"select * from {table}") for table in tables}
    assert_all_passed(dbt("build"))
    after = {table: table_rows(dbt.warehouse, f"select * from {table}") for table in tables}
    assert after == before


# One silver row per rule that silver's column tests hold, each broken in its own way (an update of one row).
BROKEN_SILVER_RULES = {
    "fecha_hecho is null": "fecha_hecho = null",
    "municipio is null": "municipio = null",
    "cantidad is not positive": "cantidad = 0",
    "trimestre is outside [1, 4]": "trimestre = 5",
    "articulo is not an accepted value": "articulo = '269H'",
    "cod_muni does not start with cod_depto": "cod_muni = '05001'",
}


def test_one_test_holds_every_column_rule_of_silver_in_one_scan(
    built: tuple[DbtRun, dict[str, str]], tmp_path: Path
) -> None:
    """``stg_delitos_column_rules`` fails on each rule the per-column tests held, naming it and counting its rows."""
    dbt = built[0].copy(tmp_path)
    with duckdb.connect(str(dbt.warehouse)) as connection:
        ids = [row_id for (row_id,) in connection.execute("select row_id from silver.stg_delitos limit 6").fetchall()]
        for row_id, change in zip(ids, BROKEN_SILVER_RULES.values(), strict=True):
            connection.execute(f"update silver.stg_delitos set {change} where row_id = ?", [row_id])

    statuses = dbt("test", "--select", "stg_delitos_column_rules", succeed=False)

    [(test, status)] = statuses.items()
    assert status == "fail", statuses
    results = json.loads((dbt.work / "target" / "run_results.json").read_text())["results"]
    [result] = [result for result in results if result["unique_id"] == test]  # not the on-run-end hook's
    assert result["failures"] == len(BROKEN_SILVER_RULES)  # one row breaks each rule
    with duckdb.connect(str(dbt.warehouse), read_only=True) as connection:
        broken = dict(connection.execute(result["compiled_code"]).fetchall())
    assert broken == dict.fromkeys(BROKEN_SILVER_RULES, 1), test


def test_window_vars_are_validated(built: tuple[DbtRun, dict[str, str]], tmp_path: Path) -> None:
    """A half-given, malformed or empty window is refused when the project is parsed, before any SQL runs."""
    dbt = built[0].copy(tmp_path)
    for bad, error in (
        ({"window_start": "2019-03-01"}, "Pass both window_start and window_end"),
        ({"window_start": "2019-03-01'; drop table x; --", "window_end": "2019-04-01"}, "must be ISO dates"),
        ({"window_start": "2019-04-01", "window_end": "2019-03-01"}, "Empty window"),
    ):
        with pytest.raises(AssertionError, match=error):
            dbt("parse", "--vars", json.dumps(bad))


SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "fakesnow",
    "SNOWFLAKE_USER": "fake",
    "SNOWFLAKE_PASSWORD": "snow",
    "SNOWFLAKE_ROLE": "TRANSFORMER",
    "SNOWFLAKE_DATABASE": "DELITOS",
    "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
}


def load_snowflake_bronze(cursor: Any, database: str, rows: Iterable[BronzeRow]) -> None:
    """(Re)create ``bronze.delitos`` in a Snowflake database (created if missing) with exactly these rows."""
    cursor.execute(f"create database if not exists {database}")
    cursor.execute(f"use database {database}")
    cursor.execute("create schema if not exists bronze")
    cursor.execute(BRONZE_DDL)
    cursor.executemany(
        "insert into bronze.delitos values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'test', current_timestamp)",
        [(*(getattr(row, f) for f in BronzeRow.__dataclass_fields__), row.mes) for row in rows],
    )
    cursor.execute(LEDGER_DDL)
    cursor.execute(LEDGER_ROWS.format(version=SOURCE_VERSION))


def fakesnow_dbt_env(server: dict[str, object], database: str = SNOWFLAKE_ENV["SNOWFLAKE_DATABASE"]) -> dict[str, str]:
    """The profile's ``snowflake`` target pointed at fakesnow's server and one of its databases."""
    return SNOWFLAKE_ENV | {
        "SNOWFLAKE_DATABASE": database,
        "SNOWFLAKE_HOST": str(server["host"]),
        "SNOWFLAKE_PORT": str(server["port"]),
        "SNOWFLAKE_PROTOCOL": str(server["protocol"]),
    }


def test_snowflake_target_parses(tmp_path: Path) -> None:
    """The snowflake target's profile renders from env vars alone and the project parses against it."""
    dbt = DbtRun(warehouse=tmp_path / "unused.duckdb", work=tmp_path)
    dbt("parse", target="snowflake", env=SNOWFLAKE_ENV)
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    silver = manifest["nodes"]["model.delitos.stg_delitos"]
    assert silver["schema"] == "silver"
    assert silver["config"]["materialized"] == "delitos_audited_window"
    assert silver["config"]["unique_key"] == "row_id"


# fakesnow warns on every Arrow fetch dbt-snowflake makes; it says nothing about the project.
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_snowflake_build_on_fakesnow(
    bronze_rows: list[BronzeRow], tmp_path: Path, fakesnow_server: dict[str, object]
) -> None:
    """Full and windowed builds with the snowflake target against fakesnow's server match the recount.

    A slice of the snapshot (2009–2011) keeps it fast: fakesnow runs every statement through a
    SQL translator.
    """
    import snowflake.connector

    rows = [row for row in bronze_rows if row.fecha_hecho < date(2012, 1, 1)]
    connection = snowflake.connector.connect(**fakesnow_server)
    cursor = connection.cursor()

    def load(bronze: list[BronzeRow]) -> None:
        load_snowflake_bronze(cursor, "delitos", bronze)

    load(rows)
    env = fakesnow_dbt_env(fakesnow_server)
    dbt = DbtRun(warehouse=tmp_path / "unused.duckdb", work=tmp_path)
    assert_all_passed(dbt("build", target="snowflake", env=env))
    assert read_gold(cursor) == recount(rows)

    # A windowed run after an upstream delete in 2010-03.
    window = {"window_start": "2010-03-01", "window_end": "2010-04-01"}
    gone = next(row.row_id for row in rows if row.mes == date(2010, 3, 1))
    rows = [row for row in rows if row.row_id != gone]
    load(rows)
    statuses = dbt("build", "--vars", json.dumps(window), *STG_DELITOS_DOWNSTREAM, target="snowflake", env=env)
    assert_all_passed(statuses)
    assert read_gold(cursor) == recount(rows)
    cursor.execute("select count(*) from silver.stg_delitos")
    assert cursor.fetchone()[0] == len(rows)
    connection.close()


# --- The window swap of silver, on both targets. -----------------------------------------------

SWAP_START, SWAP_END = date(2010, 3, 1), date(2010, 4, 1)
SWAP_VARS = json.dumps({"window_start": SWAP_START.isoformat(), "window_end": SWAP_END.isoformat()})
SILVER_MODEL = "model.delitos.stg_delitos"


@dataclass
class SwapTarget:
    """A warehouse whose silver was built from ``rows``, dbt pointed at it, and a way to look into it."""

    name: str
    rows: list[BronzeRow]
    dbt: DbtRun
    env: dict[str, str]
    cursor: Any  # a DB-API cursor on the same warehouse, outside dbt's sessions

    def load(self, rows: list[BronzeRow]) -> None:
        """Replace bronze with these rows."""
        if self.name == "duckdb":
            write_bronze(self.dbt.warehouse, rows)
        else:
            load_snowflake_bronze(self.cursor, self.env["SNOWFLAKE_DATABASE"], rows)

    def execute(self, sql: str) -> list[tuple]:
        """A statement's rows; on DuckDB through a connection closed again, so dbt can open the file."""
        if self.name == "duckdb":
            with duckdb.connect(str(self.dbt.warehouse)) as connection:
                return connection.execute(sql).fetchall()
        self.cursor.execute(sql)
        return self.cursor.fetchall() if self.cursor.description else []

    def silver(self) -> dict[str, tuple]:
        """Every silver row, whole, by row id (the first column); no row id twice."""
        rows = self.execute("select * from silver.stg_delitos")
        by_id = {row[0]: row for row in rows}
        assert len(by_id) == len(rows), "a row id appears twice in silver"
        return by_id

    def gold(self) -> dict[str, list[tuple]]:
        """The rows of every gold table there is, sorted."""
        tables = {
            name
            for (name,) in self.execute(
                "select table_name from information_schema.tables where lower(table_schema) = 'gold'"
            )
        }
        present = [name for name in GOLD_TABLES if name in {table.lower() for table in tables}]
        return {name: sorted(self.execute(f"select * from gold.{name}"), key=repr) for name in present}

    def build_window(self, succeed: bool = True) -> dict[str, str]:
        """``dbt build`` of silver and everything downstream of it for the swap's window."""
        return self.dbt(
            "build", "--vars", SWAP_VARS, *STG_DELITOS_DOWNSTREAM, target=self.name, env=self.env, succeed=succeed
        )


@pytest.fixture(params=["duckdb", "snowflake"])
def swap_target(request: pytest.FixtureRequest, bronze_rows: list[BronzeRow], tmp_path: Path) -> Iterator[SwapTarget]:
    """Silver built in full without a window: on DuckDB from the whole snapshot (a copy of the module's
    build), on fakesnow from 2010 only, in a database of this test's own."""
    if request.param == "duckdb":
        built = request.getfixturevalue("built")
        yield SwapTarget("duckdb", bronze_rows, built[0].copy(tmp_path), {}, None)
        return
    import snowflake.connector
    from snowflake.connector.connection import DEFAULT_CONFIGURATION

    # fakesnow answers a statement that breaks a constraint with HTTP 500, which the connector retries until
    # its network timeout, infinite by default (dbt-snowflake has no setting for it): retry for a second only.
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setitem(DEFAULT_CONFIGURATION, "network_timeout", (1, (type(None), int)))
    server = request.getfixturevalue("fakesnow_server")
    database = f"SWAP_{uuid.uuid4().hex[:12]}".upper()
    rows = [row for row in bronze_rows if row.fecha_hecho.year == 2010]
    connection = snowflake.connector.connect(**server)
    target = SwapTarget(
        "snowflake", rows, DbtRun(tmp_path / "unused.duckdb", tmp_path), fakesnow_dbt_env(server, database), None
    )
    target.cursor = connection.cursor()
    target.load(rows)
    # gold.tendencia_mensual also reads gold.madurez (built from bronze, not from silver): build it too.
    target.dbt("run", "--select", "stg_delitos", "+madurez", target="snowflake", env=target.env)
    yield target
    connection.close()


def in_swap_window(row: BronzeRow) -> bool:
    """Whether a bronze row's date falls in the swap's window."""
    return SWAP_START <= row.fecha_hecho < SWAP_END


# fakesnow warns on every Arrow fetch dbt-snowflake makes; it says nothing about the project.
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_a_window_swap_replaces_exactly_the_window(swap_target: SwapTarget) -> None:
    """A windowed build replaces the window's rows: a row deleted upstream disappears, a changed row is
    replaced, a row whose date moved into the window replaces its old copy, and nothing else changes."""
    target = swap_target
    before = target.silver()
    window = [row for row in target.rows if in_swap_window(row)]
    assert len(window) >= 3, "the snapshot should have rows in the window"
    deleted, changed = window[0].row_id, window[1].row_id
    moved = next(row for row in target.rows if row.fecha_hecho >= SWAP_END)
    new_rows = [
        replace(row, cantidad=row.cantidad * 7)
        if row.row_id == changed
        else replace(row, fecha_hecho=SWAP_START.replace(day=15))
        if row.row_id == moved.row_id
        else row
        for row in target.rows
        if row.row_id != deleted
    ]
    target.load(new_rows)

    assert_all_passed(target.build_window())

    after = target.silver()
    assert set(after) == set(before) - {deleted}
    expected_window = {row.row_id for row in new_rows if in_swap_window(row)}
    assert {row_id for row_id, row in after.items() if SWAP_START <= row[1] < SWAP_END} == expected_window
    assert after[changed][-1] == before[changed][-1] * 7
    assert after[moved.row_id][1] == SWAP_START.replace(day=15)
    untouched = set(before) - expected_window - {deleted}
    assert {row_id: after[row_id] for row_id in untouched} == {row_id: before[row_id] for row_id in untouched}


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_a_window_row_that_breaks_a_rule_reaches_neither_silver_nor_gold(swap_target: SwapTarget) -> None:
    """Silver's new rows are tested before they are published: a window row without a municipality fails
    ``stg_delitos_column_rules``, and silver holds exactly what it held before (every row id, every row), the gold
    tables built from it are skipped, and every gold table stays as it was."""
    target = swap_target
    before, gold_before = target.silver(), target.gold()
    window = [row for row in target.rows if in_swap_window(row)]
    broken = replace(window[0], municipio=None)  # type: ignore[arg-type]
    target.load([broken if row.row_id == broken.row_id else row for row in target.rows if row != window[1]])

    statuses = target.build_window(succeed=False)

    [rules] = [node for node in statuses if ".stg_delitos_column_rules." in node]
    assert statuses[rules] == "fail"
    gold = {node: status for node, status in statuses.items() if node.startswith("model.") and node != SILVER_MODEL}
    assert gold == {f"model.delitos.{name}": "skipped" for name in GOLD_TABLES}
    assert target.silver() == before
    assert target.gold() == gold_before


# --- Gold's contracts, on both targets. ----------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
@pytest.mark.parametrize("target", ["duckdb", "snowflake"])
def test_a_gold_model_off_its_contract_is_not_built(
    target: str, request: pytest.FixtureRequest, bronze_rows: list[BronzeRow], tmp_path: Path
) -> None:
    """A gold model whose column changed type, or that lost a column, fails on either warehouse with dbt's
    contract error, and the analysts' table stays as it was."""
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    retyped, shortened = (
        project / "models" / "gold" / "resumen_general.sql",
        project / "models" / "gold" / "top_municipios.sql",
    )
    retyped.write_text(retyped.read_text().replace("cast(sum(cantidad) as bigint) as casos", "sum(1.5) as casos"))
    shortened.write_text(shortened.read_text().replace("    municipality_names.municipio,\n", ""))
    if target == "duckdb":
        dbt, env, cursor = replace(request.getfixturevalue("built")[0].copy(tmp_path), project=project), {}, None
    else:
        import snowflake.connector

        server = request.getfixturevalue("fakesnow_server")
        database = f"CONTRACT_{uuid.uuid4().hex[:12]}".upper()
        cursor = snowflake.connector.connect(**server).cursor()
        load_snowflake_bronze(cursor, database, [row for row in bronze_rows if row.fecha_hecho.year == 2010])
        dbt, env = DbtRun(tmp_path / "unused.duckdb", tmp_path), fakesnow_dbt_env(server, database)
        assert_all_passed(dbt("run", "--select", "stg_delitos resumen_general top_municipios", target=target, env=env))
        dbt = replace(dbt, project=project)
    gold = ("resumen_general", "top_municipios")
    before = {name: _gold_rows(dbt, cursor, name) for name in gold}

    statuses = dbt("run", "--select", " ".join(gold), target=target, env=env, succeed=False)

    assert statuses == {f"model.delitos.{name}": "error" for name in gold}
    for result in dbt.node_results():
        assert "This model has an enforced contract that failed" in result["message"], result["message"]
    assert {name: _gold_rows(dbt, cursor, name) for name in gold} == before


def _gold_rows(dbt: DbtRun, cursor: Any, name: str) -> list[tuple]:
    """A gold table's rows, sorted, from DuckDB's file or through the Snowflake cursor."""
    if cursor is None:
        return table_rows(dbt.warehouse, f"select * from gold.{name}")
    cursor.execute(f"select * from gold.{name}")
    return sorted(cursor.fetchall())
