"""The fault matrix: a run killed or a source misbehaving at each step, and every layer equal to the source
by row id afterwards, nothing doubled.

Every case starts from the same loaded platform (two months of the shipped Santander snapshot on every
layer, copied per case), injects one fault, and ends with a run that leaves source = lake = bronze = silver
by row id (count and digest, doubles counted). Kills are SIGKILLs of a run's whole process group, at a
moment read from the run's real state (a staged object, a published object, DuckDB's write-ahead log,
dbt's log line), never after a blind sleep.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_aws.s3 import S3Resource

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.storage import STAGING, LocalLake, S3Lake, data_key, quarantine_key, staging_key
from delitos_platform.partitions import Window
from delitos_platform.row_ids import RowIds
from delitos_platform.transform import DBT_PROJECT_DIR
from delitos_platform_tests.faults.helpers import (
    FIRST,
    LAST,
    MONTHS,
    PAGE_SIZE,
    SILVER,
    Platform,
    files_under,
    kill_group,
    kill_spec,
    wait_for,
)
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import GOLD_TABLES, lake_id_list, query, source_ids, warehouse_contents

BRONZE_TABLES = "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'bronze' ORDER BY 1"

YEAR = [f"2019-{month:02d}-01" for month in range(1, 13)]
DBT = [SILVER, *(dg.AssetKey(["gold", table]) for table in GOLD_TABLES)]


@dataclass(frozen=True)
class Case:
    """One row of the matrix."""

    fault: str
    outcome: str
    test: str


# case id → fault → expected outcome (→ the test that proves it). The closing note lists this table.
MATRIX = {
    "kill-extraction": Case(
        "kill -9 while paging (slow pages, a month already staged)",
        "nothing published; the re-run is exact and sweeps the killed run's staging",
        "test_kill_during_extraction",
    ),
    "live-staging": Case(
        "another run sweeps staging while a run is still staging",
        "the live run's staged objects stay; its own end removes them",
        "test_a_live_runs_staging_is_never_swept",
    ),
    "kill-publish": Case(
        "kill -9 while a year of revised months is being published",
        "every object whole, each month at one version; the next run heals",
        "test_kill_while_publishing",
    ),
    "kill-bronze": Case(
        "kill -9 during the bronze load (DuckDB's WAL growing)",
        "bronze as before or wholly new, nothing else left in it; the next load is exact",
        "test_kill_during_the_bronze_load",
    ),
    "kill-dbt": Case(
        "kill -9 while dbt builds silver",
        "silver as before or wholly new, never half; the next run heals",
        "test_kill_during_dbt",
    ),
    "429-storm": Case("2 × HTTP 429 with Retry-After: 1", "the run waits, succeeds and is exact", "test_http_fault"),
    "500-burst": Case("3 × HTTP 500", "retried; succeeds, exact", "test_http_fault"),
    "503-burst": Case("3 × HTTP 503", "retried; succeeds, exact", "test_http_fault"),
    "slow": Case("6 responses 0.5 s late", "succeeds, exact", "test_http_fault"),
    "reset": Case("3 connections reset", "retried; succeeds, exact", "test_http_fault"),
    "truncated": Case("3 bodies cut in half", "retried; succeeds, exact", "test_http_fault"),
    "beyond-budget": Case(
        "HTTP 503 on every request",
        "fails in one sentence after the retries; published data and bronze untouched, no staging",
        "test_a_fault_beyond_the_retry_budget",
    ),
    "edited-while-paging": Case(
        "a row's cantidad changed while its month is paged",
        "the month is read again; lake and bronze exact by id and by value",
        "test_a_row_edited_while_paging",
    ),
    "deleted/added-while-paging": Case(
        "a row deleted and 20 added while paging",
        "exact by id on every layer (platform/test_identity.py)",
        "test_rows_deleted_and_added_while_paging_lose_no_live_row_and_double_none",
    ),
    "ids-replaced": Case(
        "every row re-published with new :ids (admin replace-ids)",
        "every layer holds the new ids only, nothing doubled",
        "test_wholesale_id_replacement",
    ),
    "column-retyped": Case(
        "cantidad published as text",
        "refused before fetching; objects byte-identical",
        "test_schema_drift_is_refused",
    ),
    "column-removed": Case(
        "municipio removed",
        "refused before fetching; objects byte-identical",
        "test_schema_drift_is_refused",
    ),
    "read-only-lake": Case(
        "the lake folder mounted read-only",
        "fails in one sentence, nothing written; writable again, the re-run is exact",
        "test_a_read_only_lake",
    ),
    "corrupt-object": Case(
        "garbage bytes in a published month",
        "the bronze load fails naming the object, bronze unchanged; re-extracting the month heals",
        "test_a_corrupt_lake_object",
    ),
    "disk-full": Case(
        "the lake's file system full (a real tmpfs)",
        "fails, nothing published, no staging; with space again the re-run is exact",
        "test_a_full_disk",
    ),
    "s3-kill-extraction": Case(
        "kill -9 while paging into the S3 lake",
        "nothing published; the re-run is exact and sweeps the killed run's staging",
        "test_s3_kill_during_extraction",
    ),
    "s3-schema-drift": Case(
        "a column removed, S3 lake",
        "refused; S3 objects byte-identical",
        "test_s3_schema_drift_is_refused",
    ),
}


def test_every_case_of_the_matrix_has_its_test():
    defined = set(globals()) | {"test_rows_deleted_and_added_while_paging_lose_no_live_row_and_double_none"}
    assert {case.test for case in MATRIX.values()} <= defined


def _untouched(platform: Platform, published: dict[str, bytes], warehouse: dict[str, list[tuple]]) -> None:
    """The failed run changed nothing: objects byte-identical, warehouse as it was, nothing in staging."""
    assert platform.published() == published
    assert warehouse_contents(platform.database) == warehouse
    assert platform.staged_files() == []


# --------------------------------------------------------------------------------------------- kills
def test_kill_during_extraction(platform, forker, tmp_path):
    published = platform.published()
    platform.server.faults.inject("slow", count=10_000, delay=0.2)
    pid = forker.start(kill_spec(platform, tmp_path / "run.log"))
    staging = Path(platform.lake.root) / STAGING
    wait_for(lambda: any(path.suffix == ".parquet" for path in files_under(staging)), pid, "a staged object")
    kill_group(pid)
    platform.server.faults.clear()
    assert platform.staged_files(), "the kill landed after the extraction"
    assert platform.published() == published

    assert platform.run().success
    platform.assert_exact()
    assert platform.staged_files() == []


def test_a_live_runs_staging_is_never_swept(tmp_path):
    lake, other_run = LocalLake(root=str(tmp_path / "lake")), LocalLake(root=str(tmp_path / "lake"))
    with lake.staging_area("live-run"):
        lake.write(staging_key(data_key(FIRST), "live-run"), b"staged")
        assert other_run.sweep_staging(lambda _: True) == []
        assert lake.read(staging_key(data_key(FIRST), "live-run")) == b"staged"
    assert list(files_under(tmp_path / "lake")) == []


def test_kill_while_publishing(platform, forker, tmp_path):
    assert platform.run(months=(YEAR[0], YEAR[-1])).success
    old = {month: platform.lake.read(data_key(month)) for month in YEAR}
    for month in YEAR:
        platform.server.dataset.revise_month(month[:7], rows=1)  # a new version of every month
    first = Path(platform.lake.root) / data_key(YEAR[0])
    inode = first.stat().st_ino
    pid = forker.start(kill_spec(platform, tmp_path / "run.log", first=YEAR[0], last=YEAR[-1], page_size=50_000))
    wait_for(lambda: first.stat().st_ino != inode, pid, "the first published object", interval=0)
    os.killpg(pid, signal.SIGSTOP)  # freeze the publishing where it is, then kill it
    kill_group(pid)

    renewed = [month for month in YEAR if platform.lake.read(data_key(month)) != old[month]]
    assert renewed and YEAR[-1] not in renewed, f"the kill did not land while publishing: {renewed}"
    for month in YEAR:  # every object whole (readable), every month's rows all there, none twice
        held = lake_id_list(platform.lake, [month]) + lake_id_list(platform.lake, [month], quarantine_key)
        assert RowIds.of(held) == RowIds.of(source_ids(platform.server, Window.for_month(month).soql()))

    assert platform.run(months=(YEAR[0], YEAR[-1])).success
    found = platform.identities(YEAR)
    assert found["source"] == found["lake"] == found["bronze"]
    platform.assert_exact()


def test_kill_during_the_bronze_load(platform, forker, tmp_path):
    for month in MONTHS:
        platform.server.dataset.revise_month(month[:7], rows=3)
    before = platform.table_values("bronze.delitos")
    wal = platform.database.with_name(platform.database.name + ".wal")
    lake_object = Path(platform.lake.root) / data_key(LAST)
    inode = lake_object.stat().st_ino
    pid = forker.start(kill_spec(platform, tmp_path / "run.log"))
    wait_for(
        lambda: lake_object.stat().st_ino != inode and wal.exists() and wal.stat().st_size > 0,
        pid,
        "the bronze load",
        interval=0,
    )
    kill_group(pid)

    after_kill = platform.table_values("bronze.delitos")
    assert after_kill in (before, platform.source_values())  # one transaction: all of it or none of it
    assert platform.run().success
    # Nothing of the killed load left behind: bronze holds its table and its load ledger, nothing else.
    assert query(platform.database, BRONZE_TABLES) == [("delitos",), ("delitos_cargas",)]
    assert platform.table_values("bronze.delitos") == platform.source_values()
    platform.assert_exact()


# dbt's log line as it starts building silver's monthly model, whatever its materialization.
SILVER_BUILDING = re.compile(r"START sql \w+ model silver\.stg_delitos\b")


def test_kill_during_dbt(platform, forker, tmp_path):
    for month in MONTHS:
        platform.server.dataset.revise_month(month[:7], rows=3)
    assert platform.run().success  # lake and bronze hold the revision; silver does not yet
    before = platform.table_values("silver.stg_delitos")
    assert before != platform.source_values()
    started = time.time()

    def dbt_building_silver() -> bool:
        logs = (path for path in (DBT_PROJECT_DIR / "target").glob("*/dbt.log") if path.stat().st_mtime >= started)
        return any(SILVER_BUILDING.search(log.read_text(errors="replace")) for log in logs)

    pid = forker.start(kill_spec(platform, tmp_path / "run.log", selection=[key.to_user_string() for key in DBT]))
    wait_for(dbt_building_silver, pid, "dbt building silver", interval=0.05)
    kill_group(pid)
    _wait_for_dbt_to_let_go(platform.database)  # dbt ends with the killed step that runs it

    assert platform.table_values("silver.stg_delitos") in (before, platform.source_values())
    assert platform.run(selection=DBT).success
    assert platform.table_values("silver.stg_delitos") == platform.source_values()
    platform.assert_exact()


def _wait_for_dbt_to_let_go(database: Path, timeout: float = 30.0) -> None:
    """Until no process holds the DuckDB file: dbt ends (SIGINT, then SIGKILL) once the step that ran it died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            query(database, "SELECT 1")
            return
        except duckdb.IOException:
            assert time.monotonic() < deadline, f"dbt still holds {database} {timeout:.0f} s after its run was killed"
            time.sleep(0.2)


