"""The embedded platform end to end: source → lake → bronze → dbt, counts compared at every layer."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS, RECONCILED_CHECK
from delitos_platform.partitions import Window, range_tags
from delitos_platform.transform import DBT_PROJECT_DIR
from delitos_platform.warehouse.duckdb import DuckDBWarehouse
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake, rows_per_month
from delitos_platform_tests.platform.helpers import (
    ASSETS,
    GOLD_TABLES,
    check_evaluations,
    duckdb_resources,
    query,
    run_months,
    warehouse_contents,
)
from delitos_platform_tests.test_charts import assert_readable_png, embedded_png

FIRST, LAST = "2019-01-01", "2019-06-01"
MONTHS = [f"2019-0{month}-01" for month in range(1, 7)]
SILVER = dg.AssetKey(["silver", "stg_delitos"])
GOLD = [dg.AssetKey(["gold", name]) for name in GOLD_TABLES]
# The gold tables built from silver.stg_delitos (the revision history's are built from its own silver models).
GOLD_FROM_STG = [key for key in GOLD if key.path[1] not in ("revisiones_por_mes", "madurez")]


def _recount_por_mes(rows: list[dict[str, str]]) -> list[tuple]:
    """gold.delitos_por_mes recounted in Python: (mes, articulo) → casos, registros."""
    casos, registros = defaultdict(int), Counter()
    for row in rows:
        if row["fecha_hecho"][:7] + "-01" in MONTHS:
            key = (date.fromisoformat(row["fecha_hecho"][:7] + "-01"), row["descripcion_conducta"][9:13])
            casos[key] += int(row["cantidad"])
            registros[key] += 1
    return sorted((mes, articulo, casos[(mes, articulo)], registros[(mes, articulo)]) for mes, articulo in casos)


def assert_every_page_says_its_rows_lineage_and_checks(
    result: dg.ExecuteInProcessResult, database: Path, snapshot_rows: list[dict[str, str]]
) -> None:
    """``dagster/row_count`` on each month of bronze and silver and on every gold table; gold's columns traced
    back to silver and bronze; silver's row-level tests one evaluation per month, the whole-table ones once."""
    events = result.get_asset_materialization_events()
    expected = {month: rows_per_month(snapshot_rows)[month] for month in MONTHS}
    for layer in (BRONZE_DELITOS, SILVER):
        per_month = {e.partition: e.materialization.metadata for e in events if e.asset_key == layer}
        assert {month: meta["dagster/row_count"].value for month, meta in per_month.items()} == expected, layer
    for event in (e for e in events if e.asset_key.path[0] == "gold"):
        [(rows,)] = query(database, f"SELECT count(*) FROM gold.{event.asset_key.path[1]}")
        assert event.materialization.metadata["dagster/row_count"].value == rows, event.asset_key
    [trend] = [e.materialization.metadata for e in events if e.asset_key == dg.AssetKey(["gold", "tendencia_mensual"])]
    lineage = trend["dagster/column_lineage"].value
    assert {dep.asset_key for dep in lineage.deps_by_column["casos"]} == {SILVER}
    # An audited parent is read under its staged name while the run builds and tests: still its own asset.
    [revisions] = [
        e.materialization.metadata for e in events if e.asset_key == dg.AssetKey(["gold", "revisiones_por_mes"])
    ]
    history = {dep.asset_key for dep in revisions["dagster/column_lineage"].value.deps_by_column["casos"]}
    assert history == {dg.AssetKey(["silver", "delitos_versiones"])}
    for stg in (e.materialization.metadata["dagster/column_lineage"].value for e in events if e.asset_key == SILVER):
        assert {dep.asset_key for dep in stg.deps_by_column["cantidad"]} == {BRONZE_DELITOS}  # back to bronze
    row_level = check_evaluations(result, "stg_delitos_column_rules")
    assert sorted(evaluation.partition for evaluation in row_level) == MONTHS
    assert all(evaluation.passed for evaluation in row_level)
    [whole_table] = check_evaluations(result, "unique_stg_delitos_row_id")
    assert whole_table.partition is None and whole_table.passed


