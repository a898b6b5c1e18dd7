"""The revision history end to end: the emulator's admin endpoint changes the source, the chain re-syncs, and
gold.revisiones_por_mes tells what changed, on DuckDB and on Snowflake (fakesnow), alike.

One script: four months of 2010 are synced; then one month is revised (3 rows' cantidad +1), a row of another
is deleted, a row is added to a third, and one is left alone; every month is synced again (the unchanged one
too); then the source re-publishes every row under a new :id; then the same version is synced once more.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from delitos_platform.emulator import EmulatorServer
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.platform.helpers import duckdb_resources, query, run_months
from delitos_platform_tests.platform.test_platform_snowflake import Snowflake, snowflake_resources

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

FIRST, LAST = "2010-01-01", "2010-04-01"
MONTHS = ("2010-01", "2010-02", "2010-03", "2010-04")
REVISED, DELETED_FROM, ADDED_TO, UNCHANGED = MONTHS[1], MONTHS[2], MONTHS[3], MONTHS[0]
# Revisions without their version (each emulator has its own clock): what both warehouses must agree on.
REVISIONS = (
    "SELECT mes, revision, registros, casos, filas_agregadas, filas_eliminadas, filas_modificadas "
    "FROM gold.revisiones_por_mes"
)
REVISIONS_ASSET = dg.AssetKey(["gold", "revisiones_por_mes"])
HISTORY = "SELECT cambio, count(*) FROM silver.delitos_versiones GROUP BY cambio"
Query = Callable[[str], list[tuple]]


def _admin(server: EmulatorServer, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{server.url}/admin/{action}", json=payload, timeout=30)
    response.raise_for_status()
    return response.json()


def _sync(resources: dict[str, Any]) -> str:
    """Sync the four months in one run; the Markdown the run shows on gold/revisiones_por_mes's page."""
    result = run_months(resources, FIRST, LAST)
    assert result.success
    [event] = [event for event in result.get_asset_materialization_events() if event.asset_key == REVISIONS_ASSET]
    return event.materialization.metadata["first_published_vs_current"].value


def _script(server: EmulatorServer, resources: dict[str, Any], ask: Query) -> dict[str, list[tuple]]:
    """Run the script; the revisions and the history's changes after each step, and the cases changed."""
    seen: dict[str, list[tuple]] = {}
    _sync(resources)
    seen["first"] = sorted(ask(REVISIONS))
    _admin(server, "revise", {"month": REVISED, "rows": 3})
    [gone] = socrata_for(server).query(select=":id, cantidad", where=_in(DELETED_FROM), limit=1)
    _admin(server, "delete", {"ids": [gone[":id"]]})
    [template] = socrata_for(server).query(where=_in(ADDED_TO), limit=1)
    _admin(server, "add", {"rows": [{key: value for key, value in template.items() if not key.startswith(":")}]})
    seen["cases"] = [(int(gone["cantidad"]), int(template["cantidad"]))]
    chart = _sync(resources)
    seen["changed"] = sorted(ask(REVISIONS))
    seen["chart"] = [("3 of the last 4 months changed" in chart, "data:image/png;base64," in chart)]
    _admin(server, "replace-ids", {})
    _sync(resources)
    seen["republished"], seen["history"] = sorted(ask(REVISIONS)), sorted(ask(HISTORY))
    _sync(resources)
    seen["again"], seen["history_again"] = sorted(ask(REVISIONS)), sorted(ask(HISTORY))
    return seen


def _in(month: str) -> str:
    return f"date_trunc_ym(fecha_hecho) = '{month}-01T00:00:00.000'"


def _plain(rows: list[tuple]) -> list[tuple]:
    return [tuple(int(value) if hasattr(value, "as_integer_ratio") else value for value in row) for row in rows]


@pytest.fixture
def small_source(snapshot_rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The snapshot's rows of the script's four months."""
    return [row for row in snapshot_rows if row["fecha_hecho"][:7] in MONTHS]


def test_revisions_deletions_additions_and_a_republication_read_alike_on_duckdb_and_snowflake(
    small_source: list[dict[str, str]],
    tmp_path: Path,
    fakesnow_server: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with EmulatorServer(snapshot=small_source, port=0, admin=True) as server:
        database = tmp_path / "duckdb" / "warehouse.duckdb"
        monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(database))  # where dbt's duckdb target finds it
        resources = duckdb_resources(server, database.parent)
        on_duckdb = _script(server, resources, lambda sql: query(database, sql))

    snowflake = Snowflake(fakesnow_server, f"HISTORY_{uuid.uuid4().hex[:12]}".upper())
    snowflake.query("CREATE SCHEMA IF NOT EXISTS RAW")
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    snowflake.query(f"CREATE STAGE RAW.LAKE_STAGE URL = '{bucket.as_uri()}/'")
    monkeypatch.delenv("DELITOS_WAREHOUSE_PATH")
    for name, value in snowflake.dbt_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DELITOS_DBT_TARGET", raising=False)
    with EmulatorServer(snapshot=small_source, port=0, admin=True) as server:
        resources = snowflake_resources(server, bucket, snowflake)
        on_snowflake = {name: _plain(rows) for name, rows in _script(server, resources, snowflake.query).items()}
    snowflake.connection.close()

    first = on_duckdb["first"]
    by_month = {row[0].isoformat()[:7]: row for row in first}
    assert sorted(by_month) == list(MONTHS)
    for month, (_, revision, registros, casos, agregadas, eliminadas, modificadas) in by_month.items():
        rows = [row for row in small_source if row["fecha_hecho"][:7] == month]
        assert (revision, registros, casos) == (1, len(rows), sum(int(row["cantidad"]) for row in rows))
        assert (agregadas, eliminadas, modificadas) == (len(rows), 0, 0)  # at its first load every row is added
    [(deleted_cases, added_cases)] = on_duckdb["cases"]
    revised, deleted_from, added_to = by_month[REVISED], by_month[DELETED_FROM], by_month[ADDED_TO]
    revised = (revised[0], 2, revised[2], revised[3] + 3, 0, 0, 3)  # 3 rows' cantidad +1: casos +3
    deleted_from = (deleted_from[0], 2, deleted_from[2] - 1, deleted_from[3] - deleted_cases, 0, 1, 0)
    added_to = (added_to[0], 2, added_to[2] + 1, added_to[3] + added_cases, 1, 0, 0)
    assert on_duckdb["changed"] == sorted([*first, revised, deleted_from, added_to])  # none for the unchanged month
    # Re-published under new ids: not a mass delete + add, no new revision; every row re-identified once.
    assert on_duckdb["republished"] == on_duckdb["again"] == on_duckdb["changed"]
    rows_now = len(small_source)  # one deleted, one added
    assert dict(on_duckdb["history"])["reidentificada"] == rows_now == dict(on_duckdb["history"])["reemplazada"]
    assert on_duckdb["history_again"] == on_duckdb["history"]  # re-running a version adds nothing
    assert on_duckdb["chart"] == [(True, True)]  # the revision asset's page shows the chart
    assert on_snowflake == on_duckdb
