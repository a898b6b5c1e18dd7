"""Revision-aware sync: which months of the source changed since the lake last saw them.

The source is observed cheaply: its ``rowsUpdatedAt`` first, and only when that moved, ONE grouped SoQL query
giving per month a row count and the latest ``:updated_at`` (the change marker). A month whose marker
differs from the last one seen is re-synced; months are grouped into contiguous ranges, one run each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from delitos_platform.lake.storage import LakeError, LakeResource
from delitos_platform.partitions import Window
from delitos_platform.reconcile import lake_counts
from delitos_platform.socrata.versions import MonthVersion


@dataclass(frozen=True)
class SyncCursor:
    """What the sensor last saw and what it is waiting for.

    ``versions`` holds the version of every month known to be synced; ``in_flight`` the versions each requested
    run (by run key) brings in once it succeeds (``None``: the month was emptied). A month's version moves to
    ``versions`` only when its run succeeded, so a failed run's months are requested again.
    """

    rows_updated_at: int
    versions: dict[str, str] = field(default_factory=dict)
    in_flight: dict[str, dict[str, str | None]] = field(default_factory=dict)
    batch: int = 0  # how many times runs were requested: makes a repeated request's run key new

    def dump(self) -> str:
        """The cursor as the sensor stores it."""
        fields = {"rows_updated_at": self.rows_updated_at, "versions": self.versions}
        return json.dumps({**fields, "in_flight": self.in_flight, "batch": self.batch}, sort_keys=True)

    @classmethod
    def load(cls, text: str | None) -> SyncCursor | None:
        """The stored cursor, or ``None`` on the first evaluation."""
        if not text:
            return None
        data = json.loads(text)
        in_flight, batch = dict(data.get("in_flight", {})), int(data.get("batch", 0))
        return cls(int(data["rows_updated_at"]), dict(data["versions"]), in_flight, batch)

    def expected(self) -> dict[str, str]:
        """The months' versions once the runs in flight have landed: what the source is compared with."""
        versions = dict(self.versions)
        for months in self.in_flight.values():
            _apply(versions, months)
        return versions

    def settled(self, outcomes: dict[str, bool | None]) -> tuple[SyncCursor, list[str]]:
        """The cursor once finished runs are accounted for (``outcomes``: run key → succeeded, ``None`` while
        unfinished), and the run keys that did not succeed: their months keep their old versions."""
        versions, in_flight, failed = dict(self.versions), {}, []
        for run_key, months in self.in_flight.items():
            outcome = outcomes.get(run_key)
            if outcome is None:
                in_flight[run_key] = months
            elif outcome:
                _apply(versions, months)
            else:
                failed.append(run_key)
        return SyncCursor(self.rows_updated_at, versions, in_flight, self.batch), failed

    def requested(self, updated_at: int, runs: dict[str, dict[str, str | None]]) -> SyncCursor:
        """The cursor after requesting ``runs`` (run key → the versions it brings in) at ``updated_at``."""
        batch = self.batch + 1 if runs else self.batch
        return SyncCursor(updated_at, self.versions, {**self.in_flight, **runs}, batch)


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


def versions_held_by_lake(lake: LakeResource, source: dict[str, MonthVersion]) -> dict[str, str]:
    """On a first look, the months the lake already holds in full count as synced at the source's version."""
    held = {}
    for month, version in source.items():
        try:
            rows, quarantined = lake_counts(lake, month)
        except LakeError:
            continue
        if rows + quarantined == version.rows:
            held[month] = version.tag()
    return held


def compare(synced: dict[str, str], source: dict[str, MonthVersion], partitions: set[str]) -> Changes:
    """Months (among ``partitions``) that are new, revised or emptied since they were synced."""
    current = {month: version.tag() for month, version in source.items() if month in partitions}
    months = sorted(month for month in set(current) | set(synced) if current.get(month) != synced.get(month))
    return Changes(months, _looks_like_replacement(synced, current))


def _looks_like_replacement(synced: dict[str, str], current: dict[str, str]) -> bool:
    """Every month re-published with its count unchanged: a wholesale replacement (all ``:id`` new)."""
    common = set(synced) & set(current)
    counts = {month: (synced[month].split("@")[0], current[month].split("@")[0]) for month in common}
    return len(common) > 1 and all(synced[m] != current[m] for m in common) and all(a == b for a, b in counts.values())
