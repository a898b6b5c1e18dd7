"""What every warehouse offers the bronze asset: load months from the lake, count what it holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dagster as dg

from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.storage import LakeResource
from delitos_platform.lake.versions import ObjectVersion
from delitos_platform.partitions import Window
from delitos_platform.row_ids import NO_ROWS, RowIds

BRONZE_SCHEMA = "bronze"


class WarehouseError(Exception):
    """A warehouse failure told in one sentence (never a credential)."""


# Decides, inside the load's transaction, whether what bronze would then hold may be committed.
Approval = Callable[[Mapping[str, RowIds]], bool]


def approve_all(_: Mapping[str, RowIds]) -> bool:
    """Commit whatever the load swapped in (tests and tools that audit elsewhere)."""
    return True


@dataclass(frozen=True)
class BronzeLoad:
    """What one load swapped in: the row ids of each month key (``YYYY-MM-01``), and whether it was committed."""

    ids_by_month: dict[str, RowIds]
    run_id: str
    seconds: float
    committed: bool = True

    @property
    def rows_by_month(self) -> dict[str, int]:
        """Rows loaded per month."""
        return {month: ids.count for month, ids in self.ids_by_month.items()}

    @property
    def rows(self) -> int:
        """Rows loaded over every month."""
        return sum(ids.count for ids in self.ids_by_month.values())


class WarehouseResource(dg.ConfigurableResource):
    """The bronze side of a warehouse (DuckDB embedded, Snowflake in production).

    ``load`` replaces every month of ``window`` with the lake's objects in ONE transaction: delete the
    window's rows, insert the new ones (rows of the window only), then ask ``approve`` with the row ids bronze
    would hold, and commit only when it agrees. A re-run, a retry, a refused audit or a killed run never
    doubles, loses or half-publishes a row.
    """

    def load(
        self,
        lake: LakeResource,
        window: Window,
        run_id: str,
        approve: Approval = approve_all,
        dataset: LakeDataset = DELITOS,
    ) -> BronzeLoad:
        """Swap the window's months of ``dataset`` in from the lake; commits only when ``approve`` says so."""
        raise NotImplementedError

    def row_ids_by_month(self, window: Window, dataset: LakeDataset = DELITOS) -> dict[str, RowIds]:
        """The row ids the dataset's bronze table (``bronze.delitos``) holds per month key inside ``window``
        (months with none left out)."""
        raise NotImplementedError

    def count_by_month(self, window: Window, dataset: LakeDataset = DELITOS) -> dict[str, int]:
        """Rows per month key that the dataset's bronze table holds inside ``window`` (months with none left out)."""
        return {month: ids.count for month, ids in self.row_ids_by_month(window, dataset).items()}

    def fetch(self, sql: str) -> list[tuple]:
        """The rows of a read-only query written by the platform itself (never user input)."""
        raise NotImplementedError

    def hold(
        self,
        run_id: str,
        owner: int,
        log: Callable[[str], None],
        run_ended: Callable[[str], bool],
    ) -> None:
        """Take the warehouse for ``run_id`` until the run ends (``owner``: the process whose life bounds it).

        A warehouse with one writer at a time (an embedded DuckDB file) waits for, or refuses with
        ``WarehouseBusyError``, a run while another holds it; one that takes concurrent writers (Snowflake) does
        nothing.
        """
        return None


def in_window(window: Window, figures: Mapping[str, RowIds]) -> dict[str, RowIds]:
    """Every month of ``window`` with its row ids (no rows for months the figures leave out)."""
    return {month: figures.get(month, NO_ROWS) for month in window.month_keys()}


@dataclass(frozen=True)
class LedgerEntry:
    """One month as a load swapped it in: the source version its object was read at, and its rows."""

    month: str
    version: ObjectVersion
    rows: int

    def values(self, run_id: str) -> tuple:
        """The entry's values in the ledger's column order (``mes, version, version_mes, registros, _run_id``)."""
        return (self.month, self.version.timestamp, self.version.month_tag, self.rows, run_id)


def ledger_entries(versions: Mapping[str, ObjectVersion | None], held: Mapping[str, RowIds]) -> list[LedgerEntry]:
    """The ledger's entries for the months a load swapped in (months whose object records no version left out)."""
    return [
        LedgerEntry(month, version, held.get(month, NO_ROWS).count)
        for month, version in sorted(versions.items())
        if version is not None
    ]


def ledger_statements(table: str, entries: list[LedgerEntry], run_id: str, placeholder: str) -> list[tuple[str, list]]:
    """Replace the ledger's rows of these (month, version) pairs, then insert them: a re-load adds no row.

    ``placeholder`` is the driver's (``?`` for DuckDB, ``%s`` for Snowflake); every value is bound.
    """
    if not entries:
        return []
    pair = f"(mes = {placeholder} AND version = {placeholder})"
    row = "(" + ", ".join([placeholder] * 5) + ")"
    delete = f"DELETE FROM {table} WHERE " + " OR ".join([pair] * len(entries))
    insert = f"INSERT INTO {table} (mes, version, version_mes, registros, _run_id) VALUES " + ", ".join(
        [row] * len(entries)
    )
    pairs = [value for entry in entries for value in (entry.month, entry.version.timestamp)]
    rows = [value for entry in entries for value in entry.values(run_id)]
    return [(delete, pairs), (insert, rows)]
