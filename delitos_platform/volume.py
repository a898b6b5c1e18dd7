"""The volume guard: a layer does not publish a window whose months shrink implausibly against what it holds.

Socrata portals empty or truncate a dataset for a while when they re-publish it. A source that shrinks that much is
a glitch far more often than a real loss, so the lake and bronze hold such a window instead of publishing it: a
month that falls sharply (more than ``month_drop`` of a month that held at least ``month_min_rows``), or a window
that loses more than ``window_drop`` of its rows. Rows deleted here and there (an ordinary revision) pass. Only
months something was published for count: a month seen for the first time has nothing to fall from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Shown in every held verdict: how an operator who knows the drop is real publishes it.
HOW_TO_ACCEPT = (
    "if the source really lost these rows, run these months again with the run tag "
    "delitos/accept_volume_drop=true (delitos backfill --accept-drop)"
)
SHOWN_MONTHS = 6


@dataclass(frozen=True)
class MonthDrop:
    """One month's rows as published and as they would be published now."""

    month: str
    published: int
    proposed: int

    def describe(self) -> str:
        """``2024-03: 94 → 37 rows (−61%)``."""
        change = _change(self.published, self.proposed)
        return f"{self.month[:7]}: {self.published:,} → {self.proposed:,} rows ({change})"


@dataclass(frozen=True)
class VolumeVerdict:
    """What the guard found in one window: the months that fell sharply, and the window's totals."""

    sharp: list[MonthDrop]
    published: int
    proposed: int
    window_fell: bool

    @property
    def plausible(self) -> bool:
        """Nothing fell sharply: the window may be published."""
        return not self.sharp and not self.window_fell

    @property
    def lost(self) -> int:
        """Rows the window would lose against what is published."""
        return max(self.published - self.proposed, 0)

    def describe(self) -> str:
        """What fell, in one line (months first, then the window's totals)."""
        shown = "; ".join(drop.describe() for drop in self.sharp[:SHOWN_MONTHS])
        more = f" (and {len(self.sharp) - SHOWN_MONTHS} more)" if len(self.sharp) > SHOWN_MONTHS else ""
        window = f"the window {self.published:,} → {self.proposed:,} rows ({_change(self.published, self.proposed)})"
        months = f"{len(self.sharp)} month{'s' if len(self.sharp) > 1 else ''}"
        return f"{months} fell sharply: {shown}{more}; {window}" if self.sharp else window


@dataclass(frozen=True)
class VolumeGuard:
    """The thresholds of the guard (settings; see README's table)."""

    month_drop: float = 0.5
    month_min_rows: int = 20
    window_drop: float = 0.1

    def judge(self, published: Mapping[str, int], proposed: Mapping[str, int]) -> VolumeVerdict:
        """Compare each month's rows as published (months with none left out) with the rows about to replace them."""
        held = {month: rows for month, rows in published.items() if rows > 0}
        sharp = [
            MonthDrop(month, rows, proposed.get(month, 0))
            for month, rows in sorted(held.items())
            if rows >= self.month_min_rows and rows - proposed.get(month, 0) > self.month_drop * rows
        ]
        before = sum(held.values())
        after = sum(proposed.get(month, 0) for month in held)
        window_fell = before >= self.month_min_rows and before - after > self.window_drop * before
        return VolumeVerdict(sharp, before, after, window_fell)


def _change(before: int, after: int) -> str:
    return f"{(after - before) / before:+.0%}".replace("-", "−") if before else "new"
