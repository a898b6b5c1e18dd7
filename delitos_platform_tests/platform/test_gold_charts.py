"""A gold page's chart is drawn from its table as it is now, and drawn again only when the rows it shows change."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import dagster as dg
import pytest

from delitos_platform.defs.dbt.assets import CHART_DIGEST, GOLD_CHARTS
from delitos_platform_tests.platform.helpers import duckdb_resources, run_months

MONTH = "2019-03-01"


@pytest.fixture(autouse=True)
def warehouse_env(tmp_path, monkeypatch):
    """dbt's profile opens the same DuckDB file as the bronze asset."""
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))


@pytest.fixture
def draws(monkeypatch) -> Counter:
    """How many times each gold table's chart was drawn (each still drawn by its own code)."""
    counted: Counter = Counter()
    for key, chart in list(GOLD_CHARTS.items()):

        def draw(rows, key=key, draw=chart.draw):
            counted[key] += 1
            return draw(rows)

        monkeypatch.setitem(GOLD_CHARTS, key, replace(chart, draw=draw))
    return counted


def latest_charts(instance: dg.DagsterInstance) -> dict[dg.AssetKey, tuple[str, str]]:
    """Each charted table's latest chart and the digest of the rows it was drawn from."""
    charts = {}
    for key, chart in GOLD_CHARTS.items():
        metadata = instance.get_latest_materialization_event(key).asset_materialization.metadata
        charts[key] = (metadata[chart.entry].value, metadata[CHART_DIGEST].value)
    return charts


def test_a_rebuild_that_leaves_a_charts_rows_as_they_were_carries_the_chart_over(fresh_emulator, tmp_path, draws):
    resources = duckdb_resources(fresh_emulator, tmp_path)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run_months(resources, MONTH, MONTH, instance=instance).success
        first = latest_charts(instance)
        assert draws == dict.fromkeys(GOLD_CHARTS, 1)

        assert run_months(resources, MONTH, MONTH, instance=instance).success  # the source did not change

        assert latest_charts(instance) == first
        assert draws == dict.fromkeys(GOLD_CHARTS, 1)  # no chart drawn again

        fresh_emulator.dataset.revise_month(MONTH[:7], rows=5)  # cases of the month change
        assert run_months(resources, MONTH, MONTH, instance=instance).success

        redrawn = {key for key, (chart, digest) in latest_charts(instance).items() if digest != first[key][1]}
        assert dg.AssetKey(["gold", "tendencia_mensual"]) in redrawn  # its monthly cases changed
        assert {key: draws[key] for key in redrawn} == dict.fromkeys(redrawn, 2)
        assert all(draws[key] == 1 for key in set(GOLD_CHARTS) - redrawn)
