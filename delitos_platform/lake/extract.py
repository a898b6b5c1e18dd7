"""Source → lake: fetch a window of months, write each month to staging, audit it, and only then publish it.

The window is read as sub-windows of whole months, planned from the source's own per-month counts so that
each holds about one page of rows; a few are fetched at once, each paged by identity (keyset on ``:id``). A
sub-window's months are typed and staged as soon as it arrives, so the run holds a bounded number of rows
whatever the window's size.

Before and after paging the source's version is read (``rowsUpdatedAt``; per month ``count(*)`` and
``max(:updated_at)``). A month that changed while it was read, or whose rows do not add up to its count, is
read again (a bounded number of times) or the extraction fails naming it. Every staged object is then read
back and audited (schema, rows, row ids against what was fetched), and the window's rows are weighed against
what the lake publishes (the volume guard, ``delitos_platform/volume.py``); only when both pass are they
published. A failed audit publishes nothing; a held window keeps its audited objects aside, unpublished: the lake
keeps what it had either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from delitos_platform.contract import QUARANTINE_SCHEMA
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.parquet import to_parquet_bytes
from delitos_platform.lake.quality import object_schema_drift, source_schema_drift
from delitos_platform.lake.rows import quarantine_rows, source_fields, type_page
from delitos_platform.lake.storage import (
    LakeError,
    LakeResource,
    data_key,
    held_key,
    out_of_calendar_key,
    quarantine_key,
    staging_key,
)
from delitos_platform.lake.versions import UPDATED_AT_METADATA, VERSION_METADATA
from delitos_platform.partitions import Window, calendar, group_months, out_of_calendar_soql, pending_window
from delitos_platform.row_ids import RowIds
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.socrata.apis import API_NAMES
from delitos_platform.socrata.versions import MonthVersion, month_versions, rows_updated_at
from delitos_platform.volume import HOW_TO_ACCEPT, VolumeVerdict

# How many times months that changed while they were read are read again before the run gives up.
REREADS = 2


@dataclass(frozen=True)
class SourceState:
    """The source's version at one moment: ``rowsUpdatedAt`` and the version of each month of a window."""

    rows_updated_at: int
    months: dict[str, MonthVersion]
    out_of_calendar: int

    @classmethod
    def read(
        cls, socrata: SocrataResource, window: Window, updated_at: int, dataset: LakeDataset = DELITOS
    ) -> SourceState:
        """The state at ``rowsUpdatedAt`` = ``updated_at`` (just read by the caller): one grouped query, one count."""
        months = month_versions(socrata, window.soql(), f"counting the rows of {window.describe()}")
        outside = out_of_calendar_soql(first_month=dataset.first_month)
        return cls(updated_at, months, socrata.count(outside, "counting the rows outside the calendar"))

    def rows(self, month: str) -> int:
        """The source's count of ``month`` (0 when it has none)."""
        version = self.months.get(month)
        return version.rows if version else 0


@dataclass(frozen=True)
class StagedObject:
    """One object written to staging: where it will be published, and what it must hold."""

    key: str
    staged: str
    contract: pa.Schema
    ids: RowIds
    bytes: int


@dataclass(frozen=True)
class StagedMonth:
    """A month's two objects in staging, and the source version the month was read at."""

    month: str
    rows: StagedObject
    quarantine: StagedObject
    read_at: MonthVersion | None

    @property
    def version(self) -> str:
        """The source version the month was read at, as its objects record it (``0@`` for a month with no rows)."""
        return _tag(self.read_at)

    @property
    def fetched(self) -> int:
        """Every row fetched for the month: kept and refused."""
        return self.rows.ids.count + self.quarantine.ids.count


@dataclass(frozen=True)
class MonthWritten:
    """What one published month's objects hold."""

    month: str
    rows: int
    quarantined: int
    bytes: int
    uri: str
    quarantine_uri: str
    ids: RowIds
    version: str


