"""A family dataset's job runs its whole chain: source → lake → bronze → its dbt silver → the cross-crime gold.

The jobs are the code location's own (``defs/family.py``), with the one dbt asset of ``defs/dbt``; the emulator
serves every family dataset (synthetic rows over two months). The cross-crime gold is compared with a recount
made here from the lake's Parquet objects, not from any table dbt built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from delitos_platform.definitions import defs
from delitos_platform.defs.family import FAMILY, FamilyDataset
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import LakeResource, data_key
from delitos_platform_tests.platform.helpers import (
    duckdb_resources,
    family_snapshots,
    lake_id_list,
    query,
    run_family_job,
    table_id_list,
)
from delitos_platform_tests.test_charts import assert_readable_png, embedded_png

DATASETS = ["m8fd-ahd9", "4rxi-8m8d", "q2ib-t9am"]
MONTHS = ["2024-01-01", "2024-02-01"]
ROWS = 60
CROSS_CRIME_GOLD = ["casos_por_municipio_mes", "resumen_por_delito"]


@pytest.fixture(scope="module")
def family_portal() -> Iterator[EmulatorServer]:
    """One emulator serving every family dataset, two months of synthetic rows each; tests only read it."""
    with EmulatorServer(datasets=family_snapshots(ROWS, DATASETS, ("2024-01", "2024-02")), port=0) as server:
        yield server


def _member(dataset_id: str) -> FamilyDataset:
    return next(member for member in FAMILY if member.dataset.id == dataset_id)


def _recount(lake: LakeResource, members: list[FamilyDataset]) -> list[tuple]:
    """Cases per dataset, month and municipality, summed here from the lake's objects."""
    cases: Counter[tuple] = Counter()
    for member in members:
        for month in MONTHS:
            for row in lake.read_table(data_key(month, member.dataset)).to_pylist():
                place = (row["cod_depto"].strip(), row["cod_muni"].strip())
                cases[(member.dataset.id, row["fecha_hecho"].replace(day=1), *place)] += row["cantidad"]
    return sorted((*key, total) for key, total in cases.items())


def _gold(database: Path) -> dict[str, list[tuple]]:
    return {table: query(database, f"SELECT * FROM gold.{table} ORDER BY ALL") for table in CROSS_CRIME_GOLD}


def test_a_family_datasets_job_builds_its_silver_and_the_cross_crime_gold_exact_by_row_id(
    family_portal: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))  # where dbt's target finds it
    resources = duckdb_resources(family_portal, tmp_path)
    lake, database = resources["lake"], tmp_path / "warehouse.duckdb"
    members = [_member(dataset_id) for dataset_id in DATASETS]

    with dg.instance_for_test() as instance:
        results = [run_family_job(member, resources, MONTHS[0], MONTHS[-1], instance) for member in members]

        assert all(result.success for result in results)
        for member, result in zip(members, results, strict=True):
            dataset = member.dataset
            kept = lake_id_list(lake, MONTHS, lambda month, dataset=dataset: data_key(month, dataset))
            # Its silver holds exactly the lake's row ids (bronze's, checked by the bronze step).
            assert sorted(table_id_list(database, f"silver.stg_{dataset.slug}")) == sorted(kept)
            assert len(kept) == ROWS
            materialized = {event.asset_key for event in result.get_asset_materialization_events()}
            assert {member.silver_key, *(dg.AssetKey(["gold", table]) for table in CROSS_CRIME_GOLD)} <= materialized
            failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
            assert failed == [] or {e.check_name for e in failed} == {"dataset_ledger_balances"}
        # The cross-crime gold is the recount of every dataset's lake rows: each run's gold kept the ones before.
        assert query(database, "SELECT * FROM gold.casos_por_municipio_mes ORDER BY ALL") == _recount(lake, members)
        summary = query(database, "SELECT dataset, titulo, registros FROM gold.resumen_por_delito ORDER BY dataset")
        assert summary == [
            ("4rxi-8m8d", "Hurto a personas", ROWS),
            ("m8fd-ahd9", "Homicidios", ROWS),
            ("q2ib-t9am", "Extorsión", ROWS),
        ]

        # The summary's page shows the crimes side by side, each crime named in its table.
        summary_key = dg.AssetKey(["gold", "resumen_por_delito"])
        summarized = instance.get_latest_materialization_event(summary_key).asset_materialization.metadata
        chart = summarized["crimes_side_by_side"].value
        assert_readable_png(embedded_png(chart)[1])
        assert "| Homicidios | " in chart and "| Extorsión | " in chart

        before = _gold(database)
        again = run_family_job(members[0], resources, MONTHS[0], MONTHS[-1], instance)

    assert again.success
    assert _gold(database) == before  # a re-run changes nothing


def test_a_family_silver_is_monthly_on_its_own_calendar_and_in_its_datasets_group() -> None:
    graph = defs().resolve_asset_graph()

    for member in FAMILY:
        silver = graph.get(member.silver_key)
        assert silver.partitions_def == member.dataset.partitions
        assert silver.group_name == member.dataset.slug
        assert member.bronze.key in silver.parent_keys
        # Its window's row checks are monthly on the same calendar.
        checks = [graph.get(key) for key in graph.asset_check_keys if key.asset_key == member.silver_key]
        assert {check.partitions_def for check in checks if check.partitions_def} == {member.dataset.partitions}
    gold = graph.get(dg.AssetKey(["gold", "casos_por_municipio_mes"]))
    assert gold.partitions_def is None and gold.group_name == "cross_crime"
    assert {member.silver_key for member in FAMILY} | {dg.AssetKey(["silver", "stg_delitos"])} <= gold.parent_keys
