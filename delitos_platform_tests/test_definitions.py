"""The code location: one Definitions, every layer's assets, resources chosen by DELITOS_ENV."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from delitos_platform.definitions import defs
from delitos_platform.defs.dbt.assets import dbt_models
from delitos_platform.environment import (
    PROD_SETTINGS,
    build_resources,
    current_environment,
    data_dir,
    lake_resource,
    warehouse_path,
)
from delitos_platform.transform import DBT_EXECUTABLE, delitos_dbt_project
from delitos_platform.volume import VolumeGuard
from delitos_platform_tests.processes.helpers import REPO_ROOT, venv_tool

EXPECTED_ASSETS = {
    "socrata/delitos_informaticos",
    "lake/delitos",
    "bronze/delitos",
    "silver/stg_delitos",
    "silver/delitos_versiones",
    "silver/delitos_historial",
    "gold/delitos_por_mes",
    "gold/delitos_por_departamento",
    "gold/top_municipios",
    "gold/tendencia_mensual",
    "gold/resumen_general",
    "gold/revisiones_por_mes",
    "gold/madurez",
}
# The cross-crime gold: every configured dataset's silver, 4v6r-wu98's included, side by side.
CROSS_CRIME_GOLD = {"gold/casos_por_municipio_mes", "gold/resumen_por_delito"}
# Every other configured dataset: its source, lake, bronze and silver assets, built from its entry (defs/family.py).
FAMILY_SLUGS = ["homicidios", "hurto_personas", "extorsion"]
FAMILY_ASSETS = {f"{layer}/{slug}" for slug in FAMILY_SLUGS for layer in ("socrata", "lake", "bronze")} | {
    f"silver/stg_{slug}" for slug in FAMILY_SLUGS
}


def test_the_lineage_runs_from_the_socrata_source_to_every_gold_table():
    graph = defs().resolve_asset_graph()

    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == (
        EXPECTED_ASSETS | CROSS_CRIME_GOLD | FAMILY_ASSETS
    )
    upstream = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert upstream["lake/delitos"] == {"socrata/delitos_informaticos"}
    assert upstream["bronze/delitos"] == {"lake/delitos"}
    assert upstream["silver/stg_delitos"] == {"bronze/delitos"}
    assert upstream["silver/delitos_versiones"] == {"bronze/delitos"}  # bronze's rows and its load ledger
    assert upstream["silver/delitos_historial"] == {"silver/delitos_versiones"}
    history = {"gold/revisiones_por_mes", "gold/madurez"}
    assert all("silver/stg_delitos" in upstream[key] for key in EXPECTED_ASSETS - history if key.startswith("gold/"))
    assert upstream["gold/revisiones_por_mes"] == {"silver/delitos_versiones"}
    assert upstream["gold/madurez"] == {"gold/revisiones_por_mes", "bronze/delitos"}
    assert upstream["gold/tendencia_mensual"] == {"silver/stg_delitos", "gold/madurez", "bronze/delitos"}
    for slug in FAMILY_SLUGS:
        assert upstream[f"lake/{slug}"] == {f"socrata/{slug}"}
        assert upstream[f"bronze/{slug}"] == {f"lake/{slug}"}
        assert upstream[f"silver/stg_{slug}"] == {f"bronze/{slug}"}
    for key in CROSS_CRIME_GOLD:
        assert upstream[key] == {"silver/stg_delitos", *(f"silver/stg_{slug}" for slug in FAMILY_SLUGS)}


def test_the_main_job_runs_every_asset_of_4v6r_wu98_and_the_cross_crime_gold():
    job = defs().resolve_job_def("delitos_main_job")
    selected = job.asset_layer.selected_asset_keys

    assert {key.to_user_string() for key in selected} == (
        EXPECTED_ASSETS - {"socrata/delitos_informaticos"} | CROSS_CRIME_GOLD
    )
    assert {node.name for node in job.graph.node_defs} == {
        "lake__delitos",
        "lake__delitos_dataset_ledger_balances",
        "bronze__delitos",
        "dbt_models",
    }


@pytest.mark.parametrize("slug", FAMILY_SLUGS)
def test_each_family_dataset_has_a_job_of_its_own_monthly_from_its_first_month(slug):
    definitions = defs()
    job = definitions.resolve_job_def(f"{slug}_job")
    lake = definitions.resolve_assets_def(dg.AssetKey(["lake", slug]))

    assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == {
        f"lake/{slug}",
        f"bronze/{slug}",
        f"silver/stg_{slug}",
        *CROSS_CRIME_GOLD,
    }
    # Its own dbt asset builds its silver; 4v6r-wu98's builds the cross-crime gold after it.
    assert {node.name for node in job.graph.node_defs} == {
        f"lake__{slug}",
        f"lake__{slug}_dataset_ledger_balances",
        f"bronze__{slug}",
        f"dbt_{slug}",
        "dbt_models",
    }
    assert lake.partitions_def.get_first_partition_key() == "2010-01-01"
    assert lake.backfill_policy == dg.BackfillPolicy.single_run()
    assert {lake.group_names_by_key[key] for key in lake.keys} == {slug}


# The checks that must stop the next layer: (asset the check sits on, the layer it stops).
GATES = {
    ("lake/delitos", "schema_matches_contract"): "bronze/delitos",
    ("lake/delitos", "row_ids_unique"): "bronze/delitos",
    ("bronze/delitos", "reconciled_with_source"): "silver/stg_delitos",
    ("bronze/delitos", "values_valid"): "silver/stg_delitos",
    **{(f"lake/{slug}", "schema_matches_contract"): f"bronze/{slug}" for slug in FAMILY_SLUGS},
    **{(f"lake/{slug}", "row_ids_unique"): f"bronze/{slug}" for slug in FAMILY_SLUGS},
    **{(f"lake/{slug}", "volume_plausible"): f"bronze/{slug}" for slug in FAMILY_SLUGS},
}


def test_a_failed_gate_check_stops_the_next_layer_and_dbt_tests_are_checks():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    checks = {key.name for key in graph.asset_check_keys}

    for (asset, check), stopped in GATES.items():
        key = dg.AssetKey.from_user_string(asset)
        specs = {spec.name: spec for spec in definitions.resolve_assets_def(key).check_specs}
        # Declared on the asset's own definition, the check runs in the asset's step; blocking, a failure
        # there skips every downstream step of the run.
        assert check in specs and specs[check].asset_key == key and specs[check].blocking, (asset, check)
        downstream = dg.AssetKey.from_user_string(stopped)
        assert key in graph.get(downstream).parent_keys
        # The stopped layer is another step: the check has finished before it could start.
        assert (
            definitions.resolve_assets_def(downstream).node_def.name
            != definitions.resolve_assets_def(key).node_def.name
        )
    assert {"stg_delitos_column_rules", "unique_stg_delitos_row_id"} <= checks
    assert len(checks) > 20


def test_local_and_prod_choose_their_resources():
    local = build_resources({"DELITOS_DATA_DIR": "/srv/delitos"})
    settings = dict.fromkeys([*PROD_SETTINGS, "SNOWFLAKE_PASSWORD"], "set")
    prod = build_resources({**settings, "DELITOS_ENV": "prod", "DELITOS_LAKE_PREFIX": "raw"})

    assert {name: type(resource).__name__ for name, resource in local.items()} == {
        "socrata": "SocrataResource",
        "lake": "LocalLake",
        "warehouse": "DuckDBWarehouse",
        "dbt": "DelitosDbtCliResource",
        "alerts": "AlertsResource",
    }
    assert local["lake"].root == "/srv/delitos/lake"
    assert local["socrata"].url == "https://www.datos.gov.co" and local["socrata"].app_token is None
    assert type(prod["lake"]).__name__ == "S3Lake" and prod["lake"].prefix == "raw"
    assert type(prod["warehouse"]).__name__ == "SnowflakeWarehouse"
    assert prod["dbt"].target == "snowflake"


def test_settings_have_sane_defaults_and_refuse_nonsense():
    assert current_environment({}) == "local"
    assert warehouse_path({"DELITOS_DATA_DIR": "/srv/delitos"}).as_posix() == "/srv/delitos/warehouse.duckdb"
    assert data_dir({}).name == "data"
    with pytest.raises(ValueError, match="DELITOS_ENV must be one of local, prod, not 'staging'"):
        current_environment({"DELITOS_ENV": "staging"})


def test_the_volume_guards_thresholds_are_settings_with_sane_defaults():
    assert lake_resource("local", {}).volume_guard() == VolumeGuard(month_drop=0.5, month_min_rows=20, window_drop=0.1)
    settings = {"DELITOS_HOLD_MONTH_DROP": "0.8", "DELITOS_HOLD_MONTH_MIN_ROWS": "100"}
    settings["DELITOS_HOLD_WINDOW_DROP"] = "0.3"
    assert lake_resource("local", settings).volume_guard() == VolumeGuard(0.8, 100, 0.3)
    with pytest.raises(ValueError, match="DELITOS_HOLD_WINDOW_DROP must be a share between 0 and 1, not '10%'"):
        lake_resource("local", {"DELITOS_HOLD_WINDOW_DROP": "10%"})


def test_the_dbt_resource_knows_the_version_the_dbt_executable_reports():
    # The resource skips `dbt --version` on every run: the executable must be the installed dbt-core.
    reported = subprocess.run([DBT_EXECUTABLE, "--version"], capture_output=True, text=True, check=True).stdout
    resource = build_resources({})["dbt"]

    assert f"installed: {resource._cli_version}" in reported


def test_dagsters_dg_cli_checks_the_project_from_the_repository_root():
    checked = subprocess.run(
        [venv_tool("dg"), "check", "defs"], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def _dbt_specs() -> dict[str, dg.AssetSpec]:
    """The silver and gold assets' specs, by asset key."""
    return {spec.key.to_user_string(): spec for spec in dbt_models.specs}