@dataclass(frozen=True)
class Extraction:
    """The outcome of one extraction: the query sent, its pages, every month published and the source version."""

    where: str
    pages: int
    months: list[MonthWritten]
    seconds: float
    rows_updated_at: int
    out_of_calendar: int
    volume: VolumeVerdict
    drop_accepted: bool = False
    reread: list[str] = field(default_factory=list)
    api: str = ""  # the query API it went through: SODA3 or SODA2

    @property
    def rows(self) -> int:
        """Rows written to the lake."""
        return sum(month.rows for month in self.months)

    @property
    def quarantined(self) -> int:
        """Rows refused and written to quarantine."""
        return sum(month.quarantined for month in self.months)


class SourceChangedError(SocrataError):
    """The source kept changing while it was read: the run cannot say which version it holds."""


class DuplicateIdsError(SocrataError):
    """The source served one ``:id`` on several rows: a fault of the source, held until it is fixed."""


class ContractDriftError(SocrataError):
    """The source's published columns no longer match the contract: nothing was fetched."""

    def __init__(self, drift: list[str]) -> None:
        self.drift = [f"source: {line}" for line in drift]
        super().__init__(f"the source no longer matches the contract: {'; '.join(self.drift)}")


class AuditError(LakeError):
    """A staged object is not what was fetched: nothing was published."""


class VolumeHeldError(LakeError):
    """The window shrank implausibly against what the lake publishes: nothing was published, its objects kept aside."""

    def __init__(self, verdict: VolumeVerdict, held_at: str) -> None:
        self.verdict, self.held_at = verdict, held_at
        super().__init__(
            f"the lake held the run's months, nothing was published: {verdict.describe()}; {HOW_TO_ACCEPT}"
        )


def extract_to_lake(
    socrata: SocrataResource,
    lake: LakeResource,
    window: Window,
    run_id: str,
    *,
    log: logging.Logger | None = None,
    run_is_over: Callable[[str], bool] = lambda _: False,
    accept_drop: bool = False,
    dataset: LakeDataset = DELITOS,
) -> Extraction:
    """Fetch every row of ``window`` (by ``:id``), stage each month's objects, audit them, then publish them.

    ``dataset`` says which columns, rules and object keys (4v6r-wu98's unless given). The source's columns are
    compared with its entry first: a drifted source is refused before any row is
    fetched or any object written.

    Every month of the window gets both objects, empty ones included, so a re-run always replaces what an
    earlier run wrote. Rows outside the calendar (no date, before the first month, in the future) go to their
    own quarantine object, replaced by every run. What killed runs left in staging is discarded first
    (``run_is_over`` tells which runs are over where the lake cannot tell by itself).

    A window the volume guard holds raises ``VolumeHeldError`` with its audited objects kept under ``_held/``,
    unless ``accept_drop``: the operator knows the drop is real, and the extraction records that it was accepted.
    """
    log = log or logging.getLogger(__name__)
    lake.check_writable()
    with lake.staging_area(run_id):
        swept = lake.sweep_staging(lambda other: other != run_id and run_is_over(other))
        if swept:
            log.info(f"discarded what {len(swept)} runs that ended uncleanly left in staging: {', '.join(swept)}")
        return _extract(socrata, lake, window, run_id, log, accept_drop=accept_drop, dataset=dataset)