# ------------------------------------------------------------------------------------ a misbehaving API
HTTP_FAULTS = {
    "429-storm": {"kind": "429", "count": 2, "retry_after": 1},
    "500-burst": {"kind": "500", "count": 3},
    "503-burst": {"kind": "503", "count": 3, "retry_after": 0},
    "slow": {"kind": "slow", "count": 6, "delay": 0.5},
    "reset": {"kind": "reset", "count": 3},
    "truncated": {"kind": "truncate", "count": 3},
}


@pytest.mark.parametrize("case", list(HTTP_FAULTS))
def test_http_fault(platform, case):
    fault = dict(HTTP_FAULTS[case])
    kind = fault.pop("kind")
    platform.server.faults.inject(kind, paths=["/resource/", "/api/v3/", "/api/views/"], **fault)

    result = platform.run(page_size=PAGE_SIZE)

    assert result.success
    assert platform.server.faults.fired[kind] == fault["count"]
    platform.assert_exact()


def test_a_fault_beyond_the_retry_budget(platform):
    published, warehouse = platform.published(), warehouse_contents(platform.database)
    platform.server.faults.inject("503", count=10_000, retry_after=0)

    result = platform.run(page_size=PAGE_SIZE)

    assert failure_message(result).startswith(
        f"Socrata at {platform.server.url} answered HTTP 503 4 times while counting the rows of 2019-02 → 2019-03"
    )
    _untouched(platform, published, warehouse)
    platform.server.faults.clear()
    platform.assert_exact()


