"""The family layer, really run: every configured dataset's silver built from its bronze by the shared macro, and
the cross-crime gold, on DuckDB and on fakesnow, checked by row id and against an independent recount in Python;
and the layer's dbt files generated from the dataset entries by ``delitos prepare``.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from delitos_platform.contract import DATASET_ID
from delitos_platform.datasets import ENTRIES_FOLDER, DatasetConfigError, DatasetEntry, configured, load_entries
from delitos_platform.emulator.synthetic import synthetic_rows
from delitos_platform.family_dbt import FAMILY_FOLDER, family_files, own_columns, silver_model
from delitos_platform.transform import DBT_PROJECT_DIR, DelitosDbtProject, manifest_is_stale, prepare_dbt
from delitos_platform_tests.dbt_project.test_dbt_project import (
    BronzeRow,
    DbtRun,
    _plain,
    assert_all_passed,
    bronze_rows_from_snapshot,
    fakesnow_dbt_env,
    load_snowflake_bronze,
    write_bronze,
)

FAMILY = [entry for entry in configured().values() if entry.id != DATASET_ID]
ROWS_PER_DATASET = 300
FIRST_MONTH, LAST_MONTH = "2019-01", "2019-06"
WINDOW = {"window_start": "2019-03-01", "window_end": "2019-04-01"}
IN_WINDOW = (date(2019, 3, 1), date(2019, 4, 1))
BUILD_FAMILY = ("build", "--selector", "family")
ARROW_TYPES = {"calendar_date": pa.date32(), "text": pa.string(), "number": pa.int64()}
SQL_TYPES = {"calendar_date": "date", "text": "varchar", "number": "bigint"}


def family_bronze(entry: DatasetEntry, seed: int = 7) -> list[dict[str, Any]]:
    """``bronze.<slug>``'s rows as the platform loads them: synthetic rows of the entry, typed, with ids and ``mes``.

    Some names carry stray spaces and lower case, as published rows do, so that silver's cleaning shows."""
    typed: list[dict[str, Any]] = []
    for number, raw in enumerate(
        synthetic_rows(entry, rows=ROWS_PER_DATASET, seed=seed, start=FIRST_MONTH, end=LAST_MONTH)
    ):
        row: dict[str, Any] = {"row_id": f"{entry.slug}-{number:05d}"}
        for name, kind in entry.source_columns.items():
            value = raw[name]
            row[name] = (
                date.fromisoformat(value[:10]) if kind == "calendar_date" else int(value) if kind == "number" else value
            )
        if number % 7 == 0:
            row["municipio"] = f"  {row['municipio'].lower()} "
        typed.append(row | {"mes": row["fecha_hecho"].replace(day=1), "_run_id": "test", "_loaded_at": None})
    return typed


def bronze_schema(entry: DatasetEntry) -> pa.Schema:
    """``bronze.<slug>``'s columns: the row id, the entry's columns typed, the month and the load metadata."""
    columns = [(name, ARROW_TYPES[kind]) for name, kind in entry.source_columns.items()]
    return pa.schema(
        [
            ("row_id", pa.string()),
            *columns,
            ("mes", pa.date32()),
            ("_run_id", pa.string()),
            ("_loaded_at", pa.timestamp("us")),
        ]
    )


def bronze_ddl(entry: DatasetEntry) -> str:
    """``bronze.<slug>`` as the platform creates it, on DuckDB and Snowflake alike."""
    columns = ", ".join(f"{name} {SQL_TYPES[kind]}" for name, kind in entry.source_columns.items())
    return (
        f"create or replace table bronze.{entry.slug} "
        f"(row_id varchar, {columns}, mes date, _run_id varchar, _loaded_at timestamp)"
    )


def write_family_bronze(warehouse: Path, entry: DatasetEntry, rows: list[dict[str, Any]]) -> None:
    """(Re)create ``bronze.<slug>`` in a DuckDB file with exactly these rows."""
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema if not exists bronze")
        connection.execute(bronze_ddl(entry))
        connection.register("family_rows", pa.Table.from_pylist(rows, schema=bronze_schema(entry)))
        connection.execute(f"insert into bronze.{entry.slug} select * from family_rows")


def load_snowflake_family_bronze(cursor: Any, entry: DatasetEntry, rows: list[dict[str, Any]]) -> None:
    """(Re)create ``bronze.<slug>`` in the cursor's Snowflake database with exactly these rows."""
    names = bronze_schema(entry).names[:-1]  # _loaded_at: the load's own clock
    cursor.execute(bronze_ddl(entry))
    cursor.executemany(
        f"insert into bronze.{entry.slug} values ({', '.join(['%s'] * len(names))}, current_timestamp)",
        [tuple(row[name] for name in names) for row in rows],
    )