def _extract(
    socrata: SocrataResource,
    lake: LakeResource,
    window: Window,
    run_id: str,
    log: logging.Logger,
    *,
    accept_drop: bool,
    dataset: LakeDataset,
) -> Extraction:
    started = time.perf_counter()
    metadata = socrata.metadata()  # one request: the published columns and rowsUpdatedAt
    drift = source_schema_drift(metadata.get("columns", []), dataset)
    if drift:
        raise ContractDriftError(drift)
    stager = MonthStager(socrata, lake, run_id, dataset)
    try:
        state = SourceState.read(socrata, window, int(metadata["rowsUpdatedAt"]), dataset)
        staged = stager.stage(window.month_keys(), state)
        state, reread = _settle(stager, window, staged, state, log)
        out_of_calendar = stager.stage_out_of_calendar(state.out_of_calendar)
        log.info(f"fetched {stager.pages} pages in {time.perf_counter() - started:.2f} s")
        objects = [object_ for month in staged.values() for object_ in (month.rows, month.quarantine)]
        _audit(lake, [*objects, out_of_calendar])
        published = published_rows(lake, window, dataset)
        volume = lake.volume_guard().judge(published, {m: s.fetched for m, s in staged.items()})
        if not volume.plausible and not accept_drop:
            stager.keep_aside([*objects, out_of_calendar])
            raise VolumeHeldError(volume, lake.uri(held_key("", run_id)))
        if not volume.plausible:
            log.warning(f"publishing a drop the run accepted: {volume.describe()}")
        months = [stager.publish_month(staged[month]) for month in window.month_keys()]
        stager.publish(out_of_calendar)
    except BaseException:
        stager.discard_leftovers(log)  # the failure the run reports is the one above, never this cleanup's
        raise
    log.info(f"published {2 * len(months) + 1} audited objects in {time.perf_counter() - started:.2f} s")
    return Extraction(
        where=window.soql(),
        pages=stager.pages,
        months=months,
        seconds=time.perf_counter() - started,
        rows_updated_at=state.rows_updated_at,
        out_of_calendar=out_of_calendar.ids.count,
        volume=volume,
        drop_accepted=not volume.plausible,
        reread=reread,
        api=API_NAMES.get(socrata.api_in_use or "", ""),
    )


def published_rows(lake: LakeResource, window: Window, dataset: LakeDataset = DELITOS) -> dict[str, int]:
    """The source rows (kept and quarantined) the lake publishes for each month of ``window`` it holds.

    A month whose objects cannot be read (a corrupt object) has no baseline: its extraction rewrites it.
    """
    published = {}
    for month in window.month_keys():
        rows, quarantine = data_key(month, dataset), quarantine_key(month, dataset)
        if not (lake.exists(rows) and lake.exists(quarantine)):
            continue
        try:
            published[month] = lake.parquet_rows(rows) + lake.parquet_rows(quarantine)
        except LakeError:
            continue
    return published


