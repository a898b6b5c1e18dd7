"""Reading through real SODA clients: paging, SoQL aggregates, windows, metadata and headers."""

from __future__ import annotations

import json
from collections import Counter

from delitos_platform.contract import ATTRIBUTION, SOURCE_COLUMNS
from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform_tests.emulator.conftest import DATASET, client_for, resource


def _key(row: dict[str, str]) -> tuple:
    return tuple(sorted(row.items()))


def test_paging_by_id_returns_every_row_once(emulator: EmulatorServer, snapshot_rows: list[dict]) -> None:
    client = client_for(emulator)
    seen: list[dict] = []
    offset = 0
    while True:
        page = client.get(DATASET, select=":id, *", order=":id", limit=5000, offset=offset)
        seen.extend(page)
        if len(page) < 5000:
            break
        offset += 5000
    ids = [row.pop(":id") for row in seen]
    assert len(ids) == len(set(ids)) == len(snapshot_rows)
    assert ids == sorted(ids)
    assert Counter(map(_key, seen)) == Counter(map(_key, snapshot_rows))


def test_get_all_stops_at_the_first_short_page(emulator: EmulatorServer, snapshot_rows: list[dict]) -> None:
    before = emulator.requests_served
    rows = list(client_for(emulator).get_all(DATASET))
    assert len(rows) == len(snapshot_rows)
    assert emulator.requests_served - before == len(snapshot_rows) // 1000 + 1
    assert rows[0] == snapshot_rows[0]  # without $order the file order is kept


def test_count_and_sum_grouped_by_field(emulator: EmulatorServer, snapshot_rows: list[dict]) -> None:
    got = client_for(emulator).get(
        DATASET, select="municipio, count(*), sum(cantidad) AS total", group="municipio", order="municipio", limit=50000
    )
    counts = Counter(r["municipio"] for r in snapshot_rows)
    totals: Counter[str] = Counter()
    for row in snapshot_rows:
        totals[row["municipio"]] += int(row["cantidad"])
    assert {r["municipio"]: (r["count"], r["total"]) for r in got} == {
        m: (str(counts[m]), str(totals[m])) for m in counts
    }
    assert [r["municipio"] for r in got] == sorted(counts)


def test_count_grouped_by_month(emulator: EmulatorServer, snapshot_rows: list[dict]) -> None:
    got = client_for(emulator).get(
        DATASET,
        select="date_trunc_ym(fecha_hecho) AS month, count(*) AS n, sum(cantidad)",
        group="date_trunc_ym(fecha_hecho)",
        order="month",
        limit=50000,
    )
    expected: Counter[str] = Counter(r["fecha_hecho"][:7] + "-01T00:00:00.000" for r in snapshot_rows)
    assert {r["month"]: int(r["n"]) for r in got} == dict(expected)
    assert sum(int(r["sum_cantidad"]) for r in got) == sum(int(r["cantidad"]) for r in snapshot_rows)


def test_unaliased_aggregates_are_named_like_socrata(emulator: EmulatorServer) -> None:
    response = resource(
        emulator,
        {
            "$select": "count(*), sum(cantidad), date_trunc_y(fecha_hecho)",
            "$group": "date_trunc_y(fecha_hecho)",
            "$order": "date_trunc_y(fecha_hecho)",
        },
    )
    assert json.loads(response.headers["X-SODA2-Fields"]) == ["count", "sum_cantidad", "date_trunc_y_fecha_hecho"]
    assert json.loads(response.headers["X-SODA2-Types"]) == ["number", "number", "floating_timestamp"]
    assert response.json()[0]["date_trunc_y_fecha_hecho"].endswith("-01-01T00:00:00.000")