def test_every_layer_reconciles_and_a_second_run_changes_nothing(emulator, tmp_path, snapshot_rows):
    database = tmp_path / "warehouse.duckdb"
    resources = duckdb_resources(emulator, tmp_path)

    first = run_months(resources, FIRST, LAST)

    assert first.success
    source = sum(rows_per_month(snapshot_rows)[month] for month in MONTHS)
    [evaluation] = check_evaluations(first, RECONCILED_CHECK)
    assert evaluation.passed
    counts = ("source_rows", "lake_rows", "bronze_rows")
    assert {key: evaluation.metadata[key].value for key in counts} == dict.fromkeys(counts, source)
    assert query(database, "SELECT count(*) FROM bronze.delitos") == [(source,)]
    assert query(database, "SELECT count(*) FROM silver.stg_delitos") == [(source,)]
    assert query(database, "SELECT sum(registros) FROM gold.delitos_por_mes") == [(source,)]
    assert query(database, "SELECT mes, articulo, casos, registros FROM gold.delitos_por_mes ORDER BY ALL") == (
        _recount_por_mes(snapshot_rows)
    )
    assert query(database, "SELECT DISTINCT _run_id FROM bronze.delitos") == [(first.run_id,)]
    assert_every_page_says_its_rows_lineage_and_checks(first, database, snapshot_rows)
    for layer in (dg.AssetKey(["lake", "delitos"]), BRONZE_DELITOS):  # each month says its own rows, once
        events = [event for event in first.get_asset_materialization_events() if event.asset_key == layer]
        assert sorted(event.partition for event in events) == MONTHS
        per_month = {event.partition: event.materialization.metadata["rows"].value for event in events}
        assert per_month == {month: rows_per_month(snapshot_rows)[month] for month in MONTHS}, layer
    gold_events = [event for event in first.get_asset_materialization_events() if event.asset_key.path[0] == "gold"]
    assert sorted(event.asset_key for event in gold_events) == sorted(GOLD)  # once each, not once per month
    assert {event.partition for event in gold_events} == {None}
    gold_views = {event.asset_key.to_user_string(): event.materialization.metadata for event in gold_events}
    charts = {
        "gold/tendencia_mensual": gold_views["gold/tendencia_mensual"]["monthly_trend"].value,
        "gold/delitos_por_mes": gold_views["gold/delitos_por_mes"]["cases_by_article"].value,
        "gold/delitos_por_departamento": gold_views["gold/delitos_por_departamento"]["departments"].value,
    }
    for chart in charts.values():
        assert_readable_png(embedded_png(chart)[1])
    june = query(database, "SELECT casos FROM gold.tendencia_mensual WHERE mes = '2019-06-01'")[0][0]
    assert f"2019-06: {june:,} cases" in charts["gold/tendencia_mensual"]
    most = "SELECT articulo, max(categoria), sum(casos) FROM gold.delitos_por_mes GROUP BY 1 ORDER BY 3 DESC LIMIT 1"
    [(article, category, cases)] = query(database, most)
    assert f"| {article} | {category} | {cases:,} |" in charts["gold/delitos_por_mes"]
    assert "| 68 | SANTANDER |" in charts["gold/delitos_por_departamento"]
    contents = warehouse_contents(database)

    second = run_months(resources, FIRST, LAST)

    assert second.success
    assert warehouse_contents(database) == contents
    assert query(database, "SELECT DISTINCT _run_id FROM bronze.delitos") == [(second.run_id,)]

    # Gold alone, without a partition: dbt rebuilds the gold tables from silver and reads no window.
    gold_alone = dg.materialize(ASSETS, resources=resources, selection=GOLD, raise_on_error=False)

    assert gold_alone.success
    assert {event.asset_key for event in gold_alone.get_asset_materialization_events()} == set(GOLD)
    assert warehouse_contents(database) == contents


def test_a_reconciliation_mismatch_fails_with_the_numbers_and_dbt_does_not_build(
    fresh_emulator, tmp_path, snapshot_rows
):
    resources = duckdb_resources(fresh_emulator, tmp_path)
    assert materialize_lake(resources["socrata"], resources["lake"], "2019-03-01").success
    # The source gains a row after the lake was extracted: the lake no longer holds the whole month.
    march = next(row for row in snapshot_rows if row["fecha_hecho"].startswith("2019-03"))
    assert len(fresh_emulator.dataset.add_rows([march])) == 1

    tags = range_tags("2019-03-01", "2019-03-01")
    result = dg.materialize(
        ASSETS, resources=resources, tags=tags, selection=[BRONZE_DELITOS, SILVER], raise_on_error=False
    )

    assert not result.success
    [evaluation] = check_evaluations(result, RECONCILED_CHECK)
    assert not evaluation.passed
    assert evaluation.description == (
        "1 of 1 months do not reconcile: 2019-03: source 94, lake 93 + quarantined 0, bronze 93"
    )
    assert SILVER not in {event.asset_key for event in result.get_asset_materialization_events()}


def test_a_killed_load_leaves_the_previous_months_intact(emulator, tmp_path):
    resources = duckdb_resources(emulator, tmp_path)
    assert run_months(resources, FIRST, LAST, selection=[dg.AssetKey(["lake", "delitos"]), BRONZE_DELITOS]).success
    warehouse: DuckDBWarehouse = resources["warehouse"]
    window = Window(date(2019, 1, 1), date(2019, 7, 1))
    before = query(tmp_path / "warehouse.duckdb", "SELECT * FROM bronze.delitos ORDER BY row_id")

    # A loader that has deleted the window and inserted its rows, then hangs before its commit until it is killed.
    ready = tmp_path / "deleted-and-loading"
    loader = subprocess.Popen([sys.executable, "-c", KILLED_LOADER, str(tmp_path), str(ready)])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert loader.poll() is None and time.monotonic() < deadline, "the loader never reached its commit"
        time.sleep(0.02)
    os.kill(loader.pid, signal.SIGKILL)
    loader.wait()

    assert query(tmp_path / "warehouse.duckdb", "SELECT * FROM bronze.delitos ORDER BY row_id") == before
    assert sum(warehouse.count_by_month(window).values()) == len(before)


