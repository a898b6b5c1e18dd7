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
from delitos_platform.socrata import SocrataResource

MONTH = "date_trunc_ym(fecha_hecho)"


@dataclass(frozen=True)
class MonthVersion:
    """What the source says of one month: its row count and when a row of it last changed."""

    rows: int
    changed_at: str

    def tag(self) -> str:
        """The month's data version, as recorded on the source asset's observation."""
        return f"{self.rows}@{self.changed_at}"


@dataclass(frozen=True)
class SyncCursor:
    """What the sensor last saw: the source's ``rowsUpdatedAt`` and the version of every synced month."""

    rows_updated_at: int
    versions: dict[str, str] = field(default_factory=dict)

    def dump(self) -> str:
        """The cursor as the sensor stores it."""
        return json.dumps({"rows_updated_at": self.rows_updated_at, "versions": self.versions}, sort_keys=True)

    @classmethod
    def load(cls, text: str | None) -> SyncCursor | None:
        """The stored cursor, or ``None`` on the first evaluation."""
        if not text:
            return None
        data = json.loads(text)
        return cls(int(data["rows_updated_at"]), dict(data["versions"]))


@dataclass(frozen=True)
class Changes:
    """The outcome of comparing the source with what was synced."""

    months: list[str]
    wholesale_replacement: bool

    def ranges(self) -> list[tuple[str, str]]:
        """Changed months grouped into contiguous ``(first, last)`` partition-key ranges."""
        ranges: list[tuple[str, str]] = []
        for month in self.months:
            if ranges and Window.for_month(ranges[-1][1]).end.isoformat() == month:
                ranges[-1] = (ranges[-1][0], month)
            else:
                ranges.append((month, month))
        return ranges


def rows_updated_at(socrata: SocrataResource) -> int:
    """The source's ``rowsUpdatedAt`` (epoch seconds): one small metadata request."""
    return int(socrata.metadata()["rowsUpdatedAt"])


def month_versions(socrata: SocrataResource) -> dict[str, MonthVersion]:
    """Every month's count and change marker, in ONE grouped query."""
    rows = socrata.query(
        select=f"{MONTH} AS mes, count(*) AS n, max(:updated_at) AS changed_at", group=MONTH, order=MONTH, limit=50_000
    )
    return {row["mes"][:10]: MonthVersion(int(row["n"]), row["changed_at"]) for row in rows}


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


def next_cursor(updated_at: int, source: dict[str, MonthVersion], partitions: set[str]) -> SyncCursor:
    """The cursor after requesting the runs: months that are not partitions yet stay new for later."""
    return SyncCursor(updated_at, {month: v.tag() for month, v in source.items() if month in partitions})
