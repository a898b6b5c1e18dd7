"""Freshness against the source: a layer that has not caught up with Socrata's last update fails its check."""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
import pytest

from delitos_platform.defs.automation.freshness import FRESHNESS_CHECK, GOLD_SUMMARY, build_freshness_checks
from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform_tests.platform.helpers import ASSETS, check_evaluations, duckdb_resources

MONTH = "2019-03-01"


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def run_checks(resources, instance, window: timedelta) -> dg.ExecuteInProcessResult:
    checks = build_freshness_checks(window)
    return dg.materialize(
        [*ASSETS, checks],
        resources=resources,
        instance=instance,
        selection=dg.AssetSelection.checks(checks),
        raise_on_error=False,
    )


def test_layers_synced_after_the_source_update_are_fresh_and_a_newer_update_makes_them_stale(
    fresh_emulator, tmp_path, instance
):
    resources = duckdb_resources(fresh_emulator, tmp_path)
    never = run_checks(resources, instance, timedelta(days=2))
    assert [e.passed for e in check_evaluations(never, FRESHNESS_CHECK)] == [False, False, False]
    lake_and_bronze = [LAKE_DELITOS, BRONZE_DELITOS]
    assert dg.materialize(
        ASSETS, resources=resources, instance=instance, partition_key=MONTH, selection=lake_and_bronze
    ).success
    # Gold's freshness reads only when it was last materialized: record that the way any producer can.
    instance.report_runless_asset_event(dg.AssetMaterialization(GOLD_SUMMARY))

    fresh = run_checks(resources, instance, timedelta(days=2))

    assert [e.passed for e in check_evaluations(fresh, FRESHNESS_CHECK)] == [True, True, True]
    # rowsUpdatedAt counts whole seconds: let the clock pass the second of the last materialization first.
    time.sleep(1.01 - time.time() % 1)
    fresh_emulator.dataset.touch()  # Socrata updates its rows after our last sync
    stale = run_checks(resources, instance, timedelta(0))

    evaluations = check_evaluations(stale, FRESHNESS_CHECK)
    assert [e.passed for e in evaluations] == [False, False, False]
    assert {e.asset_key.to_user_string() for e in evaluations} == {
        "lake/delitos",
        "bronze/delitos",
        "gold/resumen_general",
    }
    assert all(e.metadata["hours_behind_source"].value >= 0 for e in evaluations)
