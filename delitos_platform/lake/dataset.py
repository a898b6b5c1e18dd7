"""A configured dataset as the lake and bronze see it: its schemas, its calendar, where its objects and tables live.

Built from the dataset's entry (``delitos_platform/datasets/``), so that one extraction and one load serve every
dataset of the family. 4v6r-wu98 (:data:`DELITOS`) keeps the places it had before the family: its objects at the
lake's root, ``bronze.delitos``; any other dataset's objects live under a prefix of its slug (``homicidios/…``),
its rows in ``bronze.<slug>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import dagster as dg
import pyarrow as pa

from delitos_platform.contract import DATASET_ID, ENTRY
from delitos_platform.datasets import DatasetConfigError, DatasetEntry
from delitos_platform.partitions import monthly_partitions

# The columns every dataset of the family has, and the lake's row rules read (lake/rows.py).
FAMILY_COLUMNS = {
    "fecha_hecho": "calendar_date",
    "cod_depto": "text",
    "departamento": "text",
    "cod_muni": "text",
    "municipio": "text",
    "cantidad": "number",
}


@dataclass(frozen=True, eq=False)
class LakeDataset:
    """One dataset of the family, as its entry declares it, with the names the lake and bronze give it."""

    entry: DatasetEntry

    def __post_init__(self) -> None:
        columns = self.entry.source_columns
        missing = [f"{name} ({kind})" for name, kind in FAMILY_COLUMNS.items() if columns.get(name) != kind]
        if missing or self.entry.date_column != "fecha_hecho":
            raise DatasetConfigError(
                f"dataset entry {self.entry.id}: the lake holds datasets of the family's shape, dated by "
                f"fecha_hecho, and this one lacks {', '.join(missing) or 'fecha_hecho as its date column'}"
            )

    @property
    def id(self) -> str:
        """The four-by-four id on the portal."""
        return self.entry.id

    @property
    def slug(self) -> str:
        """The short name of its asset keys, lake folder and tables."""
        return self.entry.slug

    @property
    def prefix(self) -> str:
        """Where its objects live in a lake: 4v6r-wu98's at the root (as before the family), another's under its
        slug, so that one lake holds several datasets and each prefix names one."""
        return "" if self.entry.id == DATASET_ID else f"{self.entry.slug}/"

    @property
    def source_columns(self) -> dict[str, str]:
        """fieldName -> dataTypeName, in the entry's order."""
        return self.entry.source_columns

    @cached_property
    def lake_schema(self) -> pa.Schema:
        """One row of the lake: ``row_id``, then every column typed."""
        return self.entry.lake_schema

    @cached_property
    def raw_schema(self) -> pa.Schema:
        """A page as the API sends it: every value a string."""
        return pa.schema([pa.field(name, pa.string()) for name in ["row_id", *self.source_columns]])

    @cached_property
    def text_columns(self) -> tuple[str, ...]:
        """Its text columns: codes and names that repeat on every row (held as dictionaries in memory)."""
        return tuple(name for name, kind in self.source_columns.items() if kind == "text")

    @cached_property
    def memory_schema(self) -> pa.Schema:
        """Rows between typing and writing: ``lake_schema`` with the text columns held as dictionaries."""
        dictionary = pa.dictionary(pa.int32(), pa.string())
        return pa.schema(
            [field.with_type(dictionary) if field.name in self.text_columns else field for field in self.lake_schema]
        )

    @property
    def first_month(self) -> str:
        """Its first month's partition key (``2010-01-01``)."""
        return f"{self.entry.first_month}-01"

    @cached_property
    def partitions(self) -> dg.MonthlyPartitionsDefinition:
        """Monthly partitions from its first month (4v6r-wu98's are the platform's ``monthly_partitions``)."""
        if self.first_month == monthly_partitions.start.strftime("%Y-%m-%d"):
            return monthly_partitions
        return dg.MonthlyPartitionsDefinition(start_date=self.first_month)

    @property
    def bronze_table(self) -> str:
        """Its bronze table, ``bronze.<slug>``."""
        return f"bronze.{self.slug}"

    @property
    def ledger_table(self) -> str:
        """Its load ledger, ``bronze.<slug>_cargas``: one row per month and source version loaded."""
        return f"bronze.{self.slug}_cargas"

    def articles(self) -> dict[str, str]:
        """The codes a ``descripcion_conducta`` listing its values may take (4v6r-wu98's 9 articles), else none."""
        if "descripcion_conducta" not in self.source_columns:
            return {}
        return dict(self.entry.column("descripcion_conducta").values or {})


# 4v6r-wu98, the default of every library function that takes a dataset.
DELITOS = LakeDataset(ENTRY)
