"""Freshness against the source: a layer that has not caught up with Socrata's last update fails its check."""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
import pytest

from delitos_platform.defs.automation.freshness import GOLD_SUMMARY, LAYERS
from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.family import FAMILY
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.defs.policies import FRESHNESS_CHECK, build_freshness_checks
from delitos_platform.emulator import EmulatorServer
from delitos_platform.emulator.synthetic import synthetic_rows
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.platform.helpers import ASSETS, check_evaluations, duckdb_resources

MONTH = "2019-03-01"


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def run_checks(resources, instance, window: timedelta) -> dg.ExecuteInProcessResult:
    checks = build_freshness_checks(LAYERS, window=window)
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


def test_a_family_datasets_layers_are_fresh_against_its_own_source_not_4v6r_wu98s(tmp_path, instance):
    member = next(member for member in FAMILY if member.dataset.id == "m8fd-ahd9")
    checks = member.freshness
    rows = list(synthetic_rows(member.dataset.entry, rows=20, start="2024-01", end="2024-01"))
    with EmulatorServer(datasets={"m8fd-ahd9": rows}, port=0) as server:
        resources = {**duckdb_resources(server, tmp_path), "socrata": socrata_for(server)}
        family_assets = [member.source, member.lake, member.bronze]
        synced = dg.materialize(family_assets, resources=resources, instance=instance, partition_key="2024-01-01")
        assert synced.success

        def evaluate(checks: dg.AssetChecksDefinition) -> dict[str, bool]:
            result = dg.materialize(
                [*family_assets, checks],
                resources=resources,
                instance=instance,
                selection=dg.AssetSelection.checks(checks),
                raise_on_error=False,
            )
            return {e.asset_key.to_user_string(): e.passed for e in check_evaluations(result, FRESHNESS_CHECK)}

        # Its lake and bronze caught up with homicides' last update (the portal serves no 4v6r-wu98); its silver was
        # never built.
        assert evaluate(checks) == {"lake/homicidios": True, "bronze/homicidios": True, "silver/stg_homicidios": False}
        time.sleep(1.01 - time.time() % 1)
        server.datasets["m8fd-ahd9"].touch()  # homicides updated after the sync: its layers are behind it
        layers = [member.lake.key, member.bronze.key, member.silver_key]
        no_lag = build_freshness_checks(layers, name=checks.node_def.name, dataset_id="m8fd-ahd9", window=timedelta(0))

        assert evaluate(no_lag) == dict.fromkeys(
            ["lake/homicidios", "bronze/homicidios", "silver/stg_homicidios"], False
        )