# --- The independent recount: plain Python over the bronze rows. ----------------------------------


def expected_silver(entry: DatasetEntry, rows: list[dict[str, Any]]) -> dict[str, tuple]:
    """Each family silver row by row id, in the silver's column order, cleaned as the shared macro cleans."""
    return {
        row["row_id"]: (
            row["row_id"],
            row["fecha_hecho"],
            row["mes"],
            row["fecha_hecho"].year,
            row["cod_depto"].strip(),
            row["departamento"].strip().upper(),
            row["cod_muni"].strip(),
            row["municipio"].strip().upper(),
            *(row[name].strip() for name in own_columns(entry)),
            row["cantidad"],
        )
        for row in rows
    }


@dataclass(frozen=True)
class Case:
    """One silver row as the cross-crime gold counts it."""

    dataset: str
    titulo: str
    mes: date
    cod_depto: str
    cod_muni: str
    cantidad: int


def cases(delitos: list[BronzeRow], family: Mapping[str, list[dict[str, Any]]]) -> list[Case]:
    """Every row of every dataset, as the gold counts it."""
    entries = configured()
    found = [
        Case(DATASET_ID, entries[DATASET_ID].title, r.mes, r.cod_depto.strip(), r.cod_muni.strip(), r.cantidad)
        for r in delitos
    ]
    for dataset, rows in family.items():
        title = entries[dataset].title
        found += [
            Case(dataset, title, r["mes"], r["cod_depto"].strip(), r["cod_muni"].strip(), r["cantidad"]) for r in rows
        ]
    return found


def recount(delitos: list[BronzeRow], family: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[tuple]]:
    """Both cross-crime gold tables recomputed from the bronze rows, sorted, in the contract's column order."""
    by_place: dict[tuple, int] = defaultdict(int)
    by_crime: dict[tuple, list[Case]] = defaultdict(list)
    for case in cases(delitos, family):
        by_place[(case.dataset, case.mes, case.cod_depto, case.cod_muni)] += case.cantidad
        by_crime[(case.dataset, case.titulo)].append(case)
    resumen = [
        (
            *key,
            len(group),
            sum(c.cantidad for c in group),
            min(c.mes for c in group),
            max(c.mes for c in group),
            len({c.cod_muni for c in group}),
        )
        for key, group in by_crime.items()
    ]
    return {
        "casos_por_municipio_mes": sorted((*key, total) for key, total in by_place.items()),
        "resumen_por_delito": sorted(resumen),
    }


GOLD_COLUMNS = {
    "casos_por_municipio_mes": "dataset, mes, cod_depto, cod_muni, casos",
    "resumen_por_delito": "dataset, titulo, registros, casos, primer_mes, ultimo_mes, municipios",
}


def read_family(cursor: Any) -> tuple[dict[str, dict[str, tuple]], dict[str, list[tuple]]]:
    """Every family silver by row id, and both cross-crime gold tables sorted, through a DB-API cursor."""
    silver = {}
    for entry in FAMILY:
        cursor.execute(f"select * from silver.{silver_model(entry)}")
        silver[entry.id] = {row[0]: tuple(_plain(value) for value in row) for row in cursor.fetchall()}
    gold = {}
    for name, columns in GOLD_COLUMNS.items():
        cursor.execute(f"select {columns} from gold.{name}")
        gold[name] = sorted(tuple(_plain(value) for value in row) for row in cursor.fetchall())
    return silver, gold


