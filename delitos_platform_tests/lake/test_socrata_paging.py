"""Paging by identity (keyset on ``:id``): every row once, in ``:id`` order, whatever the source does meanwhile."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.rows import SOURCE_FIELDS
from delitos_platform.partitions import Window
from delitos_platform_tests.conftest import socrata_for

YEAR_2019 = Window(date(2019, 1, 1), date(2020, 1, 1))
PAGE = 97


@pytest.fixture(params=["soda3", "soda2"])
def api(request: pytest.FixtureRequest) -> str:
    """Each paging guarantee holds on both query APIs."""
    return request.param


def _row_ids(pages: list[pa.Table]) -> list[str]:
    return [row_id for page in pages for row_id in page["row_id"].to_pylist()]


def _source_ids(server: EmulatorServer, window: Window) -> list[str]:
    rows = socrata_for(server).query(select=":id", where=window.soql(), order=":id", limit=50_000)
    return [row[":id"] for row in rows]


def test_pages_arrive_in_id_order_each_row_once(emulator, api):
    expected = _source_ids(emulator, YEAR_2019)
    assert len(expected) > 10 * PAGE  # enough rows for many pages

    pages = list(socrata_for(emulator, page_size=PAGE, api=api).pages(SOURCE_FIELDS, YEAR_2019.soql()))

    assert _row_ids(pages) == expected
    assert [page.num_rows for page in pages[:-1]] == [PAGE] * (len(pages) - 1)
    assert pages[-1].num_rows < PAGE


def test_a_row_deleted_while_paging_loses_no_live_row(fresh_emulator, api):
    expected = _source_ids(fresh_emulator, YEAR_2019)
    pages = socrata_for(fresh_emulator, page_size=PAGE, api=api).pages(SOURCE_FIELDS, YEAR_2019.soql())
    fetched = [next(pages)]
    # A row of the page already fetched disappears: offset paging would then skip the next page's first row.
    deleted = fetched[0]["row_id"][5].as_py()
    assert fresh_emulator.dataset.delete_rows([deleted]) == 1

    fetched += list(pages)

    assert _row_ids(fetched) == expected  # the deleted row was read before it went; no live row is missing


def test_a_row_added_while_paging_doubles_no_row(fresh_emulator, snapshot_rows, api):
    pages = socrata_for(fresh_emulator, page_size=PAGE, api=api).pages(SOURCE_FIELDS, YEAR_2019.soql())
    fetched = [next(pages)]
    last_seen = fetched[0]["row_id"][-1].as_py()
    # Rows land on both sides of the page boundary; offset paging would read a row of the first page again.
    january = [row for row in snapshot_rows if row["fecha_hecho"].startswith("2019-01")][:40]
    added = fresh_emulator.dataset.add_rows(january)
    assert any(row_id < last_seen for row_id in added) and any(row_id > last_seen for row_id in added)

    fetched += list(pages)

    ids = _row_ids(fetched)
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids)
    live = set(_source_ids(fresh_emulator, YEAR_2019))
    assert live - set(ids) == {row_id for row_id in added if row_id < last_seen}  # only those behind the cursor


def test_an_empty_window_is_one_empty_page(emulator):
    before_the_data = Window(date(1990, 1, 1), date(1990, 2, 1))
    pages = list(socrata_for(emulator).pages(SOURCE_FIELDS, before_the_data.soql()))
    assert [page.num_rows for page in pages] == [0]
    assert pages[0].column_names == ["row_id", *SOURCE_FIELDS[1:]]
