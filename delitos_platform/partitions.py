"""Monthly partitions on ``fecha_hecho`` and the half-open ``[start, end)`` windows built from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg

from delitos_platform.contract import ENTRY

# 4v6r-wu98's first month, as its entry declares it (a partition key is the month's first day).
FIRST_MONTH = f"{ENTRY.first_month}-01"
# Dagster's run tags for a run over a range of partitions: one run backfills any number of months.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# The last partition is the last complete month; the source publishes a month after it ends.
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH)


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of ONE run over the months ``first`` to ``last`` (partition keys, both included)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def tagged_range(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The ``(first, last)`` months a run's tags ask for; None when the run is not over a range."""
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return tags[RANGE_START_TAG], tags[RANGE_END_TAG]
    return None


@dataclass(frozen=True)
class Window:
    """A half-open interval of days ``[start, end)``: every window in the platform is built here."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"empty window [{self.start}, {self.end})")

    @classmethod
    def from_time_window(
        cls, time_window: dg.TimeWindow, today: date | None = None, first_month: str = FIRST_MONTH
    ) -> Window:
        """The window of a run's partition time window (its datetimes fall on midnight), checked against the
        calendar of the dataset whose first month is ``first_month``.

        A run's range comes from people (``--partition-range``, run tags): a reversed range, or one reaching
        outside the calendar, raises a ``PartitionRangeError`` naming the valid months.
        """
        start, end = time_window.start.date(), time_window.end.date()
        valid = calendar(today, first_month)
        if start >= end or start < valid.start or end > valid.end:
            raise PartitionRangeError.of(start, end, valid)
        return cls(start, end)

    @classmethod
    def for_month(cls, month_key: str) -> Window:
        """The window of one month partition key such as ``2024-01-01``."""
        start = parse_partition_key(month_key)
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        return cls(start, end)

    def month_keys(self) -> list[str]:
        """The partition keys of every month the window covers."""
        keys, month = [], self.start.replace(day=1)
        while month < self.end:
            keys.append(month.isoformat())
            month = Window.for_month(month.isoformat()).end
        return keys

    def describe(self) -> str:
        """The window's months as messages name them: ``2019-03`` or ``2019-01 → 2019-06``."""
        first, last = self.month_keys()[0][:7], self.month_keys()[-1][:7]
        return first if first == last else f"{first} → {last}"

    def soql(self, column: str = "fecha_hecho") -> str:
        """The SoQL ``$where`` clause of this window, with floating-timestamp literals."""
        return (
            f"{column} >= '{self.start.isoformat()}T00:00:00.000' AND {column} < '{self.end.isoformat()}T00:00:00.000'"
        )


class PartitionRangeError(ValueError):
    """A run's range of months is reversed or outside the calendar: told with the valid range."""

    @classmethod
    def of(cls, start: date, end: date, valid: Window) -> PartitionRangeError:
        """The sentence for the run range ``[start, end)`` that ``valid`` does not hold."""
        given = f"{start.isoformat()}...{_month_before(end).isoformat()}"
        months = f"{valid.start.isoformat()}...{_month_before(valid.end).isoformat()}"
        problem = "is reversed (the first month comes first)" if start >= end else "reaches outside the calendar"
        return cls(f"the range of months {given} {problem}: the valid months are {months}")


def _month_before(day: date) -> date:
    """The first day of the month before ``day``'s month: the last month of a window ending on ``day``."""
    return date(day.year - 1, 12, 1) if day.month == 1 else date(day.year, day.month - 1, 1)


def group_months(months: Sequence[str], rows: Mapping[str, int], budget: int) -> list[list[str]]:
    """Consecutive months (partition keys) grouped so that each group holds about ``budget`` rows, at least a
    month: the unit a step reads or checks at once, so that its memory stays bounded however large the window."""
    groups: list[list[str]] = []
    held = 0
    for month in months:
        count = rows.get(month, 0)
        contiguous = groups and Window.for_month(groups[-1][-1]).end.isoformat() == month
        if contiguous and held + count <= budget:
            groups[-1].append(month)
            held += count
        else:
            groups.append([month])
            held = count
    return groups


def calendar(today: date | None = None, first_month: str = FIRST_MONTH) -> Window:
    """Every day a partition covers: from the first month (4v6r-wu98's unless given) to the end of the last
    complete month."""
    # The partitions' clock: UTC, as ``monthly_partitions`` keeps it; the last partition ends where this month starts.
    today = today or datetime.now(UTC).date()
    return Window(parse_partition_key(first_month), today.replace(day=1))


def pending_window(today: date | None = None) -> Window:
    """The current month: not complete yet, so no partition; its rows are counted, not fetched."""
    return Window.for_month(calendar(today).end.isoformat())


def out_of_calendar_soql(today: date | None = None, column: str = "fecha_hecho", first_month: str = FIRST_MONTH) -> str:
    """The SoQL ``$where`` of the rows no partition fetches and no month pends: no date, too early, future."""
    first, future = calendar(today, first_month).start, pending_window(today).end
    return (
        f"{column} IS NULL OR {column} < '{first.isoformat()}T00:00:00.000' "
        f"OR {column} >= '{future.isoformat()}T00:00:00.000'"
    )


def parse_partition_key(key: str) -> date:
    """A month partition key as a date, with a clear error for anything else."""
    try:
        day = datetime.strptime(key, "%Y-%m-%d").date()
    except ValueError:
        raise ValueError(f"bad partition key {key!r}: expected the first day of a month, like 2024-01-01") from None
    if day.day != 1:
        raise ValueError(f"bad partition key {key!r}: expected the first day of a month, like {day:%Y-%m}-01")
    return day
