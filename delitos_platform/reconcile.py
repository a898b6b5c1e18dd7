"""Reconciliation by identity: per month, source ``count(*)`` = lake rows + quarantined rows, and bronze = lake
by row-id set (count and digest); for the whole dataset, a ledger where every source row has one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.quality import OUTSIDE_MONTH, value_offenders
from delitos_platform.lake.storage import LakeError, LakeResource, data_key, out_of_calendar_key, quarantine_key
from delitos_platform.partitions import Window, out_of_calendar_soql, pending_window
from delitos_platform.row_ids import NO_ROWS, RowIds
from delitos_platform.socrata import SocrataResource
from delitos_platform.socrata.versions import month_versions

# Rows checked together: value rules run over many months at once (Python's share is per call), and a bounded
# number of rows keeps the run's memory flat however large the window is.
ROWS_AT_ONCE = 50_000


@dataclass(frozen=True)
class LakeMonth:
    """What the lake holds for one month: the row ids of its rows, its quarantined rows, rule offenders, and the
    source versions its two objects were read at (``(rows, quarantine)``, set only when they differ)."""

    ids: RowIds
    quarantined: int
    offenders: dict[str, int]
    torn: tuple[str, str] | None = None


@dataclass(frozen=True)
class MonthCounts:
    """One month on every layer."""

    month: str
    source: int
    lake: RowIds
    quarantined: int
    bronze: RowIds
    torn: tuple[str, str] | None = None

    @property
    def reconciles(self) -> bool:
        """Nothing lost, nothing doubled: the source's rows are all in the lake, and bronze holds exactly them;
        the month's rows and quarantine are of one source version (one unit, as the extraction publishes them)."""
        return self.source == self.lake.count + self.quarantined and self.bronze == self.lake and not self.torn

    def describe(self) -> str:
        """The month's figures, as the check's message shows them."""
        text = (
            f"{self.month[:7]}: source {self.source:,}, lake {self.lake.count:,} + quarantined {self.quarantined:,}, "
            f"bronze {self.bronze.count:,}"
        )
        if self.bronze.count == self.lake.count and self.bronze != self.lake:
            text += " (other row ids than the lake's)"
        if self.torn:
            rows, quarantine = self.torn
            text += (
                f" (its rows are of source version {rows} and its quarantine of {quarantine}: a run stopped between "
                "their publishes; run the month again)"
            )
        return text


def source_counts(socrata: SocrataResource, window: Window) -> dict[str, int]:
    """``count(*)`` per month asked of the source, with the same ``$where`` the extraction uses."""
    versions = month_versions(socrata, window.soql(), f"counting the rows of {window.describe()}")
    return {month: version.rows for month, version in versions.items()}


def read_lake(lake: LakeResource, months: Sequence[str], dataset: LakeDataset = DELITOS) -> dict[str, LakeMonth]:
    """Each month's objects as the lake stores them: row ids, quarantined rows and value-rule offenders.

    Months are read in order and checked about ``ROWS_AT_ONCE`` rows at a time. A row whose ``fecha_hecho`` is
    outside its object's month fails at once, naming the object: loaded, it would land in another month than
    the one it was swapped in with.
    """
    held: dict[str, LakeMonth] = {}
    batch: dict[str, pa.Table] = {}
    rows = 0
    for month in months:
        batch[month] = lake.read_table(data_key(month, dataset))
        rows += batch[month].num_rows
        if rows >= ROWS_AT_ONCE or month == months[-1]:
            held.update(_check_months(lake, batch, dataset))
            batch, rows = {}, 0
    return held


def _check_months(
    lake: LakeResource, tables: Mapping[str, pa.Table], dataset: LakeDataset
) -> list[tuple[str, LakeMonth]]:
    months = list(tables)
    offenders = value_offenders(tables, dataset)
    strays = [month for month in months if offenders[month].get(OUTSIDE_MONTH)]
    if strays:
        month = strays[0]
        raise LakeError(
            f"{lake.uri(data_key(month, dataset))} holds {offenders[month][OUTSIDE_MONTH]:,} rows of another month "
            f"than {month[:7]}: nothing was loaded"
        )
    return [
        (
            month,
            LakeMonth(
                RowIds.of(tables[month]["row_id"]),
                lake.parquet_rows(quarantine_key(month, dataset)),
                found,
                _torn(lake, month, dataset),
            ),
        )
        for month, found in offenders.items()
    ]