def test_dbt_assets_are_described_by_their_model_with_the_sql_one_click_away():
    """The catalog shows each model's dbt description alone; its SQL is in the asset's metadata, and its file is a
    code reference."""
    nodes = json.loads(delitos_dbt_project.manifest_path.read_text())["nodes"]
    specs = _dbt_specs()

    assert set(specs) == {key for key in EXPECTED_ASSETS | CROSS_CRIME_GOLD if key.startswith(("silver/", "gold/"))}
    for key, spec in specs.items():
        node = nodes[f"model.delitos.{key.split('/')[1]}"]
        assert spec.description and spec.description == node["description"].strip(), key
        assert "select" not in spec.description.lower(), key
        sql = spec.metadata["sql"]
        assert isinstance(sql, dg.MarkdownMetadataValue), key
        assert sql.value.startswith("```sql\n") and sql.value.endswith("\n```"), key
        assert node["raw_code"].strip() in sql.value, key
        [reference] = spec.metadata["dagster/code_references"].code_references
        assert Path(reference.file_path) == delitos_dbt_project.project_dir / node["original_file_path"], key


def test_every_silver_and_gold_column_has_a_type():
    """The column schema the UI shows carries each column's type (``?`` is dagster-dbt's word for none)."""
    for key, spec in _dbt_specs().items():
        schema = spec.metadata["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchema), key
        columns = schema.columns
        assert columns, key
        untyped = [column.name for column in columns if column.type in ("", "?")]
        assert not untyped, f"{key}: {untyped} have no data_type in schema.yml"