# -------------------------------------------------------------------------------- a source that changes
def test_a_row_edited_while_paging(platform):
    platform.server.faults.inject("slow", count=10_000, delay=0.1)
    edited = threading.Event()

    def edit_while_paging() -> None:
        deadline = time.monotonic() + 60
        while platform.server.requests_served < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        platform.server.dataset.revise_month(FIRST[:7], rows=1)
        edited.set()

    editor = threading.Thread(target=edit_while_paging)
    editor.start()
    result = platform.run(page_size=PAGE_SIZE)
    editor.join()
    platform.server.faults.clear()

    assert edited.is_set() and result.success
    [lake] = [event for event in result.get_asset_materialization_events() if event.asset_key == LAKE_DELITOS][:1]
    assert lake.materialization.metadata["run_months_read_again"].value >= 1
    source = platform.source_values()
    lake_values = {
        row["row_id"]: str(row["cantidad"])
        for month in MONTHS
        for row in from_parquet_bytes(platform.lake.read(data_key(month))).to_pylist()
    }
    assert lake_values == source == platform.table_values("bronze.delitos")
    platform.assert_exact()


def test_wholesale_id_replacement(platform):
    old = platform.identities()["source"]
    platform.admin("replace-ids")
    assert platform.identities()["source"] != old

    assert platform.run(selection=None).success

    platform.assert_exact()
    everything = query(platform.database, "SELECT count(*), count(DISTINCT row_id) FROM silver.stg_delitos")
    [(rows, distinct)] = everything
    assert rows == distinct == platform.identities()["source"].count  # the window is all silver holds


