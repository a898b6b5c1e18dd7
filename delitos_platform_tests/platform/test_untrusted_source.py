"""What the source sends is untrusted: a fault of the portal is held in one sentence and changes nothing published."""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import replace

import dagster as dg
import pytest

from delitos_platform.defs.bronze.assets import RECONCILED_CHECK
from delitos_platform.defs.dbt.assets import GOLD_CHARTS
from delitos_platform.defs.lake.assets import IDS_CHECK
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import data_key, quarantine_key
from delitos_platform.partitions import range_tags
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import (
    ASSETS,
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


HOSTILE = "$\\FRAC{$ | 999 |\n| 00 | [x](javascript:alert(1))"


def test_hostile_rows_cannot_rename_a_department_forge_a_figure_or_fail_the_run(tmp_path, snapshot_rows):
    march = [row for row in snapshot_rows if row["fecha_hecho"].startswith("2019-03")]
    template = {**march[0], "cod_depto": "68", "cod_muni": "68001", "municipio": "BUCARAMANGA"}
    renaming = [{**template, "departamento": "ZZ RENOMBRADO"} for _ in range(10)]  # max() would pick it
    hostile = [{**template, "cod_depto": "99", "cod_muni": "99001", "departamento": HOSTILE, "municipio": HOSTILE}]
    with EmulatorServer(snapshot=_snapshot(tmp_path, [*march, *renaming, *hostile]), port=0) as server:
        result = run_months(duckdb_resources(server, tmp_path), MONTH, MONTH)

    assert result.success  # the name `$\FRAC{$` is drawn as text
    database = tmp_path / "warehouse.duckdb"
    names = "SELECT DISTINCT cod_depto, departamento FROM gold.{} WHERE cod_depto = '68'"
    assert query(database, names.format("delitos_por_departamento")) == [("68", "SANTANDER")]
    assert query(database, names.format("top_municipios")) == [("68", "SANTANDER")]
    [page] = [
        event.materialization.metadata["departments"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["gold", "delitos_por_departamento"])
    ]
    table = page.split("\n\n", 1)[1].splitlines()
    assert len(table) == 2 + 2 and not any(line.startswith("| 00 |") for line in table)  # 68 and 99, nothing forged
    assert "](javascript:" not in page


def test_a_chart_that_cannot_be_drawn_is_a_warning_and_the_table_is_still_materialized(emulator, tmp_path, monkeypatch):
    def broken(*_args: object) -> str:
        raise RuntimeError("no fonts left")

    departments = dg.AssetKey(["gold", "delitos_por_departamento"])
    chart = replace(GOLD_CHARTS[departments], draw=broken)
    monkeypatch.setitem(GOLD_CHARTS, departments, chart)  # a fault, not the subject

    with dg.DagsterInstance.ephemeral() as instance:
        resources, tags = duckdb_resources(emulator, tmp_path), range_tags(MONTH, MONTH)
        result = dg.materialize(ASSETS, resources=resources, tags=tags, instance=instance, raise_on_error=False)
        logs = instance.all_logs(result.run_id)

    assert result.success
    [event] = [
        event
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["gold", "delitos_por_departamento"])
    ]
    assert event.materialization.metadata["chart"].value == "not drawn: RuntimeError: no fonts left"
    warnings = [entry.user_message for entry in logs if entry.level == logging.WARNING]
    expected = "gold/delitos_por_departamento's departments chart could not be drawn (the table is built): RuntimeError"
    assert any(expected in line for line in warnings)


def _snapshot(tmp_path, rows: list[dict[str, str]]):
    path = tmp_path / "snapshot.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(rows, handle)
    return path


def test_a_months_rows_and_quarantine_left_at_two_source_versions_fail_reconciliation(fresh_emulator, tmp_path):
    resources = duckdb_resources(fresh_emulator, tmp_path)
    lake, lake_and_bronze = resources["lake"], [dg.AssetKey(["lake", "delitos"]), dg.AssetKey(["bronze", "delitos"])]
    assert run_months(resources, MONTH, MONTH, lake_and_bronze).success
    bronze = query(tmp_path / "warehouse.duckdb", "SELECT * FROM bronze.delitos ORDER BY row_id")
    stale_quarantine = lake.read(quarantine_key(MONTH))
    fresh_emulator.dataset.revise_month("2019-03", rows=2)  # same rows, new values: counts alone see nothing
    assert run_months(resources, MONTH, MONTH, [dg.AssetKey(["lake", "delitos"])]).success
    lake.write(quarantine_key(MONTH), stale_quarantine)  # as a kill between the two publishes leaves them

    result = run_months(resources, MONTH, MONTH, [dg.AssetKey(["bronze", "delitos"])])

    [evaluation] = check_evaluations(result, RECONCILED_CHECK)
    assert not evaluation.passed
    assert "its rows are of source version 93@" in evaluation.description
    assert "a run stopped between their publishes; run the month again" in evaluation.description
    assert query(tmp_path / "warehouse.duckdb", "SELECT * FROM bronze.delitos ORDER BY row_id") == bronze