class MonthStager:
    """Fetches months a sub-window at a time and writes their objects to staging; remembers what it staged."""

    def __init__(
        self, socrata: SocrataResource, lake: LakeResource, run_id: str, dataset: LakeDataset = DELITOS
    ) -> None:
        self.socrata, self.lake, self.run_id, self.dataset = socrata, lake, run_id, dataset
        self.pages = 0
        self._staged: set[str] = set()

    def stage(self, months: Sequence[str], state: SourceState) -> dict[str, StagedMonth]:
        """Fetch and stage ``months`` (partition keys), a few sub-windows at once."""
        plan = group_months(months, {month: state.rows(month) for month in months}, self.socrata.page_size)
        with ThreadPoolExecutor(max_workers=self.socrata.concurrent_requests) as fetchers:
            staged = fetchers.map(lambda group: self._stage_sub_window(group, state), plan)
            return {month.month: month for group in staged for month in group}

    def stage_out_of_calendar(self, expected: int) -> StagedObject:
        """Fetch the rows outside the calendar and stage their quarantine object (checked against the count)."""
        where = out_of_calendar_soql(first_month=self.dataset.first_month)
        pages = self._fetch(where, "paging the rows outside the calendar")
        raw = pa.concat_tables([*pages, self.dataset.raw_schema.empty_table()])
        if raw.num_rows != expected:
            raise SourceChangedError(
                f"the source changed while its out-of-calendar rows were read ({raw.num_rows:,} read, "
                f"{expected:,} counted): run again"
            )
        refused = _out_of_calendar_rows(raw, self.dataset)
        return self._write(out_of_calendar_key(self.dataset), refused, QUARANTINE_SCHEMA)

    def discard_leftovers(self, log: logging.Logger) -> None:
        """Remove what a failed extraction left in staging; what cannot be removed now (the lake itself failing)
        is said, and left for the next extraction's sweep: it must not hide the failure that stopped this one."""
        for staged in list(self._staged):
            try:
                self.lake.discard(staged)
            except LakeError as error:
                log.warning(f"{error}: left in staging, discarded by the next extraction")
        self._staged.clear()

    def _stage_sub_window(self, months: list[str], state: SourceState) -> list[StagedMonth]:
        window = Window(Window.for_month(months[0]).start, Window.for_month(months[-1]).end)
        kept, refused = [], []
        for page in self._fetch(window.soql(), f"paging the rows of {window.describe()}"):
            typed = type_page(page, self.dataset)
            kept.append(typed.rows)
            refused.append(typed.quarantine)
        rows = MonthGroups(pa.concat_tables([*kept, self.dataset.memory_schema.empty_table()]))
        quarantined = MonthGroups(pa.concat_tables([*refused, QUARANTINE_SCHEMA.empty_table()]))
        _check_nothing_outside(window, rows, quarantined)
        _check_ids_unique(rows, quarantined)
        return [self._stage_month(month, rows, quarantined, state) for month in months]

    def _fetch(self, where: str, purpose: str) -> Iterator[pa.Table]:
        for page in self.socrata.pages(source_fields(self.dataset), where, purpose):
            self.pages += 1
            yield page

    def _stage_month(self, month: str, rows: MonthGroups, quarantined: MonthGroups, state: SourceState) -> StagedMonth:
        read_at = state.months.get(month)
        version = {VERSION_METADATA: _tag(read_at), UPDATED_AT_METADATA: str(state.rows_updated_at)}
        schema, dataset = self.dataset.lake_schema, self.dataset
        refused = quarantined.month(month, QUARANTINE_SCHEMA)
        return StagedMonth(
            month,
            self._write(data_key(month, dataset), rows.month(month, schema), schema, version),
            self._write(quarantine_key(month, dataset), refused, QUARANTINE_SCHEMA, version),
            read_at,
        )

    def _write(
        self, key: str, table: pa.Table, contract: pa.Schema, version: dict[str, str] | None = None
    ) -> StagedObject:
        table = table.replace_schema_metadata(version) if version else table
        data = to_parquet_bytes(table)
        staged = staging_key(key, self.run_id)
        self._staged.add(staged)
        self.lake.write(staged, data)
        return StagedObject(key, staged, contract, RowIds.of(table["row_id"]), len(data))

    def publish(self, staged: StagedObject) -> str:
        """Publish one audited object; returns its URI."""
        uri = self.lake.publish(staged.staged, staged.key)
        self._staged.discard(staged.staged)
        return uri

    def keep_aside(self, objects: Sequence[StagedObject]) -> None:
        """Move audited objects out of staging into the run's ``_held/`` folder, where no layer reads them."""
        for staged in objects:
            self.lake.publish(staged.staged, held_key(staged.key, self.run_id))
            self._staged.discard(staged.staged)

    def publish_month(self, month: StagedMonth) -> MonthWritten:
        """Publish a month's two audited objects."""
        uri, quarantine_uri = self.publish(month.rows), self.publish(month.quarantine)
        counts = (month.rows.ids.count, month.quarantine.ids.count)
        return MonthWritten(month.month, *counts, month.rows.bytes, uri, quarantine_uri, month.rows.ids, month.version)


def _settle(
    stager: MonthStager, window: Window, staged: dict[str, StagedMonth], state: SourceState, log: logging.Logger
) -> tuple[SourceState, list[str]]:
    """Re-read the months that changed while they were read, until the lake's months match the source's."""
    socrata = stager.socrata
    reread: list[str] = []
    for attempt in range(REREADS + 1):
        updated_at = rows_updated_at(socrata)
        if updated_at != state.rows_updated_at:
            state = SourceState.read(socrata, window, updated_at, stager.dataset)
        stale = [month for month, held in staged.items() if not _matches(held, state)]
        if not stale:
            return state, reread
        if attempt == REREADS:
            break
        log.warning(f"the source changed while it was read: reading {', '.join(m[:7] for m in stale)} again")
        staged.update(stager.stage(stale, state))
        reread += [month for month in stale if month not in reread]
    raise SourceChangedError(
        f"the source kept changing while it was read: {', '.join(m[:7] for m in stale)} still differ after "
        f"{REREADS} re-reads; run again once the source is quiet"
    )


def _tag(version: MonthVersion | None) -> str:
    return version.tag() if version else "0@"