def _torn(lake: LakeResource, month: str, dataset: LakeDataset) -> tuple[str, str] | None:
    """The versions of a month's two objects when they differ (a kill between their publishes), else ``None``."""
    rows, quarantine = (lake.object_version(key(month, dataset)) for key in (data_key, quarantine_key))
    tags = tuple(version.month_tag if version else "none recorded" for version in (rows, quarantine))
    # The month's own tag (count@max(:updated_at)): rowsUpdatedAt also moves when only other months changed.
    return None if tags[0] == tags[1] else tags


def reconcile(
    months: Sequence[str],
    source: Mapping[str, int],
    lake: Mapping[str, LakeMonth],
    bronze: Mapping[str, RowIds],
) -> list[MonthCounts]:
    """The figures of every month on every layer."""
    return [
        MonthCounts(
            month,
            source.get(month, 0),
            lake[month].ids,
            lake[month].quarantined,
            bronze.get(month, NO_ROWS),
            lake[month].torn,
        )
        for month in months
    ]


@dataclass(frozen=True)
class Ledger:
    """Where every row of the source is: a lake month, its quarantine, out of the calendar, or pending."""

    source: int
    lake: int
    quarantined: int
    out_of_calendar: int
    pending: int
    missing_months: list[str]

    @property
    def balances(self) -> bool:
        """Every source row is in exactly one place, and the lake has every month of the calendar."""
        placed = self.lake + self.quarantined + self.out_of_calendar + self.pending
        return not self.missing_months and self.source == placed

    def describe(self) -> str:
        """The ledger in one line."""
        text = (
            f"source {self.source:,} {'=' if self.balances else '≠'} lake {self.lake:,} + quarantined "
            f"{self.quarantined:,} + out of calendar {self.out_of_calendar:,} + pending {self.pending:,} "
            f"(the current month)"
        )
        if self.missing_months:
            shown = ", ".join(month[:7] for month in self.missing_months[:6])
            more = f" and {len(self.missing_months) - 6} more" if len(self.missing_months) > 6 else ""
            text += f"; the lake has no object for {len(self.missing_months)} months ({shown}{more})"
        return text


def dataset_ledger(socrata: SocrataResource, lake: LakeResource, dataset: LakeDataset = DELITOS) -> Ledger:
    """The whole dataset's ledger: four ``count(*)`` questions to the source and the lake's footers."""
    total = socrata.count("1 = 1", "counting every row")
    pending = socrata.count(pending_window().soql(), "counting the rows of the current month")
    months = dataset.partitions.get_partition_keys()
    held = [month for month in months if lake.exists(data_key(month, dataset))]
    missing = sorted(set(months) - set(held))
    lake_rows = sum(lake.parquet_rows(data_key(month, dataset)) for month in held)
    quarantined = sum(lake.parquet_rows(quarantine_key(month, dataset)) for month in held)
    out_of_calendar = 0
    if lake.exists(out_of_calendar_key(dataset)):
        out_of_calendar = lake.parquet_rows(out_of_calendar_key(dataset))
    elif socrata.count(out_of_calendar_soql(first_month=dataset.first_month), "counting the rows outside the calendar"):
        missing.append("out of calendar")
    return Ledger(total, lake_rows, quarantined, out_of_calendar, pending, missing)


def lake_counts(lake: LakeResource, month_key: str, dataset: LakeDataset = DELITOS) -> tuple[int, int]:
    """Rows and quarantined rows of a month of ``dataset``, read from the Parquet footers."""
    return lake.parquet_rows(data_key(month_key, dataset)), lake.parquet_rows(quarantine_key(month_key, dataset))
