"""Every configured dataset but 4v6r-wu98 gets its source → lake → bronze chain from its entry, exact by row id.

One emulator serves the three family datasets (small synthetic snapshots over two months, plus a few rows the
lake must refuse or leave out of its calendar); each test runs a dataset's own job on the embedded warehouse.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_duckdb import DuckDBResource

from delitos_platform.datasets import ENTRIES_FOLDER, DatasetConfigError, DatasetEntry, configured, load_entries
from delitos_platform.defs.family import FAMILY, FamilyDataset, family
from delitos_platform.defs.lake.assets import SCHEMA_CHECK
from delitos_platform.emulator import EmulatorServer
from delitos_platform.emulator.synthetic import synthetic_rows
from delitos_platform.lake.dataset import LakeDataset
from delitos_platform.lake.provenance import source_refusal
from delitos_platform.lake.storage import LakeError, LocalLake, data_key, out_of_calendar_key, quarantine_key
from delitos_platform.partitions import range_tags
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.duckdb import DuckDBWarehouse
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import check_evaluations, lake_id_list, query, table_id_list

DATASETS = ["m8fd-ahd9", "4rxi-8m8d", "q2ib-t9am"]
MONTHS = ["2024-01-01", "2024-02-01"]
ROWS = 80


def _snapshot(dataset_id: str) -> list[dict[str, str]]:
    """Synthetic rows of two months, plus one row of each kind the lake keeps apart."""
    entry = configured()[dataset_id]
    rows = list(synthetic_rows(entry, rows=ROWS, start="2024-01", end="2024-02"))
    bad_code = {**rows[0], "cod_muni": "999"}  # not 5 digits: quarantined in its month
    # Before the family's first month (2010-01), though inside 4v6r-wu98's calendar: out of this one's.
    too_early = {**rows[1], "fecha_hecho": "2008-06-10T00:00:00.000"}
    undated = {key: value for key, value in rows[2].items() if key != "fecha_hecho"}
    return [*rows, bad_code, too_early, undated]


@pytest.fixture(scope="module")
def family_portal() -> Iterator[EmulatorServer]:
    """One emulator for the module, serving the three datasets; tests only read it."""
    with EmulatorServer(datasets={dataset_id: _snapshot(dataset_id) for dataset_id in DATASETS}, port=0) as server:
        yield server


def _member(dataset_id: str, members: list[FamilyDataset] = FAMILY) -> FamilyDataset:
    return next(member for member in members if member.dataset.id == dataset_id)


def _resources(server: EmulatorServer, data_dir: Path) -> dict[str, object]:
    return {
        "socrata": socrata_for(server),  # 4v6r-wu98's resource: each family asset reads its own id through it
        "lake": LocalLake(root=str(data_dir / "lake")),
        "warehouse": DuckDBWarehouse(duckdb=DuckDBResource(database=str(data_dir / "warehouse.duckdb"))),
    }


def _run_job(member: FamilyDataset, resources: dict[str, object]) -> dg.ExecuteInProcessResult:
    """The dataset's job, as the code location defines it, over the two months in ONE run."""
    definitions = dg.Definitions(
        assets=member.assets, asset_checks=member.checks, jobs=[member.job], resources=resources
    )
    job = definitions.resolve_job_def(member.job.name)
    return job.execute_in_process(tags=range_tags(MONTHS[0], MONTHS[-1]), raise_on_error=False)


def _evaluations(result: dg.ExecuteInProcessResult) -> list:
    evaluation = dg.DagsterEventType.ASSET_CHECK_EVALUATION
    return [event.asset_check_evaluation_data for event in result.all_events if event.event_type == evaluation]


def _source_ids(server: EmulatorServer, dataset_id: str) -> list[str]:
    rows = socrata_for(server, dataset_id=dataset_id).query(select=":id", where="1 = 1", limit=50_000)
    return [row[":id"] for row in rows]


