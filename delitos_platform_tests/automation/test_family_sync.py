"""Each family dataset's own source sensor and schedule, against an emulator serving two of them, revised.

The lake is shared as ``delitos demo`` leaves it (its root recording our emulator and 4v6r-wu98) and holds both
datasets under their prefixes; each sensor looks at its own dataset only and requests runs of its own job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from delitos_platform.contract import DATASET_ID
from delitos_platform.datasets import configured
from delitos_platform.definitions import defs
from delitos_platform.defs.automation.schedules import FAMILY_NEWEST_MONTHS, NEWEST_MONTHS_CRON
from delitos_platform.defs.automation.sync import FAMILY_CHANGES, REASON_TAG
from delitos_platform.defs.family import FAMILY, FamilyDataset
from delitos_platform.emulator import EmulatorServer
from delitos_platform.emulator.synthetic import synthetic_rows
from delitos_platform.lake.provenance import claim_dataset, record_source
from delitos_platform.lake.storage import LocalLake
from delitos_platform.partitions import range_tags, tagged_range
from delitos_platform.socrata import SocrataResource
from delitos_platform.socrata.versions import month_versions
from delitos_platform.warehouse.duckdb import DuckDBWarehouse
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import query

HOMICIDIOS, EXTORSION = "m8fd-ahd9", "q2ib-t9am"
MONTHS = ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]
ROWS = 60  # about 15 a month: every month has rows to revise


@pytest.fixture
def portal() -> Iterator[EmulatorServer]:
    """An emulator of the test's own serving two family datasets over four months, free to be revised."""
    snapshots = {
        dataset_id: list(synthetic_rows(configured()[dataset_id], rows=ROWS, start="2024-01", end="2024-04"))
        for dataset_id in (HOMICIDIOS, EXTORSION)
    }
    with EmulatorServer(datasets=snapshots, port=0, admin=True) as server:
        yield server


@dataclass
class Platform:
    """The resources, the instance the sensors request runs in, and the database of bronze."""

    resources: dict[str, object]
    instance: dg.DagsterInstance
    database: Path


