"""Backfills as an operator launches them: through the webserver's GraphQL API (the daemon runs them) and the CLI.

Every partitioned asset has ``BackfillPolicy.single_run()``: a range of months must be ONE run, whichever
way it was launched, and the warehouse must then hold exactly the source's rows of those months.
"""

from __future__ import annotations

import subprocess
import time

import duckdb

from delitos_platform.partitions import RANGE_END_TAG, RANGE_START_TAG, Window
from delitos_platform_tests.processes.conftest import BACKFILL_DONE, RUN_TIMEOUT, LaunchedBackfill, Platform
from delitos_platform_tests.processes.helpers import (
    REPO_ROOT,
    bronze_counts,
    expect_type,
    month_counts,
    venv_tool,
    wait_until,
)

RUNS_TAGGED = """
query ($key: String!, $value: String!) {
  runsOrError(filter: { tags: [{ key: $key, value: $value }] }) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
    ... on Error { message }
  }
}
"""

SOCRATA_POOL = """
query {
  instance {
    poolConfig { poolGranularity defaultPoolLimit }
    concurrencyLimit(concurrencyKey: "socrata") { limit slotCount usingDefaultLimit }
  }
}
"""

# What a gold asset's page reads of its latest materialization: the row count and the column lineage tab.
LATEST_MATERIALIZATION = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on TableColumnLineageMetadataEntry {
            lineage { columnName columnDeps { assetKey { path } columnName } }
          }
        }
      }
    }
  }
}
"""


def months(first: str, last: str) -> list[str]:
    """Partition keys from ``first`` to ``last`` included."""
    return Window(Window.for_month(first).start, Window.for_month(last).end).month_keys()


def tags_of(run: dict) -> dict[str, str]:
    """A GraphQL run's tags as a dict."""
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def test_graphql_backfill_of_a_range_is_one_successful_run(
    platform: Platform, main_job_backfill: LaunchedBackfill, snapshot_rows: list[dict]
) -> None:
    """launchPartitionBackfill of the main job over 2019-01 → 2019-04: ONE run for the range, and it succeeded."""
    run, keys = main_job_backfill.run, main_job_backfill.keys
    assert run["status"] == "SUCCESS", platform.failure_summary(run["runId"])
    tags = tags_of(run)
    assert tags["dagster/backfill"] == main_job_backfill.backfill_id
    # The run's range is every requested month: a single-run policy leaves no month for another run.
    assert tags[RANGE_START_TAG] == keys[0]
    assert tags[RANGE_END_TAG] == keys[-1]
    assert tags["delitos/test"] == "graphql-backfill"
    backfill = platform.backfill(main_job_backfill.backfill_id)
    assert backfill["numPartitions"] == len(keys)
    assert [r["runId"] for r in backfill["runs"]] == [run["runId"]]


def test_graphql_backfill_loaded_exactly_the_source_rows(
    platform: Platform, main_job_backfill: LaunchedBackfill, snapshot_rows: list[dict]
) -> None:
    """Bronze per month = a recount of the snapshot; silver holds the same rows; gold summarizes them."""
    keys = main_job_backfill.keys
    expected = month_counts(snapshot_rows, keys)
    assert all(expected.values()), expected  # the snapshot has rows in every month of the range
    assert bronze_counts(platform.warehouse, keys) == expected
    with duckdb.connect(str(platform.warehouse), read_only=True) as warehouse:
        (silver,) = warehouse.execute("SELECT count(*) FROM silver.stg_delitos").fetchone()
        (registros,) = warehouse.execute("SELECT registros FROM gold.resumen_general").fetchone()
    assert silver == registros == sum(expected.values())


def test_socrata_pool_limit_comes_from_dagster_yaml(platform: Platform, main_job_backfill: LaunchedBackfill) -> None:
    """The lake step claimed a slot of pool ``socrata``: its limit is ``concurrency.pools.default_limit``."""
    instance = platform.graphql(SOCRATA_POOL)["instance"]
    assert instance["poolConfig"] == {"poolGranularity": "op", "defaultPoolLimit": 2}
    pool = instance["concurrencyLimit"]
    assert pool["limit"] == 2
    assert pool["slotCount"] == 2


