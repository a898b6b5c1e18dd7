"""Source → lake: fetch a window of months from Socrata and write one Parquet object per month."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from delitos_platform.contract import LAKE_SCHEMA, QUARANTINE_SCHEMA
from delitos_platform.lake.parquet import to_parquet_bytes
from delitos_platform.lake.rows import MEMORY_SCHEMA, SOURCE_FIELDS, type_page
from delitos_platform.lake.storage import LakeResource, data_key, quarantine_key
from delitos_platform.partitions import Window
from delitos_platform.socrata import SocrataResource

WRITERS = 4


@dataclass(frozen=True)
class MonthWritten:
    """What one month's objects hold."""

    month: str
    rows: int
    quarantined: int
    bytes: int
    uri: str
    quarantine_uri: str


@dataclass(frozen=True)
class Extraction:
    """The outcome of one extraction: the query sent, its pages and every month written."""

    where: str
    pages: int
    months: list[MonthWritten]
    seconds: float

    @property
    def rows(self) -> int:
        """Rows written to the lake."""
        return sum(month.rows for month in self.months)

    @property
    def quarantined(self) -> int:
        """Rows refused and written to quarantine."""
        return sum(month.quarantined for month in self.months)


def extract_to_lake(
    socrata: SocrataResource, lake: LakeResource, window: Window, log: logging.Logger | None = None
) -> Extraction:
    """Fetch every row of ``window`` (by ``:id``), type it, and write each month's objects.

    Every month of the window gets both objects, empty ones included, so a re-run always replaces
    what an earlier run wrote.
    """
    log = log or logging.getLogger(__name__)
    started = time.perf_counter()
    lake.check_writable()
    where = window.soql()
    kept_pages, refused_pages, pages = [], [], 0
    for page in socrata.pages(SOURCE_FIELDS, where):
        typed = type_page(page)
        kept_pages.append(typed.rows)
        refused_pages.append(typed.quarantine)
        pages += 1
        log.debug("page %d: %d rows, %d refused", pages, typed.rows.num_rows, typed.quarantine.num_rows)
    fetched = time.perf_counter()
    log.info(f"fetched {pages} pages in {fetched - started:.2f} s")
    rows = MonthGroups(pa.concat_tables([*kept_pages, MEMORY_SCHEMA.empty_table()]))
    refused = MonthGroups(pa.concat_tables([*refused_pages, QUARANTINE_SCHEMA.empty_table()]))
    _check_nothing_outside(window, rows, refused)
    with ThreadPoolExecutor(max_workers=WRITERS) as writers:
        months = list(writers.map(lambda month: _write_month(lake, month, rows, refused), window.month_keys()))
    log.info(f"wrote {2 * len(months)} objects in {time.perf_counter() - fetched:.2f} s")
    return Extraction(where=where, pages=pages, months=months, seconds=time.perf_counter() - started)


class MonthGroups:
    """A table's rows grouped by the ``YYYY-MM`` of ``fecha_hecho``, each month sorted by ``row_id``.

    Sorting yields indices, not a copy: a month's rows are gathered only when it is written.
    """

    def __init__(self, table: pa.Table) -> None:
        # One chunk with one dictionary per column makes each month's ``take`` a cheap gather.
        self.table = table.unify_dictionaries().combine_chunks()
        day = self.table["fecha_hecho"]
        if pa.types.is_string(day.type):  # quarantined rows keep the source's text
            day = pc.strptime(pc.utf8_slice_codeunits(day, 0, 10), format="%Y-%m-%d", unit="s", error_is_null=True)
        month = pc.add(pc.multiply(pc.year(day), 100), pc.month(day)).fill_null(0)
        keyed = pa.table({"month": month, "row_id": self.table["row_id"]})
        self.order = pc.sort_indices(keyed, sort_keys=[("month", "ascending"), ("row_id", "ascending")])
        self.spans: dict[str, tuple[int, int]] = {}
        if self.table.num_rows:
            runs = pc.run_end_encode(month.take(self.order).combine_chunks())
            ends = runs.run_ends.to_pylist()
            starts = [0, *ends[:-1]]
            for yyyymm, start, end in zip(runs.values.to_pylist(), starts, ends, strict=True):
                self.spans[f"{yyyymm // 100:04d}-{yyyymm % 100:02d}"] = (start, end)

    def month(self, month_key: str, schema: pa.Schema) -> pa.Table:
        """The rows of one month (``YYYY-MM-01``), sorted by ``row_id`` and cast to ``schema``."""
        start, end = self.spans.get(month_key[:7], (0, 0))
        return self.table.take(self.order[start:end]).cast(schema)


def _write_month(lake: LakeResource, month: str, rows: MonthGroups, refused: MonthGroups) -> MonthWritten:
    month_rows, month_refused = rows.month(month, LAKE_SCHEMA), refused.month(month, QUARANTINE_SCHEMA)
    data = to_parquet_bytes(month_rows)
    uri = lake.write(data_key(month), data)
    quarantine_uri = lake.write(quarantine_key(month), to_parquet_bytes(month_refused))
    return MonthWritten(month, month_rows.num_rows, month_refused.num_rows, len(data), uri, quarantine_uri)


def _check_nothing_outside(window: Window, *groups: MonthGroups) -> None:
    """The source answered the window's query: a row from another month means it broke the contract."""
    months = {key[:7] for key in window.month_keys()}
    strays = {key: end - start for group in groups for key, (start, end) in group.spans.items() if key not in months}
    if strays:
        raise ValueError(f"Socrata returned rows outside [{window.start}, {window.end}): {strays}")