@pytest.fixture
def platform(portal: EmulatorServer, tmp_path: Path) -> Iterator[Platform]:
    """One lake (its root as ``delitos demo`` leaves it) and one warehouse, both datasets synced by their jobs."""
    lake = LocalLake(root=str(tmp_path / "lake"))
    record_source(lake, portal.url, DATASET_ID)
    database = tmp_path / "warehouse.duckdb"
    resources = {
        "socrata": socrata_for(portal),  # 4v6r-wu98's resource: each family sensor and asset reads its own id
        "lake": lake,
        "warehouse": DuckDBWarehouse(duckdb=DuckDBResource(database=str(database))),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        world = Platform(resources, instance, database)
        for dataset_id in (HOMICIDIOS, EXTORSION):
            assert run_job(world, member(dataset_id), range_tags(MONTHS[0], MONTHS[-1])).success
        yield world


def member(dataset_id: str) -> FamilyDataset:
    return next(member for member in FAMILY if member.dataset.id == dataset_id)


def sensor_of(dataset_id: str) -> dg.SensorDefinition:
    return next(sensor for sensor in FAMILY_CHANGES if sensor.name == f"{member(dataset_id).dataset.slug}_changes")


def evaluate(world: Platform, dataset_id: str, cursor: str | None) -> dg.SensorResult:
    """One evaluation of the dataset's sensor with Dagster's own test context."""
    resources = {key: world.resources[key] for key in ("socrata", "lake")}
    return sensor_of(dataset_id)(dg.build_sensor_context(cursor=cursor, instance=world.instance, resources=resources))


def run_job(world: Platform, of: FamilyDataset, tags: dict[str, str], **resources: object) -> dg.ExecuteInProcessResult:
    """A run of the dataset's job, as the code location defines it, in the sensors' instance."""
    definitions = dg.Definitions(
        assets=of.assets, asset_checks=of.checks, jobs=[of.job], resources={**world.resources, **resources}
    )
    job = definitions.resolve_job_def(of.job.name)
    return job.execute_in_process(tags=tags, instance=world.instance, raise_on_error=False)


def run_request(world: Platform, dataset_id: str, request: dg.RunRequest, **resources: object):
    """The requested run as the sensor daemon makes it: the sensor's job, with the request's tags and run key."""
    return run_job(world, member(dataset_id), {**request.tags, "dagster/run_key": request.run_key}, **resources)


def ranges(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [tagged_range(request.tags) for request in result.run_requests]


def skipped(result: dg.SensorResult) -> bool:
    return not result.run_requests and result.skip_reason is not None


def test_an_unchanged_family_source_requests_nothing_and_then_costs_one_metadata_request(
    platform: Platform, portal: EmulatorServer
) -> None:
    # The first look has nothing but the lake to go by: it reads each dataset's objects under its own prefix.
    first = {dataset_id: evaluate(platform, dataset_id, None) for dataset_id in (HOMICIDIOS, EXTORSION)}
    served = portal.requests_served

    again = {dataset_id: evaluate(platform, dataset_id, first[dataset_id].cursor) for dataset_id in first}

    assert all(result.run_requests == [] for result in first.values())
    assert all(skipped(result) for result in again.values())
    assert portal.requests_served == served + 2


def test_a_family_sensor_requests_exactly_its_changed_months_one_run_per_range_of_its_job(
    platform: Platform, portal: EmulatorServer
) -> None:
    cursor = evaluate(platform, HOMICIDIOS, None).cursor
    homicidios = portal.served(HOMICIDIOS)
    revised = [row_id for month in ("2024-01", "2024-02", "2024-04") for row_id in homicidios.revise_month(month, 2)]

    result = evaluate(platform, HOMICIDIOS, cursor)

    assert sensor_of(HOMICIDIOS).job_name == "homicidios_job"
    assert ranges(result) == [("2024-01-01", "2024-02-01"), ("2024-04-01", "2024-04-01")]
    assert {request.tags[REASON_TAG] for request in result.run_requests} == {"revision"}
    # Each changed month's new version, recorded on the dataset's own source asset.
    source = month_versions(socrata_for(portal, dataset_id=HOMICIDIOS))
    assert {
        (event.asset_key, event.partition, event.tags["dagster/data_version"]) for event in result.asset_events
    } == {
        (member(HOMICIDIOS).source.key, month, source[month].tag())
        for month in ("2024-01-01", "2024-02-01", "2024-04-01")
    }
    runs = [run_request(platform, HOMICIDIOS, request) for request in result.run_requests]
    assert all(run.success and run.dagster_run.job_name == "homicidios_job" for run in runs)
    # Bronze holds the revised values of exactly the revised row ids.
    cantidad = dict(query(platform.database, "SELECT row_id, cantidad FROM bronze.homicidios"))
    now = homicidios.dump()
    assert {row_id: cantidad[row_id] for row_id in revised} == {
        row_id: int(now[row_id]["cantidad"]) for row_id in revised
    }
    assert skipped(evaluate(platform, HOMICIDIOS, result.cursor))


def test_a_change_in_another_dataset_requests_nothing_and_its_runs_are_not_taken_for_this_ones(
    platform: Platform, portal: EmulatorServer, tmp_path: Path
) -> None:
    cursors = {dataset_id: evaluate(platform, dataset_id, None).cursor for dataset_id in (HOMICIDIOS, EXTORSION)}
    portal.served(EXTORSION).revise_month("2024-03", 1)

    unchanged = evaluate(platform, HOMICIDIOS, cursors[HOMICIDIOS])

    assert skipped(unchanged)
    # The same month revised in both at once: homicidios' run fails, extorsión's succeeds, each sensor sees its own.
    portal.served(HOMICIDIOS).revise_month("2024-03", 1)
    requested = {dataset_id: evaluate(platform, dataset_id, cursors[dataset_id]) for dataset_id in cursors}
    assert {dataset_id: ranges(result) for dataset_id, result in requested.items()} == {
        HOMICIDIOS: [("2024-03-01", "2024-03-01")],
        EXTORSION: [("2024-03-01", "2024-03-01")],
    }
    (tmp_path / "not-a-folder").write_text("")  # a file where the lake's folder should be
    unwritable = LocalLake(root=str(tmp_path / "not-a-folder"))
    [failing] = requested[HOMICIDIOS].run_requests
    assert "not-a-folder" in failure_message(run_request(platform, HOMICIDIOS, failing, lake=unwritable))
    assert run_request(platform, EXTORSION, requested[EXTORSION].run_requests[0]).success

    again = {dataset_id: evaluate(platform, dataset_id, requested[dataset_id].cursor) for dataset_id in cursors}

    assert ranges(again[HOMICIDIOS]) == [("2024-03-01", "2024-03-01")]
    assert skipped(again[EXTORSION])


def test_a_family_sensor_is_refused_where_its_prefix_holds_another_dataset_or_the_lake_another_source(
    portal: EmulatorServer, tmp_path: Path
) -> None:
    lake = LocalLake(root=str(tmp_path / "lake"))
    record_source(lake, portal.url, DATASET_ID)  # the root: the demo's source, and 4v6r-wu98
    claim_dataset(lake, "zzzz-9999", member(HOMICIDIOS).dataset)
    elsewhere = SocrataResource(url="http://192.0.2.1:9", max_retries=0, timeout_seconds=2.0)  # never routed
    served = portal.requests_served

    with dg.DagsterInstance.ephemeral() as instance:
        world = Platform({"socrata": socrata_for(portal), "lake": lake}, instance, tmp_path / "unused.duckdb")
        other_dataset = evaluate(world, HOMICIDIOS, None).skip_reason.skip_message
        world.resources["socrata"] = elsewhere
        other_source = evaluate(world, EXTORSION, None).skip_reason.skip_message

    assert other_dataset == (
        f"the lake {lake.uri('homicidios/')} holds Socrata dataset zzzz-9999, not {HOMICIDIOS} (the entry of slug "
        "homicidios): give that entry another slug, or the dataset a lake of its own (DELITOS_DATA_DIR, or "
        "DELITOS_LAKE_PREFIX on S3)"
    )
    assert "was built from our SODA emulator (delitos demo), not from http://192.0.2.1:9" in other_source
    assert portal.requests_served == served  # refused before any request


@pytest.mark.parametrize("slug", [member.dataset.slug for member in FAMILY])
def test_a_family_datasets_schedule_requests_its_two_newest_months_in_one_run_of_its_job(slug: str) -> None:
    [schedule] = [schedule for schedule in FAMILY_NEWEST_MONTHS if schedule.name == f"{slug}_newest_months"]
    when = datetime(2026, 12, 17, 6, 0, tzinfo=ZoneInfo("America/Bogota"))

    request = schedule(dg.build_schedule_context(scheduled_execution_time=when))

    assert (schedule.job_name, schedule.cron_schedule) == (f"{slug}_job", NEWEST_MONTHS_CRON)
    assert tagged_range(request.tags) == ("2026-10-01", "2026-11-01")


def test_the_code_location_has_a_sensor_and_a_schedule_for_every_family_dataset_on_its_job() -> None:
    definitions = defs()

    for slug in (member.dataset.slug for member in FAMILY):
        assert definitions.resolve_sensor_def(f"{slug}_changes").job_name == f"{slug}_job"
        assert definitions.resolve_schedule_def(f"{slug}_newest_months").job_name == f"{slug}_job"
    # 4v6r-wu98's keep their names and their job.
    assert definitions.resolve_sensor_def("socrata_changes").job_name == "delitos_main_job"
    assert definitions.resolve_schedule_def("newest_months").job_name == "delitos_main_job"
