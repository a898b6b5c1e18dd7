"""Revision-aware sync: which months of the source changed since the lake last saw them.

The source is observed cheaply: its ``rowsUpdatedAt`` first, and only when that moved, ONE grouped SoQL query
giving per month a row count and the latest ``:updated_at`` (the change marker). A month whose marker
differs from the one the lake's object records (or, for a month the lake does not hold, from the last one
synced) is re-synced; months are grouped into contiguous ranges, one run each. A month the volume guard held
is not requested again until the source's version of it changes: its alert is sent once per version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.storage import LakeError, LakeResource, data_key
from delitos_platform.partitions import Window
from delitos_platform.reconcile import lake_counts
from delitos_platform.socrata.versions import MonthVersion


@dataclass(frozen=True)
class SyncCursor:
    """What the sensor last saw and what it is waiting for.

    ``versions`` holds the version of every month known to be synced; ``in_flight`` the versions each requested
    run (by run key) brings in once it succeeds (``None``: the month was emptied). A month's version moves to
    ``versions`` only when its run succeeded, so a failed run's months are requested again. ``held`` holds the
    months a run of them was held at by the volume guard, with that version: not requested again at it.
    """

    rows_updated_at: int
    versions: dict[str, str] = field(default_factory=dict)
    in_flight: dict[str, dict[str, str | None]] = field(default_factory=dict)
    batch: int = 0  # how many times runs were requested: makes a repeated request's run key new
    held: dict[str, str | None] = field(default_factory=dict)

    def dump(self) -> str:
        """The cursor as the sensor stores it."""
        fields = {"rows_updated_at": self.rows_updated_at, "versions": self.versions, "held": self.held}
        return json.dumps({**fields, "in_flight": self.in_flight, "batch": self.batch}, sort_keys=True)

    @classmethod
    def load(cls, text: str | None) -> SyncCursor | None:
        """The stored cursor, or ``None`` on the first evaluation."""
        if not text:
            return None
        data = json.loads(text)
        in_flight, batch = dict(data.get("in_flight", {})), int(data.get("batch", 0))
        held = dict(data.get("held", {}))
        return cls(int(data["rows_updated_at"]), dict(data["versions"]), in_flight, batch, held)

    def expected(self, lake: dict[str, str] | None = None) -> dict[str, str]:
        """The months' versions once the runs in flight have landed: what the source is compared with.

        ``lake``: the versions the lake's objects record, which override what the cursor believes synced.
        """
        versions = dict(self.versions)
        _apply(versions, lake or {})
        for months in self.in_flight.values():
            _apply(versions, months)
        return versions

    def settled(self, outcomes: dict[str, str | None]) -> tuple[SyncCursor, list[str]]:
        """The cursor once finished runs are accounted for (``outcomes``: run key → ``SUCCEEDED``, ``FAILED``,
        ``HELD`` or ``None`` while unfinished), and the run keys that did not succeed: their months keep their old
        versions; those of a held run are remembered with the version they were held at."""
        versions, in_flight, failed, held = dict(self.versions), {}, [], dict(self.held)
        for run_key, months in self.in_flight.items():
            outcome = outcomes.get(run_key)
            if outcome is None:
                in_flight[run_key] = months
            elif outcome == SUCCEEDED:
                _apply(versions, months)
                for month in months:
                    held.pop(month, None)
            else:
                failed.append(run_key)
                if outcome == HELD:
                    held.update(months)
        return SyncCursor(self.rows_updated_at, versions, in_flight, self.batch, held), failed

    def requested(
        self, updated_at: int, runs: dict[str, dict[str, str | None]], source: dict[str, MonthVersion]
    ) -> SyncCursor:
        """The cursor after requesting ``runs`` (run key → the versions it brings in) at ``updated_at``; a held
        month is forgotten once the source's version of it is no longer the one it was held at."""
        batch = self.batch + 1 if runs else self.batch
        held = {month: version for month, version in self.held.items() if _tag_of(source, month) == version}
        return SyncCursor(updated_at, self.versions, {**self.in_flight, **runs}, batch, held)


# How a requested run ended, for ``SyncCursor.settled``.
SUCCEEDED, FAILED, HELD = "succeeded", "failed", "held"


def _tag_of(source: dict[str, MonthVersion], month: str) -> str | None:
    return source[month].tag() if month in source else None


def _apply(versions: dict[str, str], months: dict[str, str | None]) -> None:
    for month, version in months.items():
        if version is None:
            versions.pop(month, None)
        else:
            versions[month] = version


@dataclass(frozen=True)
class Changes:
    """The outcome of comparing the source with what was synced."""

    months: list[str]
    wholesale_replacement: bool

    def between(self, first: str, last: str) -> list[str]:
        """The changed months of the range ``first`` → ``last`` (partition keys, ISO dates)."""
        return [month for month in self.months if first <= month <= last]

    def ranges(self) -> list[tuple[str, str]]:
        """Changed months grouped into contiguous ``(first, last)`` partition-key ranges."""
        ranges: list[tuple[str, str]] = []
        for month in self.months:
            if ranges and Window.for_month(ranges[-1][1]).end.isoformat() == month:
                ranges[-1] = (ranges[-1][0], month)
            else:
                ranges.append((month, month))
        return ranges


def versions_held_by_lake(
    lake: LakeResource, source: dict[str, MonthVersion], partitions: Iterable[str], dataset: LakeDataset = DELITOS
) -> dict[str, str | None]:
    """The source version each month's lake object of ``dataset`` records (``None``: an empty month), months
    without one left out.

    An object written before objects recorded their version counts as the source's version when its rows add up
    to the source's count, else as a version of its own (it is re-synced).
    """
    held: dict[str, str | None] = {}
    for month in partitions:
        key = data_key(month, dataset)
        if not lake.exists(key):
            continue
        try:
            version = lake.object_version(key)
            if version is not None:  # the month's tag holds its count: nothing more to read
                held[month] = None if version.month_tag.startswith("0@") else version.month_tag
                continue
            rows, quarantined = lake_counts(lake, month, dataset)
        except LakeError:
            continue  # unreadable: nothing is known of it, and the run that rewrites it will say so
        fetched = rows + quarantined
        held[month] = source[month].tag() if month in source and fetched == source[month].rows else f"{fetched}@"
    return held


def compare(
    synced: dict[str, str],
    source: dict[str, MonthVersion],
    partitions: set[str],
    held: dict[str, str | None] | None = None,
) -> Changes:
    """Months (among ``partitions``) that are new, revised or emptied since they were synced; months ``held`` at the
    source's current version are left out (they were tried at it, and alerted)."""
    current = {month: version.tag() for month, version in source.items() if month in partitions}
    held = held or {}
    months = sorted(
        month
        for month in set(current) | set(synced)
        if current.get(month) != synced.get(month) and not (month in held and held[month] == current.get(month))
    )
    return Changes(months, _looks_like_replacement(synced, current))


def _looks_like_replacement(synced: dict[str, str], current: dict[str, str]) -> bool:
    """Every month re-published with its count unchanged: a wholesale replacement (all ``:id`` new)."""
    common = set(synced) & set(current)
    counts = {month: (synced[month].split("@")[0], current[month].split("@")[0]) for month in common}
    return len(common) > 1 and all(synced[m] != current[m] for m in common) and all(a == b for a, b in counts.values())