def read_duckdb(warehouse: Path) -> tuple[dict[str, dict[str, tuple]], dict[str, list[tuple]]]:
    """:func:`read_family` on a DuckDB file."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return read_family(connection.cursor())


# --- Fixtures. ------------------------------------------------------------------------------------


@dataclass
class FamilyWarehouse:
    """A DuckDB warehouse with every dataset in bronze and the family built, and the rows it was built from."""

    dbt: DbtRun
    delitos: list[BronzeRow]
    family: dict[str, list[dict[str, Any]]]
    statuses: dict[str, str]

    def copy(self, destination: Path) -> FamilyWarehouse:
        """The same warehouse in another folder, free to be changed."""
        return FamilyWarehouse(self.dbt.copy(destination), self.delitos, dict(self.family), self.statuses)


@pytest.fixture(scope="module")
def family_built(tmp_path_factory: pytest.TempPathFactory, snapshot_rows: list[dict[str, str]]) -> FamilyWarehouse:
    """The shipped 4v6r-wu98 rows and a few hundred synthetic rows of each family dataset in bronze; 4v6r-wu98's
    silver built as Dagster builds it, then the family layer."""
    work = tmp_path_factory.mktemp("family")
    dbt = DbtRun(warehouse=work / "warehouse.duckdb", work=work)
    delitos = bronze_rows_from_snapshot(snapshot_rows)
    write_bronze(dbt.warehouse, delitos)
    family = {entry.id: family_bronze(entry) for entry in FAMILY}
    for entry in FAMILY:
        write_family_bronze(dbt.warehouse, entry, family[entry.id])
    assert_all_passed(dbt("run", "--select", "stg_delitos"))
    return FamilyWarehouse(dbt, delitos, family, dbt(*BUILD_FAMILY))


# --- Tests. ---------------------------------------------------------------------------------------


def test_every_family_silver_is_its_bronze_by_row_id_and_the_gold_is_the_recount(
    family_built: FamilyWarehouse,
) -> None:
    """Every family dataset's silver holds exactly its bronze rows (by row id, every value cleaned), every test of the
    layer passed, and both cross-crime gold tables equal a recount in Python over the four datasets' bronze."""
    assert_all_passed(family_built.statuses)
    models = {node for node in family_built.statuses if node.startswith("model.")}
    assert models == {
        *(f"model.delitos.{silver_model(entry)}" for entry in FAMILY),
        "model.delitos.casos_por_municipio_mes",
        "model.delitos.resumen_por_delito",
    }
    silver, gold = read_duckdb(family_built.dbt.warehouse)
    for entry in FAMILY:
        assert silver[entry.id] == expected_silver(entry, family_built.family[entry.id]), entry.id
    assert gold == recount(family_built.delitos, family_built.family)
    assert {row[0] for row in gold["resumen_por_delito"]} == set(configured())


def test_a_windowed_family_build_replaces_exactly_the_window(family_built: FamilyWarehouse, tmp_path: Path) -> None:
    """Upstream deletes and changes in one month of Homicidios reach its silver and the gold through a windowed
    build; its rows outside the window, and every other dataset, stay as they were."""
    built = family_built.copy(tmp_path)
    homicidios = next(entry for entry in FAMILY if entry.slug == "homicidios")
    rows = built.family[homicidios.id]
    window = [row["row_id"] for row in rows if IN_WINDOW[0] <= row["fecha_hecho"] < IN_WINDOW[1]]
    assert len(window) > 10, "the synthetic rows should reach the window's month"
    deleted, changed = set(window[::4]), set(window[1::4])
    built.family[homicidios.id] = [
        row | {"cantidad": row["cantidad"] * 7} if row["row_id"] in changed else row
        for row in rows
        if row["row_id"] not in deleted
    ]
    write_family_bronze(built.dbt.warehouse, homicidios, built.family[homicidios.id])
    before, _ = read_duckdb(built.dbt.warehouse)

    assert_all_passed(built.dbt(*BUILD_FAMILY, "--vars", json.dumps(WINDOW)))

    silver, gold = read_duckdb(built.dbt.warehouse)
    assert silver[homicidios.id] == expected_silver(homicidios, built.family[homicidios.id])
    assert not deleted & set(silver[homicidios.id])
    assert {dataset: rows for dataset, rows in silver.items() if dataset != homicidios.id} == {
        dataset: rows for dataset, rows in before.items() if dataset != homicidios.id
    }
    assert gold == recount(built.delitos, built.family)


def test_a_broken_family_row_fails_its_column_rules_and_publishes_nothing(
    family_built: FamilyWarehouse, tmp_path: Path
) -> None:
    """An Extorsión row of the window without a municipality fails ``stg_extorsion_column_rules``: its silver holds
    what it held, the gold tables are skipped and stay as they were."""
    built = family_built.copy(tmp_path)
    extorsion = next(entry for entry in FAMILY if entry.slug == "extorsion")
    rows = built.family[extorsion.id]
    broken = next(row["row_id"] for row in rows if IN_WINDOW[0] <= row["fecha_hecho"] < IN_WINDOW[1])
    changed = [row | {"municipio": None} if row["row_id"] == broken else row for row in rows]
    write_family_bronze(built.dbt.warehouse, extorsion, changed)
    before = read_duckdb(built.dbt.warehouse)

    statuses = built.dbt(*BUILD_FAMILY, "--vars", json.dumps(WINDOW), succeed=False)

    [rules] = [node for node in statuses if ".stg_extorsion_column_rules." in node]
    assert statuses[rules] == "fail"
    assert (
        statuses["model.delitos.casos_por_municipio_mes"] == statuses["model.delitos.resumen_por_delito"] == "skipped"
    )
    assert read_duckdb(built.dbt.warehouse) == before


