"""A set of row ids told by two figures that every engine computes alike: how many, and a digest.

The digest is the MD5 of the ids sorted and joined by commas: Python, DuckDB
(``md5(string_agg(row_id, ',' ORDER BY row_id))``) and Snowflake
(``MD5(LISTAGG(row_id, ',') WITHIN GROUP (ORDER BY row_id))``) give the same hex string for the same set,
whatever order the rows are stored in. Two layers hold the same rows exactly when both figures agree: a lost
row and a doubled one that leave the count unchanged still change the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class RowIds:
    """The identity of a set of rows: their count and the digest of their sorted ids."""

    count: int
    digest: str

    @classmethod
    def of(cls, ids: pa.Array | pa.ChunkedArray | Iterable[str]) -> RowIds:
        """The figures of ``ids`` (an Arrow array of strings or any iterable of them)."""
        if isinstance(ids, pa.Array | pa.ChunkedArray):
            ordered = ids.take(pc.sort_indices(ids)).to_pylist()  # Arrow sorts strings by their bytes, as SQL does
        else:
            ordered = sorted(ids)
        return cls(len(ordered), hashlib.md5(",".join(ordered).encode()).hexdigest())

    def describe(self) -> str:
        """``1,234 ids (md5 0123abcd…)``: how a message shows them."""
        return f"{self.count:,} ids (md5 {self.digest[:8]}…)"


NO_ROWS = RowIds.of([])