def test_window_filter_with_floating_timestamps(emulator: EmulatorServer, snapshot_rows: list[dict]) -> None:
    where = "fecha_hecho >= '2020-03-01T00:00:00.000' AND fecha_hecho < '2020-04-01T00:00:00.000'"
    got = client_for(emulator).get(DATASET, where=where, limit=50000)
    expected = [r for r in snapshot_rows if "2020-03-01" <= r["fecha_hecho"] < "2020-04-01"]
    assert Counter(map(_key, got)) == Counter(map(_key, expected))
    between = client_for(emulator).get(
        DATASET,
        select="count(*)",
        where="fecha_hecho between '2020-03-01T00:00:00' and '2020-03-31T23:59:59.999' and cantidad > 0",
    )
    assert between == [{"count": str(len(expected))}]


def test_where_operators(emulator: EmulatorServer, snapshot_rows: list[dict]) -> None:
    def count(where: str) -> int:
        return int(resource(emulator, {"$select": "count(*) AS n", "$where": where}).json()[0]["n"])

    assert count("municipio in ('GIRON', 'SAN GIL')") == sum(
        r["municipio"] in ("GIRON", "SAN GIL") for r in snapshot_rows
    )
    assert count("NOT (municipio = 'BUCARAMANGA') OR cantidad != 1") == sum(
        r["municipio"] != "BUCARAMANGA" or r["cantidad"] != "1" for r in snapshot_rows
    )
    assert count("descripcion_conducta like '%269I%'") == sum(
        "269I" in r["descripcion_conducta"] for r in snapshot_rows
    )
    assert count("municipio not in ('BUCARAMANGA') AND upper(municipio) = municipio") == sum(
        r["municipio"] != "BUCARAMANGA" for r in snapshot_rows
    )
    assert count("cod_muni IS NULL") == 0
    assert count("cantidad > '1'") == sum(int(r["cantidad"]) > 1 for r in snapshot_rows)


def test_simple_field_filters_and_query_statement(emulator: EmulatorServer, snapshot_rows: list[dict]) -> None:
    giron = client_for(emulator).get(DATASET, municipio="GIRON", limit=50000)
    assert len(giron) == sum(r["municipio"] == "GIRON" for r in snapshot_rows)
    stated = resource(
        emulator,
        {
            "$query": "SELECT municipio, count(*) AS n WHERE cantidad >= 1 "
            "GROUP BY municipio HAVING count(*) > 1000 ORDER BY n DESC LIMIT 2"
        },
    ).json()
    top = Counter(r["municipio"] for r in snapshot_rows).most_common(2)
    assert stated == [{"municipio": m, "n": str(n)} for m, n in top]


def test_system_fields_only_when_asked(emulator: EmulatorServer) -> None:
    plain = resource(emulator, {"$limit": 1}).json()[0]
    assert set(plain) == set(SOURCE_COLUMNS)
    for params in ({"$select": ":*, *"}, {"$select": ":*,*"}, {"$$exclude_system_fields": "false"}):
        row = resource(emulator, {**params, "$limit": 1}).json()[0]
        assert set(row) == {":id", ":created_at", ":updated_at", *SOURCE_COLUMNS}
        assert row[":created_at"] == "2026-05-01T00:00:00.000Z"
    response = resource(emulator, {"$select": ":id, :updated_at, cantidad", "$limit": 1})
    assert json.loads(response.headers["X-SODA2-Types"]) == ["row_identifier", "fixed_timestamp", "number"]


def test_headers(emulator: EmulatorServer) -> None:
    response = resource(emulator, {"$limit": 1})
    assert response.headers["Content-Type"] == "application/json;charset=utf-8"
    assert json.loads(response.headers["X-SODA2-Fields"]) == list(SOURCE_COLUMNS)
    assert response.headers["Last-Modified"] == "Fri, 01 May 2026 00:00:00 GMT"
    again = resource(emulator, {"$limit": 1})
    assert again.headers["ETag"] == response.headers["ETag"]


def test_metadata(emulator: EmulatorServer) -> None:
    meta = client_for(emulator).get_metadata(DATASET)
    assert meta["id"] == DATASET
    assert meta["attribution"] == ATTRIBUTION
    assert meta["rowsUpdatedAt"] == emulator.dataset.rows_updated_at
    assert {c["fieldName"]: c["dataTypeName"] for c in meta["columns"]} == SOURCE_COLUMNS


