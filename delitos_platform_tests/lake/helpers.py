"""Running the lake asset the way Dagster does, and reading back what it wrote."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pyarrow as pa

from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.storage import LakeResource, data_key, quarantine_key
from delitos_platform.partitions import range_tags
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.base import WarehouseResource


def materialize_lake(
    socrata: SocrataResource,
    lake: LakeResource,
    first: str,
    last: str | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the lake for one month, or for ``first`` → ``last`` as ONE single-run backfill.

    Recorded in ``instance`` when given (else in a throw-away one).
    """
    # A lake-only run never takes the warehouse: any warehouse resource will do.
    resources = {"socrata": socrata, "lake": lake, "warehouse": WarehouseResource()}
    selection = {"assets": [socrata_delitos, lake_delitos], "resources": resources, "instance": instance}
    if last is None:
        return dg.materialize(**selection, partition_key=first, raise_on_error=False)
    tags = range_tags(first, last)
    return dg.materialize(**selection, tags=tags, raise_on_error=False)


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The one sentence a failed run reports."""
    assert not result.success
    failures = [event.step_failure_data for event in result.all_events if event.is_step_failure]
    assert failures, "the run failed outside any step"
    if failures[0].user_failure_data is not None:
        return failures[0].user_failure_data.description
    return failures[0].error.message


def lake_table(lake: LakeResource, month_key: str) -> pa.Table:
    """A month's rows as stored in the lake."""
    return from_parquet_bytes(lake.read(data_key(month_key)))


def quarantine_table(lake: LakeResource, month_key: str) -> pa.Table:
    """A month's refused rows as stored in the lake."""
    return from_parquet_bytes(lake.read(quarantine_key(month_key)))


def rows_per_month(rows: list[dict[str, str]]) -> Counter[str]:
    """A recount of API rows per ``YYYY-MM-01`` partition key."""
    return Counter(row["fecha_hecho"][:7] + "-01" for row in rows if "fecha_hecho" in row)


def partition_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> list[dict[str, object]]:
    """The metadata values of every materialization of one partition of ``key`` that ``instance`` recorded."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=100
    ).records
    return [{name: value.value for name, value in r.asset_materialization.metadata.items()} for r in records]


def materialized_metadata(result: dg.ExecuteInProcessResult) -> list[dict[str, object]]:
    """The metadata values of every lake materialization in a run, one dict per partition."""
    return [
        {key: value.value for key, value in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    ]
