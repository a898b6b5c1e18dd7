"""The whole chain, run the way Dagster runs it, and a look at what the DuckDB warehouse holds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from delitos_platform.datasets import configured
from delitos_platform.defs.bronze.assets import bronze_delitos
from delitos_platform.defs.dbt.assets import FAMILY_SILVER_ASSETS, dbt_models
from delitos_platform.defs.family import FAMILY, FamilyDataset
from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.emulator import EmulatorServer
from delitos_platform.emulator.synthetic import synthetic_rows
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.storage import LakeResource, LocalLake, data_key, quarantine_key
from delitos_platform.partitions import Window, range_tags
from delitos_platform.row_ids import RowIds
from delitos_platform.transform import DBT_EXECUTABLE, DelitosDbtCliResource, delitos_dbt_project
from delitos_platform.warehouse.duckdb import DuckDBWarehouse
from delitos_platform_tests.conftest import socrata_for

ASSETS = [socrata_delitos, lake_delitos, bronze_delitos, dbt_models]
SILVER_TABLES = ["stg_delitos", "delitos_versiones", "delitos_historial"]
GOLD_TABLES = [
    "delitos_por_mes",
    "delitos_por_departamento",
    "top_municipios",
    "tendencia_mensual",
    "resumen_general",
    "revisiones_por_mes",
    "madurez",
    # The cross-crime gold, rebuilt by the main job with stg_delitos (and every other silver built).
    "casos_por_municipio_mes",
    "resumen_por_delito",
]


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
    resources: dict[str, Any],
    first: str,
    last: str,
    selection: list[dg.AssetKey] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the chain (or ``selection``) for ``first`` → ``last`` as ONE run (in ``instance`` when given)."""
    tags = range_tags(first, last)
    return dg.materialize(
        ASSETS, resources=resources, tags=tags, selection=selection, instance=instance, raise_on_error=False
    )


def family_snapshots(rows: int, dataset_ids: Sequence[str], months: tuple[str, str]) -> dict[str, list[dict]]:
    """Synthetic rows in each dataset's schema, ``rows`` of them over ``months`` (first, last as ``YYYY-MM``)."""
    first, last = months
    return {
        dataset_id: list(synthetic_rows(configured()[dataset_id], rows=rows, start=first, end=last))
        for dataset_id in dataset_ids
    }


def run_family_job(
    member: FamilyDataset,
    resources: dict[str, Any],
    first: str,
    last: str,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """A family dataset's job as the code location defines it (``<slug>_job``), for ``first`` → ``last`` in ONE
    run (its lake, bronze, silver and the cross-crime gold), among every family asset and the dbt models (in
    ``instance`` when given)."""
    definitions = dg.Definitions(
        assets=[dbt_models, *FAMILY_SILVER_ASSETS, *(asset for other in FAMILY for asset in other.assets)],
        asset_checks=[check for other in FAMILY for check in other.checks],
        jobs=[member.job],
        resources=resources,
    )
    job = definitions.resolve_job_def(member.job.name)
    return job.execute_in_process(tags=range_tags(first, last), instance=instance, raise_on_error=False)


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
    """The row ids the source serves for ``where``."""
    return set(source_id_list(server, where))


def source_id_list(server: EmulatorServer, where: str) -> list[str]:
    """The row ids the source serves for ``where``, as served (a doubled id would show twice)."""
    return [row[":id"] for row in socrata_for(server).query(select=":id", where=where, limit=50_000)]


def lake_id_list(lake: LakeResource, months: Sequence[str], key: Callable[[str], str] = data_key) -> list[str]:
    """The row ids the lake's objects of ``months`` hold (``key``: the rows or the quarantine objects)."""
    return [row_id for month in months for row_id in from_parquet_bytes(lake.read(key(month)))["row_id"].to_pylist()]


def lake_ids(lake: LakeResource, months: Sequence[str], key: Callable[[str], str] = data_key) -> set[str]:
    """The set of row ids the lake's objects of ``months`` hold."""
    return set(lake_id_list(lake, months, key))


def table_id_list(database: Path, table: str, months: Sequence[str] | None = None) -> list[str]:
    """The row ids of a warehouse table, one per row (``months``: only the rows of those months, by ``mes``)."""
    sql = f"SELECT row_id FROM {table}" + (" WHERE strftime(mes, '%Y-%m-%d') IN (SELECT unnest(?))" if months else "")
    with duckdb.connect(str(database), read_only=True) as connection:
        return [row_id for (row_id,) in connection.execute(sql, [list(months)] if months else []).fetchall()]


def table_ids(database: Path, table: str, months: Sequence[str] | None = None) -> set[str]:
    """The set of row ids of a warehouse table (``months``: only those months)."""
    return set(table_id_list(database, table, months))


def layer_identities(server: EmulatorServer, lake: LakeResource, database: Path, months: list[str]) -> dict:
    """The row ids of ``months`` on every layer as ``RowIds`` (count and digest, doubles counted): source, lake
    (rows and quarantine together), bronze and silver. Equal figures: the same rows, none lost, none doubled.
    """
    first, last = Window.for_month(months[0]), Window.for_month(months[-1])
    window, bounds = Window(first.start, last.end), f"'{first.start}' AND fecha_hecho < '{last.end}'"
    in_window = f"WHERE fecha_hecho >= {bounds}"
    return {
        "source": RowIds.of(source_id_list(server, window.soql())),
        "lake": RowIds.of(lake_id_list(lake, months) + lake_id_list(lake, months, quarantine_key)),
        "bronze": RowIds.of(table_id_list(database, f"bronze.delitos {in_window}")),
        "silver": RowIds.of(table_id_list(database, f"silver.stg_delitos {in_window}")),
    }
