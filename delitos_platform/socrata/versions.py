"""What the source says of its months: a row count and the latest ``:updated_at`` of each, in ONE query.

These month versions are the source's own snapshot marker. The sync sensor compares them with what it last
synced; the extraction reads them before and after paging, to know that what it fetched is one consistent
state of the source.
"""

from __future__ import annotations

from dataclasses import dataclass

from delitos_platform.socrata.resource import MAX_PAGE_SIZE, SocrataResource

MONTH = "date_trunc_ym(fecha_hecho)"


@dataclass(frozen=True)
class MonthVersion:
    """What the source says of one month: its row count and when a row of it last changed."""

    rows: int
    changed_at: str

    def tag(self) -> str:
        """The month's data version, e.g. ``94@2025-11-03T10:00:00.000``."""
        return f"{self.rows}@{self.changed_at}"


def month_versions(
    socrata: SocrataResource, where: str | None = None, purpose: str = "counting the rows of every month"
) -> dict[str, MonthVersion]:
    """Every month's (of ``where``, else of the dataset) count and change marker, keyed ``YYYY-MM-01``.

    Rows without a ``fecha_hecho`` have no month and are left out (the out-of-calendar ledger counts them).
    """
    soql = {"select": f"{MONTH} AS mes, count(*) AS n, max(:updated_at) AS changed_at", "group": MONTH}
    rows = socrata.query(purpose, **soql, **({"where": where} if where else {}), order=MONTH, limit=MAX_PAGE_SIZE)
    return {row["mes"][:10]: MonthVersion(int(row["n"]), row["changed_at"]) for row in rows if row.get("mes")}


def rows_updated_at(socrata: SocrataResource) -> int:
    """The source's ``rowsUpdatedAt`` (epoch seconds): one small metadata request."""
    return int(socrata.metadata("reading the dataset's last update")["rowsUpdatedAt"])
