"""Data changing while the server runs: revisions, additions, deletions, re-publication, the admin endpoint."""

from __future__ import annotations

import threading
import time

import requests

from delitos_platform.emulator import EmulatorServer
from delitos_platform_tests.emulator.conftest import DATASET, client_for, resource


def _dump(server: EmulatorServer) -> dict[str, dict[str, str]]:
    """Every row over HTTP, keyed by :id, with its system fields."""
    rows = resource(server, {"$select": ":*, *", "$order": ":id", "$limit": 50000}).json()
    return {row.pop(":id"): row for row in rows}


def _rows_updated_at(server: EmulatorServer) -> int:
    return client_for(server).get_metadata(DATASET)["rowsUpdatedAt"]


def test_revise_month_changes_exactly_the_rows_it_says(own_soda: EmulatorServer) -> None:
    before, stamp = _dump(own_soda), _rows_updated_at(own_soda)
    revised = own_soda.dataset.revise_month("2024-01", rows=5)
    after = _dump(own_soda)
    assert len(revised) == 5 and set(after) == set(before)
    changed = {i for i in before if before[i] != after[i]}
    assert changed == set(revised)
    for i in revised:
        assert after[i]["fecha_hecho"].startswith("2024-01")
        assert int(after[i]["cantidad"]) == int(before[i]["cantidad"]) + 1
        assert after[i][":updated_at"] > before[i][":updated_at"]
        assert after[i][":created_at"] == before[i][":created_at"]
    assert _rows_updated_at(own_soda) > stamp
    last_modified = resource(own_soda, {"$limit": 1}).headers["Last-Modified"]
    assert last_modified != "Fri, 01 May 2026 00:00:00 GMT"


def test_rows_updated_at_strictly_increases(own_soda: EmulatorServer) -> None:
    stamps = [own_soda.dataset.rows_updated_at]
    for _ in range(3):
        own_soda.dataset.touch()
        stamps.append(own_soda.dataset.rows_updated_at)
    assert stamps == sorted(set(stamps))


def test_replace_ids_changes_every_id_but_no_content(own_soda: EmulatorServer) -> None:
    before = _dump(own_soda)
    own_soda.dataset.replace_ids()
    after = _dump(own_soda)
    assert not set(before) & set(after)
    assert len(after) == len(before)

    def contents(dump: dict[str, dict[str, str]]) -> list[tuple]:
        return sorted(tuple(sorted((k, v) for k, v in row.items() if not k.startswith(":"))) for row in dump.values())

    assert contents(before) == contents(after)


def test_add_and_delete_rows(own_soda: EmulatorServer) -> None:
    total = len(own_soda.dataset)
    new = [
        {
            "fecha_hecho": "2026-04-30T00:00:00.000",
            "cod_depto": "68",
            "departamento": "SANTANDER",
            "cod_muni": "68001",
            "municipio": "BUCARAMANGA",
            "descripcion_conducta": "ARTICULO 269A. X",
            "cantidad": "2",
        },
        {"cod_muni": "5001", "cantidad": "-1"},
    ]
    ids = own_soda.dataset.add_rows(new)
    assert len(ids) == 2 and len(own_soda.dataset) == total + 2
    got = resource(own_soda, {"$where": f":id = '{ids[1]}'"}).json()
    assert got == [{"cod_muni": "5001", "cantidad": "-1"}]
    assert own_soda.dataset.delete_rows(ids) == 2
    in_month = int(
        resource(
            own_soda, {"$select": "count(*)", "$where": "date_trunc_ym(fecha_hecho) = '2024-01-01T00:00:00.000'"}
        ).json()[0]["count"]
    )
    assert own_soda.dataset.delete_month("2024-01") == in_month > 0
    assert len(own_soda.dataset) == total - in_month


def test_admin_endpoint_is_404_unless_enabled(emulator: EmulatorServer) -> None:
    for path in ("/admin/touch", "/admin/faults", "/admin/revise"):
        response = requests.post(f"{emulator.url}{path}", json={}, timeout=10)
        assert response.status_code == 404