# fakesnow warns on every Arrow fetch dbt-snowflake makes; it says nothing about the project.
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_the_family_builds_on_snowflake_and_matches_the_recount(
    snapshot_rows: list[dict[str, str]], tmp_path: Path, fakesnow_server: dict[str, object]
) -> None:
    """On fakesnow the family silvers hold their bronze rows by row id and the gold equals the recount too.

    4v6r-wu98's 2019 rows and fewer family rows keep it fast: fakesnow runs every statement through a translator."""
    import snowflake.connector

    delitos = [row for row in bronze_rows_from_snapshot(snapshot_rows) if row.fecha_hecho.year == 2019]
    family = {entry.id: family_bronze(entry)[:60] for entry in FAMILY}
    database = f"FAMILY_{uuid.uuid4().hex[:12]}".upper()
    connection = snowflake.connector.connect(**fakesnow_server)
    cursor = connection.cursor()
    load_snowflake_bronze(cursor, database, delitos)
    for entry in FAMILY:
        load_snowflake_family_bronze(cursor, entry, family[entry.id])
    dbt = DbtRun(warehouse=tmp_path / "unused.duckdb", work=tmp_path)
    env = fakesnow_dbt_env(fakesnow_server, database)
    assert_all_passed(dbt("run", "--select", "stg_delitos", target="snowflake", env=env))
    assert_all_passed(dbt(*BUILD_FAMILY, target="snowflake", env=env))

    silver, gold = read_family(cursor)
    connection.close()
    for entry in FAMILY:
        assert silver[entry.id] == expected_silver(entry, family[entry.id]), entry.id
    assert gold == recount(delitos, family)


# --- Generated from the entries. ------------------------------------------------------------------


def test_the_committed_family_files_are_those_the_entries_generate() -> None:
    """The family layer's files in the repository are exactly what the shipped entries generate (``delitos prepare``
    rewrote none of them): a fresh clone parses with plain dbt, and a review sees every generated change."""
    generated = family_files(configured())
    on_disk = {
        path.relative_to(DBT_PROJECT_DIR): path.read_text(encoding="utf-8")
        for path in (DBT_PROJECT_DIR / FAMILY_FOLDER).rglob("*")
        if path.is_file() and path.relative_to(DBT_PROJECT_DIR) in generated
    }
    assert on_disk == generated


SECUESTRO = """\
id: d7zw-hpf4
title: Secuestro
slug: secuestro
date_column: fecha_hecho
first_month: 2010-01
attribution: "Source: Policía Nacional de Colombia, datos.gov.co dataset d7zw-hpf4, CC BY-SA 4.0"
columns:
  - {name: fecha_hecho, type: calendar_date}
  - {name: cod_depto, type: text}
  - {name: departamento, type: text}
  - {name: cod_muni, type: text}
  - {name: municipio, type: text}
  - {name: tipo_delito, type: text, examples: [SECUESTRO SIMPLE, SECUESTRO EXTORSIVO]}
  - {name: cantidad, type: number}
"""


