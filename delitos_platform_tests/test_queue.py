"""The run queue of the embedded instance (the repository's ``dagster.yaml``): one run that writes the warehouse
at a time, however it was launched.

Runs are launched through GraphQL as the UI launches them (``launchPipelineExecution``: *Materialize* on assets
runs Dagster's implicit asset job, the launchpad runs a job), against a code server of the repository's
``workspace.yaml``; the instance queues them through its run coordinator. The daemon's backfills (asset and job),
sensors, schedules and crash retries submit their runs through that same coordinator
(``DagsterInstance.submit_run``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from delitos_platform.locations import REPO_ROOT
from delitos_platform.partitions import RANGE_START_TAG, range_tags

TAG = "delitos/writes_warehouse"
RANGE = range_tags("2019-01-01", "2019-02-01")
LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status tags { key value } } }
    ... on Error { message }
  }
}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A GraphQL context over the repository's workspace, with an instance of the repository's ``dagster.yaml``."""
    home = tmp_path_factory.mktemp("queue_home")
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        define_out_of_process_context(str(REPO_ROOT / "workspace.yaml"), None, instance) as context,
    ):
        yield context


def launched(context: Any, job: str, assets: list[str] | None = None) -> dict[str, Any]:
    """A run launched as the UI launches it; its status and tags once the instance has queued it."""
    [location] = context.code_locations
    selector: dict[str, Any] = {
        "repositoryLocationName": location.name,
        "repositoryName": "__repository__",
        "pipelineName": job,
    }
    if assets is not None:
        selector["assetSelection"] = [{"path": asset.split("/")} for asset in assets]
    tags = [{"key": key, "value": value} for key, value in RANGE.items()]
    params = {"selector": selector, "runConfigData": {}, "executionMetadata": {"tags": tags}}
    result = execute_dagster_graphql(context, LAUNCH, variables={"params": params})
    assert not result.errors, result.errors
    launch = result.data["launchPipelineExecution"]
    assert launch["__typename"] == "LaunchRunSuccess", launch
    run = launch["run"]
    return {"status": run["status"], "tags": {tag["key"]: tag["value"] for tag in run["tags"]}}


@pytest.mark.parametrize(
    ("assets", "writes"),
    [
        (["lake/delitos", "bronze/delitos"], True),
        (["gold/resumen_general"], True),  # gold alone: dbt
        (["lake/delitos"], False),  # the lake alone never touches the warehouse
    ],
)
def test_asset_runs_that_write_the_warehouse_are_tagged_when_queued(workspace, assets, writes):
    run = launched(workspace, "__ASSET_JOB", assets)

    assert run["status"] == "QUEUED"
    assert (run["tags"].get(TAG) == "true") is writes
    assert run["tags"][RANGE_START_TAG] == "2019-01-01"  # the launcher's own tags stay


def test_the_main_job_is_tagged_and_the_freshness_job_is_not(workspace):
    assert launched(workspace, "delitos_main_job")["tags"].get(TAG) == "true"
    assert TAG not in launched(workspace, "freshness_checks")["tags"]


def test_the_queue_lets_one_warehouse_writer_in_at_a_time(workspace):
    limits = workspace.instance.get_concurrency_config().run_queue_config.tag_concurrency_limits

    assert {"key": TAG, "limit": 1} in limits
