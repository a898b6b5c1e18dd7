"""The source version each lake object records (Parquet key-value metadata), written by the extraction.

An object holds a month as the source had it at one version: the dataset's ``rowsUpdatedAt`` and the month's own
tag (``count@max(:updated_at)``). Bronze's load ledger copies them, so the warehouse's history of each row is
dated by the source's versions, never by the wall clock of the run that loaded it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# Parquet key-value metadata: the source version each object was read at.
VERSION_METADATA = "delitos.source_version"
UPDATED_AT_METADATA = "delitos.source_rows_updated_at"


@dataclass(frozen=True)
class ObjectVersion:
    """The source version a lake object was read at."""

    rows_updated_at: int
    month_tag: str

    @classmethod
    def of(cls, metadata: Mapping[bytes, bytes] | None) -> ObjectVersion | None:
        """The version a Parquet footer's key-value metadata records; ``None`` when it records none."""
        values = {key.decode(): value.decode() for key, value in (metadata or {}).items()}
        if UPDATED_AT_METADATA not in values:
            return None
        return cls(int(values[UPDATED_AT_METADATA]), values.get(VERSION_METADATA, ""))

    @property
    def timestamp(self) -> datetime:
        """``rowsUpdatedAt`` as a UTC timestamp without zone (how both warehouses store it)."""
        return datetime.fromtimestamp(self.rows_updated_at, UTC).replace(tzinfo=None)