def test_cli_partition_range_is_one_successful_run(
    platform: Platform, main_job_backfill: LaunchedBackfill, snapshot_rows: list[dict]
) -> None:
    """``dagster asset materialize --partition-range 2019-05-01...2019-06-01`` (README): one run, no daemon.

    The CLI executes the run itself, with the default (multiprocess) executor, against the same instance.
    """
    keys = months("2019-05-01", "2019-06-01")
    args = [
        venv_tool("dagster"),
        "asset",
        "materialize",
        "-m",
        "delitos_platform.definitions",
        "--select",
        "lake/delitos,bronze/delitos",
        "--partition-range",
        f"{keys[0]}...{keys[-1]}",
    ]
    started = time.monotonic()
    done = subprocess.run(
        args, cwd=REPO_ROOT, env=platform.env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    print(f"dagster asset materialize: exit {done.returncode} in {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    found = platform.graphql(RUNS_TAGGED, key=RANGE_START_TAG, value=keys[0])["runsOrError"]
    runs = expect_type(found, "Runs")["results"]
    assert len(runs) == 1, runs
    (run,) = runs
    print(f"run {run['runId']}: {platform.timeline(run['runId'])}")
    assert run["status"] == "SUCCESS"
    assert tags_of(run)[RANGE_END_TAG] == keys[-1]
    assert "dagster/backfill" not in tags_of(run)  # executed by the CLI itself, not through the daemon

    assert bronze_counts(platform.warehouse, keys) == month_counts(snapshot_rows, keys)


def test_graphql_backfill_is_marked_completed(platform: Platform, main_job_backfill: LaunchedBackfill) -> None:
    """The daemon's next pass marks the backfill completed (last in the module: that pass is up to 30 s away)."""

    def finished() -> dict | None:
        platform.assert_alive()
        backfill = platform.backfill(main_job_backfill.backfill_id)
        return backfill if backfill["status"] in BACKFILL_DONE else None

    backfill = wait_until(finished, 60.0, f"backfill {main_job_backfill.backfill_id} to be marked done", interval=1.0)
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, backfill
    assert len(backfill["runs"]) == 1


def test_a_gold_page_reads_its_row_count_and_its_column_lineage_back_to_silver(
    platform: Platform, main_job_backfill: LaunchedBackfill
) -> None:
    """``gold/tendencia_mensual`` as the UI reads it: ``dagster/row_count`` = the table's rows, and the column
    ``casos`` traced to ``silver/stg_delitos.cantidad`` (whose own page traces it to ``bronze/delitos``)."""
    key = {"path": ["gold", "tendencia_mensual"]}
    node = expect_type(platform.graphql(LATEST_MATERIALIZATION, key=key)["assetNodeOrError"], "AssetNode")
    [latest] = node["assetMaterializations"]
    entries = {entry["label"]: entry for entry in latest["metadataEntries"]}
    with duckdb.connect(str(platform.warehouse), read_only=True) as warehouse:
        [(rows,)] = warehouse.execute("SELECT count(*) FROM gold.tendencia_mensual").fetchall()
    assert entries["dagster/row_count"]["intValue"] == rows > 0
    lineage = {entry["columnName"]: entry["columnDeps"] for entry in entries["dagster/column_lineage"]["lineage"]}
    assert {"assetKey": {"path": ["silver", "stg_delitos"]}, "columnName": "cantidad"} in lineage["casos"]

    silver = {"path": ["silver", "stg_delitos"]}
    node = expect_type(platform.graphql(LATEST_MATERIALIZATION, key=silver)["assetNodeOrError"], "AssetNode")
    [latest] = node["assetMaterializations"]
    entries = {entry["label"]: entry for entry in latest["metadataEntries"]}
    lineage = {entry["columnName"]: entry["columnDeps"] for entry in entries["dagster/column_lineage"]["lineage"]}
    assert lineage["cantidad"] == [{"assetKey": {"path": ["bronze", "delitos"]}, "columnName": "cantidad"}]
    assert entries["dagster/row_count"]["intValue"] > 0  # the month's rows
