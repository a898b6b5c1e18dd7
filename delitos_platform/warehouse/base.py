"""What every warehouse offers the bronze asset: load months from the lake, count what it holds."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from delitos_platform.lake.storage import LakeResource
from delitos_platform.partitions import Window

BRONZE_SCHEMA = "bronze"
BRONZE_TABLE = "delitos"


class WarehouseError(Exception):
    """A warehouse failure told in one sentence (never a credential)."""


@dataclass(frozen=True)
class BronzeLoad:
    """What one load swapped in: rows per month key (``YYYY-MM-01``) and the load's identity."""

    rows_by_month: dict[str, int]
    run_id: str
    seconds: float

    @property
    def rows(self) -> int:
        """Rows loaded over every month."""
        return sum(self.rows_by_month.values())


class WarehouseResource(dg.ConfigurableResource):
    """The bronze side of a warehouse (DuckDB embedded, Snowflake in production).

    ``load`` replaces every month of ``window`` with the lake's objects in ONE transaction: delete the
    window's rows, insert the new ones, commit. A re-run, a retry or a killed run never doubles or loses
    a row.
    """

    def load(self, lake: LakeResource, window: Window, run_id: str) -> BronzeLoad:
        """Swap the window's months in from the lake; returns the rows loaded per month."""
        raise NotImplementedError

    def count_by_month(self, window: Window) -> dict[str, int]:
        """Rows per month key that ``bronze.delitos`` holds inside ``window`` (months with none left out)."""
        raise NotImplementedError

    def fetch(self, sql: str) -> list[tuple]:
        """The rows of a read-only query written by the platform itself (never user input)."""
        raise NotImplementedError