def _matches(held: StagedMonth, state: SourceState) -> bool:
    """The month was read at the source's current version and holds every row the source counts."""
    return held.read_at == state.months.get(held.month) and held.fetched == state.rows(held.month)


def _audit(lake: LakeResource, objects: Sequence[StagedObject]) -> None:
    """Read every staged object back: its schema, rows and row ids must be what was fetched."""
    problems = []
    for staged in objects:
        parquet = pq.ParquetFile(pa.BufferReader(lake.read(staged.staged)))
        problems += [f"{staged.key}: {line}" for line in object_schema_drift(parquet.schema_arrow, staged.contract)]
        held = RowIds.of(parquet.read(columns=["row_id"], use_threads=False)["row_id"])
        if held != staged.ids:
            problems.append(f"{staged.key}: holds {held.describe()}, fetched {staged.ids.describe()}")
    if problems:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        raise AuditError(f"the lake audit failed, nothing was published: {shown}")


class MonthGroups:
    """A table's rows grouped by the ``YYYY-MM`` of ``fecha_hecho``, each month sorted by ``row_id``.

    Sorting yields indices, not a copy: a month's rows are gathered only when it is written.
    """

    def __init__(self, table: pa.Table) -> None:
        # One chunk with one dictionary per column makes each month's ``take`` a cheap gather.
        self.table = table.unify_dictionaries().combine_chunks()
        month = _yyyymm(self.table["fecha_hecho"]).fill_null(0)
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


def _yyyymm(day: pa.ChunkedArray) -> pa.ChunkedArray:
    """``YYYYMM`` of a date column, or of the source's text (quarantined rows keep it); null when unreadable."""
    if pa.types.is_string(day.type):
        day = pc.strptime(pc.utf8_slice_codeunits(day, 0, 10), format="%Y-%m-%d", unit="s", error_is_null=True)
    return pc.add(pc.multiply(pc.year(day), 100), pc.month(day))


def _out_of_calendar_rows(raw: pa.Table, dataset: LakeDataset) -> pa.Table:
    """Rows no month holds, as quarantine rows whose reason says where their date falls."""
    first, future = calendar(first_month=dataset.first_month).start.isoformat(), pending_window().end.isoformat()

    def reason(fecha: str | None) -> str:
        if fecha is None:
            return "fecha_hecho is missing"
        if fecha[:10] < first:
            return f"fecha_hecho before {first}, the first month"
        return f"fecha_hecho on or after {future}, in the future"

    reasons = [reason(fecha) for fecha in raw["fecha_hecho"].to_pylist()]
    return quarantine_rows(raw, reasons, dataset).sort_by("row_id")


def _check_ids_unique(*groups: MonthGroups) -> None:
    """Each ``:id`` names one row: an id served twice would double a row in every layer and in the history."""
    ids = pa.chunked_array([group.table["row_id"] for group in groups], pa.string())
    counts = pc.value_counts(ids.drop_null())
    doubled = counts.filter(pc.greater(counts.field("counts"), 1))
    if not len(doubled):
        return
    worst = max(doubled.to_pylist(), key=lambda entry: (entry["counts"], entry["values"]))
    months = sorted(
        month
        for group in groups
        for month, (start, end) in group.spans.items()
        if pc.any(pc.is_in(group.table["row_id"].take(group.order[start:end]), doubled.field("values"))).as_py()
    )
    held = "the month is" if len(months) == 1 else "these months are"
    raise DuplicateIdsError(
        f"the source served {len(doubled)} :id{'s' * (len(doubled) > 1)} more than once in {', '.join(months)} "
        f"({worst['values']} on {worst['counts']} rows): a fault of the source; nothing was published, and "
        f"{held} held until it serves each :id once"
    )


def _check_nothing_outside(window: Window, *groups: MonthGroups) -> None:
    """The source answered the window's query: a row from another month means it broke the contract."""
    months = {key[:7] for key in window.month_keys()}
    strays = {key: end - start for group in groups for key, (start, end) in group.spans.items() if key not in months}
    if strays:
        raise SocrataError(f"Socrata returned rows outside [{window.start}, {window.end}): {strays}")
