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
from delitos_platform.lake.rows import SOURCE_FIELDS, type_page
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
    kept, refused, pages = [], [], 0
    for page in socrata.pages(SOURCE_FIELDS, where):
        typed = type_page(page)
        kept.append(typed.rows)
        refused.append(typed.quarantine)
        pages += 1
        log.debug("page %d: %d rows, %d refused", pages, typed.rows.num_rows, typed.quarantine.num_rows)
    rows_by_month = split_by_month(pa.concat_tables([LAKE_SCHEMA.empty_table(), *kept]), "fecha_hecho")
    refused_by_month = split_by_month(pa.concat_tables([QUARANTINE_SCHEMA.empty_table(), *refused]), "fecha_hecho")
    _check_nothing_outside(window, rows_by_month, refused_by_month)
    with ThreadPoolExecutor(max_workers=WRITERS) as writers:
        months = list(
            writers.map(
                lambda month: _write_month(
                    lake,
                    month,
                    rows_by_month.get(month[:7], LAKE_SCHEMA.empty_table()),
                    refused_by_month.get(month[:7], QUARANTINE_SCHEMA.empty_table()),
                ),
                window.month_keys(),
            )
        )
    return Extraction(where=where, pages=pages, months=months, seconds=time.perf_counter() - started)


def split_by_month(table: pa.Table, date_column: str) -> dict[str, pa.Table]:
    """Rows grouped by the ``YYYY-MM`` of ``date_column`` (a date or a timestamp string), each sorted by row id."""
    month = pc.utf8_slice_codeunits(table[date_column].cast(pa.string()), 0, 7).fill_null("")
    ordered = table.append_column("_month", month).sort_by([("_month", "ascending"), ("row_id", "ascending")])
    groups, start = {}, 0
    runs = pc.run_end_encode(ordered["_month"].combine_chunks())
    for end, key in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
        groups[key] = ordered.slice(start, end - start).drop_columns("_month")
        start = end
    return groups


def _write_month(lake: LakeResource, month: str, rows: pa.Table, refused: pa.Table) -> MonthWritten:
    data = to_parquet_bytes(rows)
    uri = lake.write(data_key(month), data)
    quarantine_uri = lake.write(quarantine_key(month), to_parquet_bytes(refused))
    return MonthWritten(month, rows.num_rows, refused.num_rows, len(data), uri, quarantine_uri)


def _check_nothing_outside(window: Window, *groups: dict[str, pa.Table]) -> None:
    """The source answered the window's query: a row from another month means it broke the contract."""
    months = {key[:7] for key in window.month_keys()}
    strays = {key: table.num_rows for group in groups for key, table in group.items() if key not in months}
    if strays:
        raise ValueError(f"Socrata returned rows outside [{window.start}, {window.end}): {strays}")