@pytest.mark.parametrize(
    "drift",
    [
        pytest.param(lambda dataset: dataset.retype_column("cantidad", "text"), id="column-retyped"),
        pytest.param(lambda dataset: dataset.drop_column("municipio"), id="column-removed"),
    ],
)
def test_schema_drift_is_refused(platform, drift):
    published, warehouse = platform.published(), warehouse_contents(platform.database)
    drift(platform.server.dataset)

    result = platform.run()

    assert failure_message(result).startswith("the source no longer matches the contract: source: ")
    _untouched(platform, published, warehouse)
    platform.assert_exact()


# ------------------------------------------------------------------------------------------ the lake
def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root): {done.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_lake(platform):
    published, warehouse = platform.published(), warehouse_contents(platform.database)
    lake = Path(platform.lake.root)
    _mount("--bind", "-o", "ro", str(lake), str(lake))
    try:
        result = platform.run()
        assert failure_message(result) == f"the lake folder is not writable: cannot write {lake}: Read-only file system"
        _untouched(platform, published, warehouse)
    finally:
        _umount(lake)

    assert platform.run().success
    platform.assert_exact()


def test_a_corrupt_lake_object(platform):
    warehouse = warehouse_contents(platform.database)
    corrupt = Path(platform.lake.root) / data_key(LAST)
    corrupt.write_bytes(b"PAR1 not really parquet" * 100)

    result = platform.run(selection=[BRONZE_DELITOS])

    assert failure_message(result).startswith(f"the lake object {corrupt.as_uri()} is not readable Parquet (")
    assert warehouse_contents(platform.database) == warehouse
    assert platform.run(months=(LAST, LAST)).success  # the month extracted again
    platform.assert_exact()


def test_a_full_disk(platform, tmp_path):
    lake = Path(platform.lake.root)
    held = tmp_path / "lake-before"
    lake.rename(held)
    lake.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(lake))
    try:
        for path in files_under(held):
            (lake / path.relative_to(held)).parent.mkdir(parents=True, exist_ok=True)
            (lake / path.relative_to(held)).write_bytes(path.read_bytes())
        published, warehouse = platform.published(), warehouse_contents(platform.database)
        ballast = lake / "ballast"
        with ballast.open("wb", buffering=0) as filler, pytest.raises(OSError, match="No space left on device"):
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()

        result = platform.run()

        assert not result.success
        ballast.unlink()
        _untouched(platform, published, warehouse)
        assert platform.run().success
        platform.assert_exact()
    finally:
        _umount(lake)


# -------------------------------------------------------------------------------------------- S3 lake
@pytest.fixture
def s3_platform(platform: Platform, s3_endpoint: str, request: pytest.FixtureRequest) -> Platform:
    """The case's platform with an S3 lake (a bucket of its own) that holds what the local lake does."""
    bucket = request.node.name.replace("_", "-")[:50]
    _s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    platform.lake = S3Lake(s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"), bucket=bucket)
    assert platform.run(selection=[LAKE_DELITOS]).success
    return platform


@functools.cache
def _s3_client(endpoint: str) -> Any:
    return S3Resource(endpoint_url=endpoint, region_name="us-east-1").get_client()


def _s3_staged(lake: S3Lake) -> list[str]:
    listed = _s3_client(lake.s3.endpoint_url).list_objects_v2(Bucket=lake.bucket, Prefix=f"{STAGING}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_s3_kill_during_extraction(s3_platform, forker, s3_endpoint, tmp_path):
    platform, lake = s3_platform, s3_platform.lake
    published = platform.published()
    platform.server.faults.inject("slow", count=10_000, delay=0.2)
    credentials = {name: os.environ[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    spec = kill_spec(platform, tmp_path / "run.log", s3={"endpoint": s3_endpoint, "bucket": lake.bucket})
    pid = forker.start({**spec, "env": {**spec["env"], **credentials}})
    wait_for(lambda: _s3_staged(lake), pid, "a staged object", interval=0.05)
    kill_group(pid)
    platform.server.faults.clear()
    assert _s3_staged(lake), "the kill landed after the extraction"
    assert platform.published() == published

    assert platform.run().success
    platform.assert_exact()
    assert _s3_staged(lake) == []


def test_s3_schema_drift_is_refused(s3_platform):
    platform = s3_platform
    published, warehouse = platform.published(), warehouse_contents(platform.database)
    platform.server.dataset.drop_column("cantidad")

    result = platform.run()

    assert failure_message(result) == (
        "the source no longer matches the contract: source: missing column 'cantidad' (number)"
    )
    assert platform.published() == published and warehouse_contents(platform.database) == warehouse
    assert _s3_staged(platform.lake) == []
    platform.assert_exact()