KILLED_LOADER = """
import sys, time
from datetime import date
from pathlib import Path
from dagster_duckdb import DuckDBResource
from delitos_platform.lake.storage import LocalLake
from delitos_platform.partitions import Window, range_tags
from delitos_platform.warehouse.duckdb import DuckDBWarehouse

root, ready = Path(sys.argv[1]), Path(sys.argv[2])

def hang_before_commit(held):
    ready.touch()
    time.sleep(120)

warehouse = DuckDBWarehouse(duckdb=DuckDBResource(database=str(root / "warehouse.duckdb")))
lake = LocalLake(root=str(root / "lake"))
warehouse.load(lake, Window(date(2019, 1, 1), date(2019, 7, 1)), "killed", approve=hang_before_commit)
"""


def test_a_dbt_compilation_error_is_one_clear_message(emulator, tmp_path):
    broken = tmp_path / "dbt_project"
    _copy_dbt_project(broken)
    model = broken / "models" / "silver" / "stg_delitos.sql"
    model.write_text(model.read_text().replace("source('bronze', 'delitos')", "ref('no_such_model')"))
    resources = duckdb_resources(emulator, tmp_path, project_dir=str(broken))

    result = run_months(resources, "2019-03-01", "2019-03-01")

    message = failure_message(result)
    assert message.startswith("dbt build failed: ")
    assert "no_such_model" in message
    assert "\n" not in message


def test_a_failed_silver_skips_gold_and_says_so_in_one_sentence(emulator, tmp_path):
    """A run whose silver model fails rebuilds no gold table from it, and its failure names silver and gold."""
    database = tmp_path / "warehouse.duckdb"
    assert run_months(duckdb_resources(emulator, tmp_path), "2019-03-01", "2019-03-01").success
    before = warehouse_contents(database)
    broken = tmp_path / "dbt_project"
    _copy_dbt_project(broken)
    model = broken / "models" / "silver" / "stg_delitos.sql"
    # A select that fails while the model runs, on every row (a department name is not a number).
    model.write_text(model.read_text().replace("cast(cantidad as bigint)", "cast(departamento as bigint)"))
    resources = duckdb_resources(emulator, tmp_path, project_dir=str(broken))

    result = run_months(resources, "2019-03-01", "2019-03-01", selection=[SILVER, *GOLD_FROM_STG])

    assert not result.success
    assert not result.get_asset_materialization_events()
    assert warehouse_contents(database) == before
    message = failure_message(result)
    assert "\n" not in message
    assert re.fullmatch(
        r"dbt build failed: silver/stg_delitos failed \(Conversion Error: .*SANTANDER.*\), "
        rf"so gold was not rebuilt \({len(GOLD_FROM_STG)} models skipped\)",
        message,
    ), message


def test_a_gold_table_off_its_contract_fails_the_build_in_one_sentence(emulator, tmp_path):
    """Gold's columns and types are the analysts' interface (enforced dbt contracts): a gold model whose column
    changes type, or that loses a column, fails the build, and the one sentence names the tables and dbt's reason."""
    broken = tmp_path / "dbt_project"
    _copy_dbt_project(broken)
    retyped = broken / "models" / "gold" / "resumen_general.sql"  # casos: BIGINT in the contract, now DOUBLE
    retyped.write_text(retyped.read_text().replace("cast(sum(cantidad) as bigint) as casos", "sum(1.5) as casos"))
    shortened = broken / "models" / "gold" / "delitos_por_mes.sql"  # loses departamentos
    shortened.write_text(
        shortened.read_text().replace("cast(count(distinct cod_depto) as bigint) as departamentos,", "")
    )
    resources = duckdb_resources(emulator, tmp_path, project_dir=str(broken))

    result = run_months(resources, "2019-03-01", "2019-03-01")

    assert not result.success
    message = failure_message(result)
    assert "\n" not in message
    assert re.fullmatch(
        r"dbt build failed: gold/(delitos_por_mes|resumen_general), gold/(delitos_por_mes|resumen_general) failed "
        r"\(This model has an enforced contract that failed: (departamentos \(BIGINT\) is missing from the model"
        r"|casos is DECIMAL\(38,1\), the contract says BIGINT)\)",
        message,
    ), message
    assert "gold/delitos_por_mes" in message and "gold/resumen_general" in message


def _copy_dbt_project(target: Path) -> None:
    shutil.copytree(DBT_PROJECT_DIR, target, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))


pytestmark = pytest.mark.usefixtures("warehouse_env")


@pytest.fixture
def warehouse_env(tmp_path, monkeypatch):
    """dbt's profile opens the same DuckDB file as the bronze asset."""
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