def _contents(lake: LocalLake, database: Path, table: str) -> tuple[dict[str, bytes], list[tuple]]:
    """Every object of the lake (bytes) and every row of the bronze table but its load metadata."""
    root = Path(lake.root)
    objects = {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.parquet"))}
    rows = query(database, f"SELECT * EXCLUDE (_run_id, _loaded_at) FROM {table} ORDER BY row_id")
    return objects, rows


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_a_family_datasets_job_puts_every_source_row_in_one_place_and_bronze_holds_the_lakes_ids(
    family_portal: EmulatorServer, tmp_path: Path, dataset_id: str
) -> None:
    member, resources = _member(dataset_id), _resources(family_portal, tmp_path)
    dataset, lake, database = member.dataset, resources["lake"], tmp_path / "warehouse.duckdb"

    result = _run_job(member, resources)

    assert result.success
    kept = lake_id_list(lake, MONTHS, lambda month: data_key(month, dataset))
    refused = lake_id_list(lake, MONTHS, lambda month: quarantine_key(month, dataset))
    outside = lake.read_table(out_of_calendar_key(dataset))["row_id"].to_pylist()
    # Every source row in exactly one place: a lake month, its quarantine, or out of the calendar.
    assert sorted(kept + refused + outside) == sorted(_source_ids(family_portal, dataset_id))
    assert (len(kept), len(refused), len(outside)) == (ROWS, 1, 2)
    [reason] = lake.read_table(quarantine_key(MONTHS[0], dataset))["reason"].to_pylist()
    assert reason == "cod_muni is not 5 digits; cod_muni does not start with cod_depto"
    # Bronze holds exactly the lake's row ids, in its own table.
    assert sorted(table_id_list(database, dataset.bronze_table)) == sorted(kept)
    assert query(database, f"SELECT sum(registros) FROM {dataset.ledger_table}") == [(ROWS,)]
    # The blocking checks of both layers passed (the quarantine's warning says its one row; the ledger says the
    # months the run did not read are missing).
    evaluations = {(e.asset_key.path[0], e.check_name): e.passed for e in _evaluations(result)}
    assert {check: passed for check, passed in evaluations.items() if passed} == {
        ("lake", SCHEMA_CHECK): True,
        ("lake", "row_ids_unique"): True,
        ("lake", "volume_plausible"): True,
        ("bronze", "reconciled_with_source"): True,
        ("bronze", "volume_plausible"): True,
        ("bronze", "values_valid"): True,
    }
    # Its objects live under its slug; 4v6r-wu98's places stay empty, and bronze holds no other table but its own.
    assert all(key.startswith(f"{dataset.slug}/") for key in _contents(lake, database, dataset.bronze_table)[0])
    tables = query(database, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'bronze' ORDER BY 1")
    assert tables == sorted([(dataset.slug,), (f"{dataset.slug}_cargas",)])
    # The prefix holds this dataset: another dataset is refused there in one sentence.
    refusal = source_refusal(lake, family_portal.url, "zzzz-9999", dataset)
    assert refusal is not None and f"holds Socrata dataset {dataset_id}, not zzzz-9999" in refusal

    before = _contents(lake, database, dataset.bronze_table)
    again = _run_job(member, resources)

    assert again.success
    assert _contents(lake, database, dataset.bronze_table) == before  # a second run changes nothing


def test_a_family_source_whose_columns_drift_fails_the_schema_check_in_one_sentence_and_writes_nothing(
    tmp_path: Path,
) -> None:
    with EmulatorServer(datasets={"q2ib-t9am": _snapshot("q2ib-t9am")}, port=0) as server:
        server.datasets["q2ib-t9am"].add_column("canal", "text")
        server.datasets["q2ib-t9am"].retype_column("cantidad", "text")
        resources = _resources(server, tmp_path)

        result = _run_job(_member("q2ib-t9am"), resources)

    assert not result.success
    [evaluation] = check_evaluations(result, SCHEMA_CHECK)
    assert not evaluation.passed
    assert evaluation.description == (
        "source: new column 'canal' (text); source: column 'cantidad' retyped number → text"
    )
    assert result.get_asset_materialization_events() == []
    assert list(Path(resources["lake"].root).rglob("*.parquet")) == []  # nothing written
    assert not (tmp_path / "warehouse.duckdb").exists() or query(
        tmp_path / "warehouse.duckdb", "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'bronze'"
    ) == [(0,)]


def test_an_added_entry_brings_its_assets_checks_and_job_with_no_python(tmp_path: Path) -> None:
    folder = tmp_path / "datasets"
    shutil.copytree(ENTRIES_FOLDER, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    entry = yaml.safe_load((ENTRIES_FOLDER / "q2ib-t9am.yaml").read_text(encoding="utf-8"))
    added = {**entry, "id": "7mn7-vzqp", "title": "Hurto a residencias", "slug": "hurto_residencias"}
    (folder / "7mn7-vzqp.yaml").write_text(yaml.safe_dump(added, allow_unicode=True), encoding="utf-8")

    members = family(load_entries(folder))
    definitions = dg.Definitions(
        assets=[asset for member in members for asset in member.assets],
        asset_checks=[check for member in members for check in member.checks],
        jobs=[member.job for member in members],
        resources={
            "socrata": SocrataResource(),
            "lake": LocalLake(root=str(tmp_path / "lake")),
            "warehouse": DuckDBWarehouse(duckdb=DuckDBResource(database=str(tmp_path / "warehouse.duckdb"))),
        },
    )

    graph = definitions.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"socrata/hurto_residencias", "lake/hurto_residencias", "bronze/hurto_residencias"} <= keys
    assert keys == {f"{layer}/{m.dataset.slug}" for m in members for layer in ("socrata", "lake", "bronze")} | {
        f"silver/stg_{m.dataset.slug}"
        for m in members  # its dbt silver (defs/dbt), here only as its checks' asset
    }
    checks = {key.to_user_string() for key in graph.asset_check_keys if "hurto_residencias" in str(key)}
    assert checks == {
        "lake/hurto_residencias:schema_matches_contract",
        "lake/hurto_residencias:row_ids_unique",
        "lake/hurto_residencias:volume_plausible",
        "lake/hurto_residencias:no_rows_quarantined",
        "lake/hurto_residencias:dataset_ledger_balances",
        "bronze/hurto_residencias:reconciled_with_source",
        "bronze/hurto_residencias:volume_plausible",
        "bronze/hurto_residencias:values_valid",
        "lake/hurto_residencias:fresh_against_source",
        "bronze/hurto_residencias:fresh_against_source",
        "silver/stg_hurto_residencias:fresh_against_source",
    }
    job = definitions.resolve_job_def("hurto_residencias_job")
    assert {node.name for node in job.graph.node_defs} == {
        "lake__hurto_residencias",
        "lake__hurto_residencias_dataset_ledger_balances",
        "bronze__hurto_residencias",
    }
    lake = graph.get(dg.AssetKey(["lake", "hurto_residencias"]))
    assert lake.partitions_def.get_first_partition_key() == "2010-01-01"
    assert lake.group_name == "hurto_residencias"


def test_an_entry_the_lake_cannot_type_is_one_sentence_naming_it() -> None:
    entry = configured()["q2ib-t9am"].model_dump()
    without = {**entry, "columns": [column for column in entry["columns"] if column["name"] != "cod_muni"]}

    with pytest.raises(DatasetConfigError) as refused:
        LakeDataset(DatasetEntry.model_validate(without))

    assert str(refused.value) == (
        "dataset entry q2ib-t9am: the lake holds datasets of the family's shape, dated by fecha_hecho, and this one "
        "lacks cod_muni (text)"
    )


def test_one_lake_and_one_warehouse_hold_several_datasets_each_under_its_own_prefix_and_table(
    family_portal: EmulatorServer, tmp_path: Path
) -> None:
    resources = _resources(family_portal, tmp_path)
    lake, database = resources["lake"], tmp_path / "warehouse.duckdb"

    for dataset_id in ("m8fd-ahd9", "q2ib-t9am"):
        assert _run_job(_member(dataset_id), resources).success

    for dataset_id in ("m8fd-ahd9", "q2ib-t9am"):
        dataset = _member(dataset_id).dataset
        kept = lake_id_list(lake, MONTHS, lambda month, dataset=dataset: data_key(month, dataset))
        assert sorted(table_id_list(database, dataset.bronze_table)) == sorted(kept) and len(kept) == ROWS
        assert source_refusal(lake, family_portal.url, dataset_id, dataset) is None
    # The root is 4v6r-wu98's: no family dataset claimed it, and nothing of the family lies in its places.
    assert not (Path(lake.root) / "source.json").exists()
    assert not (Path(lake.root) / "delitos").exists() and not (Path(lake.root) / "quarantine").exists()


def test_a_family_month_missing_from_the_lake_names_the_asset_that_writes_it(tmp_path: Path) -> None:
    lake, dataset = LocalLake(root=str(tmp_path / "lake")), _member("m8fd-ahd9").dataset

    with pytest.raises(LakeError) as missing:
        lake.read(data_key(MONTHS[0], dataset))
    with pytest.raises(LakeError) as delitos_missing:
        lake.parquet_rows(data_key(MONTHS[0]))

    assert str(missing.value).endswith(": materialize lake/homicidios first")
    assert str(delitos_missing.value).endswith(": materialize lake/delitos first")


def test_a_dataset_the_portal_does_not_have_is_one_sentence_naming_it_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    served = {dataset_id: _snapshot(dataset_id) for dataset_id in DATASETS if dataset_id != "q2ib-t9am"}
    with EmulatorServer(datasets=served, port=0) as portal:
        resources = _resources(portal, tmp_path)
        result = _run_job(_member("q2ib-t9am"), resources)

    assert not result.success
    assert failure_message(result) == f"dataset 'q2ib-t9am' does not exist at {portal.url} (Not found)"
    assert not list(Path(resources["lake"].root).rglob("*.parquet"))