def test_admin_endpoint_drives_faults_and_mutations(own_soda: EmulatorServer) -> None:
    url = own_soda.url
    stamp = own_soda.dataset.rows_updated_at
    revised = requests.post(f"{url}/admin/revise", json={"month": "2024-01", "rows": 3}, timeout=10).json()
    assert len(revised["ids"]) == 3 and revised["rowsUpdatedAt"] > stamp
    assert requests.post(f"{url}/admin/faults", json={"kind": "503", "count": 1}, timeout=10).status_code == 200
    assert resource(own_soda).status_code == 503
    requests.post(f"{url}/admin/faults", json={"kind": "500", "probability": 1.0}, timeout=10)
    assert requests.delete(f"{url}/admin/faults", timeout=10).status_code == 200
    assert resource(own_soda, {"$limit": 1}).status_code == 200
    added = requests.post(f"{url}/admin/add", json={"rows": [{"cantidad": "1"}]}, timeout=10).json()
    deleted = requests.post(f"{url}/admin/delete", json={"ids": added["ids"]}, timeout=10).json()
    assert deleted["deleted"] == 1
    for action in ("replace-ids", "touch"):
        assert requests.post(f"{url}/admin/{action}", timeout=10).status_code == 200
    bad = requests.post(f"{url}/admin/revise", json={"month": "January"}, timeout=10)
    assert bad.status_code == 400 and "YYYY-MM" in bad.json()["message"]


def test_a_row_added_while_a_slow_page_is_served_is_visible_to_the_next_page(own_soda: EmulatorServer) -> None:
    url = own_soda.url

    def page(after: str | None, limit: int) -> list[dict[str, str]]:
        params = {"$select": ":id, cantidad", "$order": ":id", "$limit": limit}
        if after is not None:
            params["$where"] = f":id > '{after}'"
        response = resource(own_soda, params)
        assert response.status_code == 200, response.text
        return response.json()

    # The id that will come second once the row is deleted, and so the row a client would see next.
    first, doomed = page(None, 2)
    requests.post(f"{url}/admin/faults", json={"kind": "slow", "count": 1, "delay": 1.0}, timeout=10)
    slow: dict[str, object] = {}

    def first_page() -> None:
        started = time.perf_counter()
        slow["rows"] = page(None, 1)
        slow["seconds"] = time.perf_counter() - started

    client = threading.Thread(target=first_page)
    client.start()
    deadline = time.monotonic() + 10
    while own_soda.faults.fired["slow"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the slow page is being held
    added = requests.post(f"{url}/admin/add", json={"rows": [{"cantidad": "77"}]}, timeout=10).json()["ids"]
    deleted = requests.post(f"{url}/admin/delete", json={"ids": [doomed[":id"]]}, timeout=10).json()
    client.join()

    assert slow["rows"] == [first] and slow["seconds"] >= 1.0  # the page was held while the data changed
    assert added[0] > first[":id"] and deleted["deleted"] == 1
    rest, last = [], first[":id"]
    while batch := page(last, 5000):
        rest.extend(batch)
        last = batch[-1][":id"]
    served = [row[":id"] for row in rest]
    assert added[0] in served and doomed[":id"] not in served
    assert {"cantidad": "77", ":id": added[0]} in rest
    assert len(served) == len(own_soda.dataset) - 1  # everything but the first page, each row once


def test_duplicate_ids_serves_rows_of_a_month_under_one_id(own_soda: EmulatorServer) -> None:
    before, stamp = _dump(own_soda), _rows_updated_at(own_soda)

    doubled = own_soda.dataset.duplicate_ids("2024-01", rows=2)

    ids = [row[":id"] for row in resource(own_soda, {"$select": ":id", "$order": ":id", "$limit": 50000}).json()]
    assert len(ids) == len(before) and ids.count(doubled) == 3
    assert len(set(ids)) == len(before) - 2
    assert _rows_updated_at(own_soda) > stamp
