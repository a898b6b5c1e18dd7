"""The source sensor against an emulator whose data the test revises: exactly the changed months re-sync."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from delitos_platform.defs.automation.schedules import SOURCE_PUBLISHES_ON_DAY, newest_months
from delitos_platform.defs.automation.sync import REASON_TAG, socrata_changes
from delitos_platform.defs.bronze.assets import BRONZE_DELITOS, RECONCILED_CHECK
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.defs.volume_guard import ACCEPT_DROP_TAG, VOLUME_CHECK
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import LocalLake
from delitos_platform.partitions import Window, tagged_range
from delitos_platform.socrata.versions import month_versions, rows_updated_at
from delitos_platform.source_changes import SyncCursor
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message
from delitos_platform_tests.platform.helpers import ASSETS, check_evaluations, duckdb_resources, query, run_months

FIRST, LAST = "2018-01-01", "2019-12-01"  # two years of real rows keep every test quick


@pytest.fixture
def fresh_emulator(snapshot_rows):
    """An emulator of the test's own over the real rows of 2018 and 2019, free to be revised."""
    rows = [row for row in snapshot_rows if FIRST[:4] <= row["fecha_hecho"][:4] <= LAST[:4]]
    with EmulatorServer(snapshot=rows, port=0, admin=True) as server:
        yield server


@pytest.fixture
def synced(fresh_emulator, tmp_path):
    """A lake and bronze holding every month of the emulator, and the sensor's first look at them."""
    resources = duckdb_resources(fresh_emulator, tmp_path)
    assert run_months(resources, FIRST, LAST, selection=[LAKE_DELITOS, BRONZE_DELITOS]).success
    with dg.DagsterInstance.ephemeral() as instance:
        resources = {**resources, "instance": instance}
        first = evaluate(resources, cursor=None)
        assert first.run_requests == []
        yield resources, first.cursor


def evaluate(resources, cursor):
    """One evaluation of the sensor with Dagster's own test context (the instance holds the requested runs)."""
    context = dg.build_sensor_context(
        cursor=cursor, instance=resources["instance"], resources={k: resources[k] for k in ("socrata", "lake")}
    )
    return socrata_changes(context)


def skipped(result: dg.SensorResult) -> bool:
    """The evaluation requested nothing (it may still have recorded the runs it saw finish)."""
    return not result.run_requests and result.skip_reason is not None


def ranges(result) -> list[tuple[str, str]]:
    return [tagged_range(r.tags) for r in result.run_requests]


def run_request(resources, request) -> dg.ExecuteInProcessResult:
    """Execute a requested run as the sensor daemon would (with its run key) in the sensor's instance; lake and
    bronze only: the layers the reconciliation check compares."""
    return dg.materialize(
        ASSETS,
        resources={k: v for k, v in resources.items() if k != "instance"},
        instance=resources["instance"],
        tags={**request.tags, "dagster/run_key": request.run_key},
        selection=[LAKE_DELITOS, BRONZE_DELITOS],
        raise_on_error=False,
    )


def assert_reconciles(result, server, database, first: str, last: str) -> None:
    [evaluation] = check_evaluations(result, RECONCILED_CHECK)
    assert evaluation.passed, evaluation.description
    window = Window.for_month(first).start, Window.for_month(last).end
    source = sum(1 for row in server.dataset.dump().values() if window[0] <= row["fecha_hecho"].date() < window[1])
    bronze = query(database, f"SELECT count(*) FROM bronze.delitos WHERE mes >= '{first}' AND mes <= '{last}'")
    assert bronze == [(source,)]


def test_nothing_changed_costs_one_metadata_request_and_requests_nothing(synced, fresh_emulator):
    resources, cursor = synced
    served = fresh_emulator.requests_served

    result = evaluate(resources, cursor)

    assert skipped(result)
    assert fresh_emulator.requests_served == served + 1


