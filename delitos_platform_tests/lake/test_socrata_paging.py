"""Paging with several requests in flight: every row once, in ``:id`` order, whatever the source does meanwhile."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.rows import SOURCE_FIELDS
from delitos_platform.partitions import Window
from delitos_platform.socrata import SocrataResource
from delitos_platform_tests.conftest import socrata_for

YEAR_2019 = Window(date(2019, 1, 1), date(2020, 1, 1))


def _row_ids(pages: list[pa.Table]) -> list[str]:
    return [row_id for page in pages for row_id in page["row_id"].to_pylist()]


def _source_ids(server: EmulatorServer, window: Window) -> list[str]:
    rows = socrata_for(server).query(select=":id", where=window.soql(), order=":id", limit=50_000)
    return [row[":id"] for row in rows]


def test_concurrent_pages_arrive_in_id_order_each_row_once(emulator):
    expected = _source_ids(emulator, YEAR_2019)
    assert len(expected) > 10 * 97  # enough rows for many pages

    for in_flight in (1, 2, 5):
        pages = list(
            socrata_for(emulator, page_size=97, concurrent_requests=in_flight).pages(SOURCE_FIELDS, YEAR_2019.soql())
        )
        assert _row_ids(pages) == expected, in_flight
        assert [page.num_rows for page in pages[:-1]] == [97] * (len(pages) - 1)
        assert pages[-1].num_rows < 97


class StaleCountSocrata(SocrataResource):
    """A source whose ``count(*)`` lags behind its rows, as when rows arrive between the count and the pages."""

    def _pages_planned(self, where: str) -> int:
        return 1


def test_a_source_larger_than_its_count_is_paged_to_its_end(emulator):
    expected = _source_ids(emulator, YEAR_2019)
    stale = StaleCountSocrata(url=emulator.url, page_size=97, concurrent_requests=3)

    pages = list(stale.pages(SOURCE_FIELDS, YEAR_2019.soql()))

    assert _row_ids(pages) == expected
    assert len(pages) == len(expected) // 97 + 1


def test_an_empty_window_is_one_empty_page(emulator):
    before_the_data = Window(date(1990, 1, 1), date(1990, 2, 1))
    pages = list(socrata_for(emulator, concurrent_requests=3).pages(SOURCE_FIELDS, before_the_data.soql()))
    assert [page.num_rows for page in pages] == [0]
    assert pages[0].column_names == ["row_id", *SOURCE_FIELDS[1:]]
