"""The whole chain, run the way Dagster runs it, and a look at what the DuckDB warehouse holds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from delitos_platform.defs.bronze.assets import bronze_delitos
from delitos_platform.defs.dbt.assets import dbt_models
from delitos_platform.defs.dbt.project import DBT_EXECUTABLE, DelitosDbtCliResource, delitos_dbt_project
from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.storage import LakeResource, LocalLake, data_key
from delitos_platform.warehouse.duckdb import DuckDBWarehouse
from delitos_platform_tests.conftest import socrata_for

ASSETS = [socrata_delitos, lake_delitos, bronze_delitos, dbt_models]
GOLD_TABLES = ["delitos_por_mes", "delitos_por_departamento", "top_municipios", "tendencia_mensual", "resumen_general"]


def duckdb_resources(server: EmulatorServer, data_dir: Path, **dbt: Any) -> dict[str, Any]:
    """The embedded platform over an emulator: a lake folder and a DuckDB file under ``data_dir``."""
    return {
        "socrata": socrata_for(server),
        "lake": LocalLake(root=str(data_dir / "lake")),
        "warehouse": DuckDBWarehouse(duckdb=DuckDBResource(database=str(data_dir / "warehouse.duckdb"))),
        "dbt": DelitosDbtCliResource(
            **{"project_dir": delitos_dbt_project, "dbt_executable": DBT_EXECUTABLE, "target": "duckdb", **dbt}
        ),
    }


def run_months(
    resources: dict[str, Any], first: str, last: str, selection: list[dg.AssetKey] | None = None
) -> dg.ExecuteInProcessResult:
    """Materialize the chain (or ``selection``) for ``first`` → ``last`` as ONE run."""
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(ASSETS, resources=resources, tags=tags, selection=selection, raise_on_error=False)


def query(database: Path, sql: str) -> list[tuple]:
    """Rows of a query against the warehouse file, opened read-only."""
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def warehouse_contents(database: Path) -> dict[str, list[tuple]]:
    """Every bronze, silver and gold row (without load metadata), sorted: what a re-run must not change."""
    bronze = "SELECT * EXCLUDE (_run_id, _loaded_at) FROM bronze.delitos ORDER BY row_id"
    tables = {"bronze": bronze, "silver": "SELECT * FROM silver.stg_delitos ORDER BY row_id"}
    tables |= {name: f"SELECT * FROM gold.{name} ORDER BY ALL" for name in GOLD_TABLES}
    return {name: query(database, sql) for name, sql in tables.items()}


def check_evaluations(result: dg.ExecuteInProcessResult, check_name: str) -> list[Any]:
    """The evaluations of one asset check in a run."""
    evaluation = dg.DagsterEventType.ASSET_CHECK_EVALUATION
    evaluations = [event.asset_check_evaluation_data for event in result.all_events if event.event_type == evaluation]
    return [evaluation for evaluation in evaluations if evaluation.check_name == check_name]


def source_ids(server: EmulatorServer, where: str) -> set[str]:
    """The ``:id`` of every source row matching a SoQL ``$where``, asked of the emulator through sodapy."""
    rows = socrata_for(server).query(select=":id", where=where, limit=50_000)
    return {row[":id"] for row in rows}


def lake_ids(lake: LakeResource, months: Sequence[str], key: Callable[[str], str] = data_key) -> set[str]:
    """The row ids in the lake's objects of ``months`` (``key``: data, or ``quarantine_key``)."""
    return {row_id for month in months for row_id in from_parquet_bytes(lake.read(key(month)))["row_id"].to_pylist()}


def table_ids(database: Path, table: str, months: Sequence[str] | None = None) -> set[str]:
    """The row ids of a warehouse table (``months``: only the rows of those months, by its ``mes`` column)."""
    sql = f"SELECT row_id FROM {table}" + (" WHERE strftime(mes, '%Y-%m-%d') IN (SELECT unnest(?))" if months else "")
    with duckdb.connect(str(database), read_only=True) as connection:
        return {row_id for (row_id,) in connection.execute(sql, [list(months)] if months else []).fetchall()}