def test_ids_are_stable_across_instances_and_not_file_order(emulator: EmulatorServer) -> None:
    first = [r[":id"] for r in resource(emulator, {"$select": ":id", "$limit": 50000}).json()]
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT) as other:
        second = [r[":id"] for r in resource(other, {"$select": ":id", "$limit": 50000}).json()]
    assert first == second
    assert first != sorted(first)
    assert all(i.startswith("row-") and len(i) == 18 for i in first)


def test_numbers_render_like_socrata() -> None:
    rows = [{"cantidad": "1"}, {"cantidad": "1.5"}, {"cantidad": "-1"}, {"cantidad": "0"}, {}]
    with EmulatorServer(snapshot=rows) as server:
        got = resource(server, {"$select": "cantidad"}).json()
        assert got == [{"cantidad": "1"}, {"cantidad": "1.5"}, {"cantidad": "-1"}, {"cantidad": "0"}, {}]
        assert resource(server, {"$select": "sum(cantidad), avg(cantidad)"}).json() == [
            {"sum_cantidad": "1.5", "avg_cantidad": "0.375"}
        ]


def _keyset_pages(server: EmulatorServer, window: str, limit: int) -> list[list[dict]]:
    """Every page of ``window`` by :id the way the extraction pages: ``(window) AND :id > 'last id'``."""
    pages: list[list[dict]] = []
    last = None
    while True:
        where = window if last is None else f"({window}) AND :id > '{last}'"
        response = resource(server, {"$select": ":id, *", "$where": where, "$order": ":id", "$limit": limit})
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if len(pages[-1]) < limit:
            return pages
        last = pages[-1][-1][":id"]


def test_keyset_pages_of_a_month_return_each_of_its_rows_once(
    emulator: EmulatorServer, snapshot_rows: list[dict]
) -> None:
    month = "fecha_hecho >= '2019-01-01T00:00:00.000' AND fecha_hecho < '2019-02-01T00:00:00.000'"
    pages = _keyset_pages(emulator, month, limit=25)
    ids = [row.pop(":id") for page in pages for row in page]
    expected = [r for r in snapshot_rows if "2019-01-01" <= r["fecha_hecho"] < "2019-02-01"]
    assert len(pages) > 2 and len(expected) > 25
    assert ids == sorted(set(ids))
    assert Counter(_key(row) for page in pages for row in page) == Counter(map(_key, expected))


def test_keyset_pages_of_rows_without_a_date_or_before_a_day() -> None:
    rows = [
        {"fecha_hecho": "2018-12-31T00:00:00.000", "cantidad": "1"},
        {"cantidad": "2"},
        {"fecha_hecho": "2019-01-01T00:00:00.000", "cantidad": "3"},
        {"cantidad": "4"},
        {"fecha_hecho": "2010-06-01T00:00:00.000", "cantidad": "5"},
    ]
    with EmulatorServer(snapshot=rows) as server:
        pages = _keyset_pages(server, "fecha_hecho IS NULL OR fecha_hecho < '2019-01-01T00:00:00.000'", limit=2)
        assert [len(page) for page in pages] == [2, 2, 0]
        ids = [row[":id"] for page in pages for row in page]
        assert ids == sorted(ids)
        assert sorted(row["cantidad"] for page in pages for row in page) == ["1", "2", "4", "5"]
        # Without parentheses AND binds tighter than OR, as in SQL: every undated row, whatever its :id.
        loose = f"fecha_hecho IS NULL OR fecha_hecho < '2019-01-01T00:00:00.000' AND :id > '{ids[-1]}'"
        undated = resource(server, {"$select": "cantidad", "$where": loose, "$order": "cantidad"}).json()
        assert undated == [{"cantidad": "2"}, {"cantidad": "4"}]