def test_a_revised_month_is_resynced_alone_and_reconciles(synced, fresh_emulator, tmp_path):
    resources, cursor = synced
    revised = fresh_emulator.dataset.revise_month("2019-03", rows=3)

    result = evaluate(resources, cursor)

    assert ranges(result) == [("2019-03-01", "2019-03-01")]
    assert result.run_requests[0].tags[REASON_TAG] == "revision"
    [observation] = result.asset_events
    assert observation.partition == "2019-03-01" and observation.tags["dagster/data_version"].startswith("93@")
    run = run_request(resources, result.run_requests[0])
    assert run.success
    assert_reconciles(run, fresh_emulator, tmp_path / "warehouse.duckdb", "2019-03-01", "2019-03-01")
    cantidad = dict(query(tmp_path / "warehouse.duckdb", "SELECT row_id, cantidad FROM bronze.delitos"))
    assert {cantidad[row_id] for row_id in revised} == {
        int(fresh_emulator.dataset.dump()[row_id]["cantidad"]) for row_id in revised
    }
    assert skipped(evaluate(resources, result.cursor))


def test_a_failed_runs_months_are_requested_again_until_a_run_of_them_succeeds(synced, fresh_emulator, tmp_path):
    resources, cursor = synced
    fresh_emulator.dataset.revise_month("2019-03", rows=2)
    first = evaluate(resources, cursor)
    [request] = first.run_requests
    # The run fails: its lake cannot be written (a file where the lake's folder should be).
    unwritable = {**resources, "lake": LocalLake(root=str(tmp_path / "not-a-folder"))}
    (tmp_path / "not-a-folder").write_text("")
    assert "not-a-folder" in failure_message(run_request(unwritable, request))

    again = evaluate(resources, first.cursor)  # Socrata has not changed since

    assert ranges(again) == [("2019-03-01", "2019-03-01")]
    [retry] = again.run_requests
    assert retry.run_key != request.run_key
    assert run_request(resources, retry).success
    assert skipped(evaluate(resources, again.cursor))


def test_a_run_still_going_is_not_requested_twice(synced, fresh_emulator):
    resources, cursor = synced
    fresh_emulator.dataset.revise_month("2019-03", rows=1)
    first = evaluate(resources, cursor)
    assert ranges(first) == [("2019-03-01", "2019-03-01")]
    fresh_emulator.dataset.revise_month("2019-07", rows=1)  # the source moves on before the run was made

    second = evaluate(resources, first.cursor)

    assert ranges(second) == [("2019-07-01", "2019-07-01")]


def test_adjacent_revisions_share_a_run_and_a_new_month_gets_its_own(synced, fresh_emulator, snapshot_rows):
    resources, cursor = synced
    fresh_emulator.dataset.revise_month("2019-03", rows=1)
    fresh_emulator.dataset.revise_month("2019-04", rows=1)
    new_month = {**snapshot_rows[0], "fecha_hecho": "2008-06-14T00:00:00.000"}
    fresh_emulator.dataset.add_rows([new_month])

    result = evaluate(resources, cursor)

    assert ranges(result) == [("2008-06-01", "2008-06-01"), ("2019-03-01", "2019-04-01")]


def test_a_deleted_month_is_held_then_resynced_empty_once_the_drop_is_accepted(synced, fresh_emulator, tmp_path):
    resources, cursor = synced
    database = tmp_path / "warehouse.duckdb"
    fresh_emulator.dataset.delete_month("2019-03")

    result = evaluate(resources, cursor)

    assert ranges(result) == [("2019-03-01", "2019-03-01")]
    [request] = result.run_requests
    held = run_request(resources, request)
    assert not held.success
    [volume] = check_evaluations(held, VOLUME_CHECK)
    assert not volume.passed and "2019-03: 93 → 0 rows" in volume.description
    assert query(database, "SELECT count(*) FROM bronze.delitos WHERE mes = '2019-03-01'") == [(93,)]
    accepted = {**request.tags, ACCEPT_DROP_TAG: "true"}
    assert run_request(resources, dg.RunRequest(run_key="accepted", tags=accepted)).success
    assert query(database, "SELECT count(*) FROM bronze.delitos WHERE mes = '2019-03-01'") == [(0,)]


