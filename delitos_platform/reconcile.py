"""Reconciliation: for every month, source ``count(*)`` = lake rows + quarantined rows = bronze rows."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from delitos_platform.lake.storage import LakeResource, data_key, quarantine_key
from delitos_platform.partitions import Window
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.base import WarehouseResource


@dataclass(frozen=True)
class MonthCounts:
    """The four counts of one month."""

    month: str
    source: int
    lake: int
    quarantined: int
    bronze: int

    @property
    def reconciles(self) -> bool:
        """Nothing lost, nothing doubled."""
        return self.source == self.lake + self.quarantined == self.bronze

    def describe(self) -> str:
        """The three numbers (the lake's in two parts), as the check's message shows them."""
        return (
            f"{self.month[:7]}: source {self.source:,}, lake {self.lake:,} + quarantined {self.quarantined:,}, "
            f"bronze {self.bronze:,}"
        )


def source_counts(socrata: SocrataResource, window: Window) -> dict[str, int]:
    """``count(*)`` per month asked of the source, with the same ``$where`` the extraction used."""
    month = "date_trunc_ym(fecha_hecho)"
    rows = socrata.query(select=f"{month} AS mes, count(*) AS n", where=window.soql(), group=month, limit=50_000)
    return {row["mes"][:10]: int(row["n"]) for row in rows}


def lake_counts(lake: LakeResource, month_key: str) -> tuple[int, int]:
    """Rows and quarantined rows of a month, read from the Parquet footers."""
    return tuple(_parquet_rows(lake.read(key)) for key in (data_key(month_key), quarantine_key(month_key)))


def _parquet_rows(data: bytes) -> int:
    return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows


def reconcile(
    socrata: SocrataResource, lake: LakeResource, warehouse: WarehouseResource, window: Window
) -> list[MonthCounts]:
    """The counts of every month of the window, on every layer."""
    source, bronze = source_counts(socrata, window), warehouse.count_by_month(window)
    counts = []
    for month in window.month_keys():
        rows, quarantined = lake_counts(lake, month)
        counts.append(MonthCounts(month, source.get(month, 0), rows, quarantined, bronze.get(month, 0)))
    return counts