@pytest.fixture
def project_copy(tmp_path: Path) -> Iterator[tuple[DelitosDbtProject, Path]]:
    """A copy of the dbt project (never prepared) and of the entries folder."""
    folder = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, folder, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    entries = tmp_path / "datasets"
    shutil.copytree(ENTRIES_FOLDER, entries, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    yield DelitosDbtProject(project_dir=folder, profiles_dir=folder, target="duckdb"), entries


def test_an_added_entry_gets_its_silver_and_joins_the_gold_and_a_removed_one_leaves(
    project_copy: tuple[DelitosDbtProject, Path],
) -> None:
    """Adding an entry and preparing writes its source, its silver model and its place in the gold's union, and
    dbt parses them; removing it and preparing again removes them, and the manifest with them."""
    project, entries = project_copy
    silver = Path(project.project_dir) / FAMILY_FOLDER / "silver"
    prepare_dbt(project, entries_folder=entries)
    assert not manifest_is_stale(project, entries)

    (entries / "d7zw-hpf4.yaml").write_text(SECUESTRO, encoding="utf-8")
    assert manifest_is_stale(project, entries)
    assert prepare_dbt(project, entries_folder=entries) is True
    assert {"secuestro.yml", "stg_secuestro.sql"} <= {path.name for path in silver.iterdir()}
    nodes = json.loads(project.manifest_path.read_text())["nodes"]
    model = nodes["model.delitos.stg_secuestro"]
    assert model["fqn"] == ["delitos", "family", "silver", "stg_secuestro"]
    assert model["config"]["materialized"] == "delitos_audited_window"
    assert "tipo_delito" in model["columns"]
    assert "model.delitos.stg_secuestro" in nodes["model.delitos.familia_casos"]["depends_on"]["nodes"]
    assert any(".stg_secuestro_column_rules." in node for node in nodes)

    (entries / "d7zw-hpf4.yaml").unlink()
    assert prepare_dbt(project, entries_folder=entries) is True
    assert not {"secuestro.yml", "stg_secuestro.sql"} & {path.name for path in silver.iterdir()}
    nodes = json.loads(project.manifest_path.read_text())["nodes"]
    assert "model.delitos.stg_secuestro" not in nodes
    assert "model.delitos.stg_secuestro" not in nodes["model.delitos.familia_casos"]["depends_on"]["nodes"]
    # Unchanged entries write nothing: the manifest stays fresh.
    assert prepare_dbt(project, entries_folder=entries) is False


def test_dagster_builds_every_model_and_test_of_the_family_layer_each_in_one_dbt_asset() -> None:
    """Each family silver is a dbt asset of its own; the cross-crime gold is in 4v6r-wu98's (``dbt_models``); every
    model and test of the family layer is one of theirs, and no node is in two."""
    from delitos_platform.defs.dbt.assets import FAMILY_SILVER_ASSETS, dbt_models

    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    family = [node for node in manifest["nodes"].values() if node["fqn"][:2] == ["delitos", "family"]]
    models = {node["name"] for node in family if node["resource_type"] == "model" and node["name"] != "familia_casos"}
    tests = {node["name"] for node in family if node["resource_type"] == "test"}
    dbt_assets = [dbt_models, *FAMILY_SILVER_ASSETS]
    keys = [key.path[-1] for assets in dbt_assets for key in assets.keys]
    checks = [check.name for assets in dbt_assets for check in assets.check_keys]

    assert {"stg_homicidios", "casos_por_municipio_mes", "resumen_por_delito"} <= models
    assert models <= set(keys) and len(keys) == len(set(keys))
    assert tests <= set(checks) and len(checks) == len(set(checks))
    assert {key.path[-1] for key in dbt_models.keys} >= {"stg_delitos", "casos_por_municipio_mes"}
    assert {key.path[-1] for assets in FAMILY_SILVER_ASSETS for key in assets.keys} == {
        "stg_homicidios",
        "stg_hurto_personas",
        "stg_extorsion",
    }


def test_a_gold_total_off_a_silvers_is_a_failed_test(family_built: FamilyWarehouse, tmp_path: Path) -> None:
    """``matches_totals`` by dataset compares each crime's gold totals with its silver: one Hurto a personas row that
    counts more cases after gold was built fails both gold tables' totals tests, and no other test."""
    built = family_built.copy(tmp_path)
    hurto = next(entry for entry in FAMILY if entry.slug == "hurto_personas")
    with duckdb.connect(str(built.dbt.warehouse)) as connection:
        connection.execute(
            f"update silver.{silver_model(hurto)} set cantidad = cantidad + 1 where row_id = ?",
            [built.family[hurto.id][0]["row_id"]],
        )

    statuses = built.dbt("test", "--selector", "family", succeed=False)

    failed = {node.split(".")[2] for node, status in statuses.items() if status != "pass"}
    assert failed == {
        "matches_totals_casos_por_municipio_mes_dataset__ref_familia_casos___None",
        "matches_totals_resumen_por_delito_dataset__ref_familia_casos_",
    }


def test_an_entry_without_the_familys_columns_is_one_sentence(tmp_path: Path) -> None:
    """An entry missing a column the family's silver needs is refused naming the entry and the column."""
    entries = tmp_path / "datasets"
    entries.mkdir()
    (entries / "d7zw-hpf4.yaml").write_text(SECUESTRO.replace("  - {name: cod_muni, type: text}\n", ""))
    with pytest.raises(DatasetConfigError, match=r"^dataset entry d7zw-hpf4: .* it has no cod_muni$"):
        family_files(load_entries(entries))
