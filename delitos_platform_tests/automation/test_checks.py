"""Schema and value checks: drift or bad values fail with a readable message and block what is downstream."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS, VALUES_CHECK
from delitos_platform.defs.lake.assets import LAKE_DELITOS, SCHEMA_CHECK
from delitos_platform.lake.parquet import from_parquet_bytes, to_parquet_bytes
from delitos_platform.lake.storage import data_key
from delitos_platform_tests.platform.helpers import check_evaluations, duckdb_resources, run_months

MONTH = "2019-03-01"


def _materialized(result) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def test_source_schema_drift_fails_with_a_readable_diff_and_bronze_does_not_build(fresh_emulator, tmp_path):
    fresh_emulator.dataset.add_column("canal", "text")
    fresh_emulator.dataset.retype_column("cantidad", "text")

    result = run_months(duckdb_resources(fresh_emulator, tmp_path), MONTH, MONTH, [LAKE_DELITOS, BRONZE_DELITOS])

    [evaluation] = check_evaluations(result, SCHEMA_CHECK)
    assert not evaluation.passed
    assert (
        evaluation.description == "source: new column 'canal' (text); source: column 'cantidad' retyped number → text"
    )
    assert _materialized(result) == set()  # nothing fetched, nothing written: the lake keeps what it had


def test_an_unchanged_source_passes_the_schema_check(emulator, tmp_path):
    result = run_months(duckdb_resources(emulator, tmp_path), MONTH, MONTH, [LAKE_DELITOS])

    [evaluation] = check_evaluations(result, SCHEMA_CHECK)
    assert evaluation.passed


def test_bad_values_in_the_lake_fail_with_counts_and_block_silver(emulator, tmp_path):
    resources = duckdb_resources(emulator, tmp_path)
    assert run_months(resources, MONTH, MONTH, [LAKE_DELITOS]).success
    lake = resources["lake"]
    month = from_parquet_bytes(lake.read(data_key(MONTH)))
    # Same rows, two of them spoiled: municipality codes that lost their zero-padding.
    spoiled = pc.if_else(pa.array([i < 2 for i in range(month.num_rows)]), "6800", month["cod_muni"])
    lake.write(data_key(MONTH), to_parquet_bytes(month.set_column(4, "cod_muni", spoiled)))

    result = run_months(resources, MONTH, MONTH, [BRONZE_DELITOS, dg.AssetKey(["silver", "stg_delitos"])])

    [evaluation] = check_evaluations(result, VALUES_CHECK)
    assert not evaluation.passed
    assert evaluation.metadata["offences"].value == 2
    assert evaluation.metadata["offenders: cod_muni is not 5 digits"].value == 2
    assert "silver/stg_delitos" not in _materialized(result)
    assert "bronze/delitos" not in _materialized(result)  # rolled back: bronze publishes no row that broke a rule