def test_a_wholesale_replacement_is_reported_and_a_full_resync_is_exact(synced, fresh_emulator, tmp_path):
    resources, cursor = synced
    fresh_emulator.dataset.replace_ids()

    result = evaluate(resources, cursor)

    assert {request.tags[REASON_TAG] for request in result.run_requests} == {"wholesale-replacement"}
    for request in result.run_requests:
        run = run_request(resources, request)
        assert run.success
        [evaluation] = check_evaluations(run, RECONCILED_CHECK)
        assert evaluation.passed, evaluation.description
    bronze_ids = {row_id for (row_id,) in query(tmp_path / "warehouse.duckdb", "SELECT row_id FROM bronze.delitos")}
    assert bronze_ids == set(fresh_emulator.dataset.dump())


def test_the_monthly_schedule_runs_after_the_source_publishes_the_month_before():
    """The source publishes around the 16th with the previous month: a run before that reads nothing new."""
    _minute, _hour, day_of_month, month, day_of_week = newest_months.cron_schedule.split()

    assert (month, day_of_week) == ("*", "*")
    assert int(day_of_month) > SOURCE_PUBLISHES_ON_DAY
    assert newest_months.execution_timezone == "America/Bogota"


def test_the_monthly_schedule_brings_in_the_two_newest_months_in_one_run():
    when = datetime(2026, 12, 17, 6, 0, tzinfo=ZoneInfo("America/Bogota"))

    request = newest_months(dg.build_schedule_context(scheduled_execution_time=when))

    assert tagged_range(request.tags) == ("2026-10-01", "2026-11-01")


def test_a_month_whose_lake_object_records_another_version_is_requested_whatever_the_cursor_says(
    fresh_emulator, tmp_path
):
    resources = duckdb_resources(fresh_emulator, tmp_path)
    assert run_months(resources, FIRST, LAST, selection=[LAKE_DELITOS, BRONZE_DELITOS]).success
    fresh_emulator.dataset.revise_month("2019-03", rows=2)  # its count is unchanged, its version is not
    with dg.DagsterInstance.ephemeral() as instance:
        resources = {**resources, "instance": instance}

        first = evaluate(resources, cursor=None)  # the first look: nothing but the lake to go by

        assert ranges(first) == [("2019-03-01", "2019-03-01")]
        # A cursor that believes every month synced at the source's current version: the lake still decides.
        believed = SyncCursor(
            rows_updated_at(socrata_for(fresh_emulator)) - 1,
            {month: version.tag() for month, version in month_versions(socrata_for(fresh_emulator)).items()},
        )

        again = evaluate(resources, believed.dump())

        assert ranges(again) == [("2019-03-01", "2019-03-01")]
        assert run_request(resources, again.run_requests[0]).success
        assert ranges(evaluate(resources, SyncCursor(believed.rows_updated_at, believed.versions).dump())) == []


def test_a_held_month_waits_for_the_next_source_version_and_is_tried_again_at_it(synced, fresh_emulator):
    resources, cursor = synced
    march = [
        row_id
        for row_id, row in fresh_emulator.dataset.dump().items()
        if row["fecha_hecho"].month == 3 and row["fecha_hecho"].year == 2019
    ]
    fresh_emulator.dataset.delete_rows(march[: len(march) * 6 // 10])
    first = evaluate(resources, cursor)
    [request] = first.run_requests
    assert not run_request(resources, request).success  # held by the volume guard

    waiting = evaluate(resources, first.cursor)
    assert waiting.run_requests == []
    assert evaluate(resources, waiting.cursor).run_requests == []

    fresh_emulator.dataset.delete_rows(march[-1:])  # the source's next version of the month
    retried = evaluate(resources, waiting.cursor)

    assert ranges(retried) == [("2019-03-01", "2019-03-01")]
