"""The bronze asset: ``bronze.delitos`` loaded from the lake, and its blocking reconciliation check.

Every other configured dataset's bronze asset (``defs/family.py``) has the same checks and runs the same load,
:func:`load_bronze_checked`, into ``bronze.<slug>``.
"""

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.defs.policies import failed_checks, hold_warehouse, monthly_layer, row_count
from delitos_platform.defs.volume_guard import VOLUME_CHECK, drop_accepted, drop_metadata, volume_check_result
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.storage import LakeError, LakeResource
from delitos_platform.lifeline import end_step_with_its_run
from delitos_platform.partitions import PartitionRangeError, Window, monthly_partitions
from delitos_platform.queue import WRITES_WAREHOUSE_TAGS
from delitos_platform.reconcile import MonthCounts, read_lake, reconcile, source_counts
from delitos_platform.row_ids import RowIds
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.volume import VolumeVerdict
from delitos_platform.warehouse.base import BronzeLoad, WarehouseError, WarehouseResource

BRONZE_DELITOS = dg.AssetKey(["bronze", "delitos"])
RECONCILED_CHECK = "reconciled_with_source"
VALUES_CHECK = "values_valid"
SHOWN_MISMATCHES = 12


def bronze_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The checks every bronze asset evaluates inside its load's transaction (all block the next layer)."""
    return [
        dg.AssetCheckSpec(
            RECONCILED_CHECK,
            asset=key,
            blocking=True,
            description=(
                "Per month: Socrata count(*) = lake rows + quarantined rows, and bronze holds exactly the lake's "
                "row ids (count and digest). Evaluated before the load commits; dbt waits on it."
            ),
        ),
        dg.AssetCheckSpec(
            VOLUME_CHECK,
            asset=key,
            blocking=True,
            description=(
                "No month of the run falls sharply against what bronze holds, and the window loses no more than a "
                "tenth of its rows (the lake's thresholds); evaluated before the load commits."
            ),
        ),
        dg.AssetCheckSpec(
            VALUES_CHECK,
            asset=key,
            blocking=True,
            description=(
                "The loaded rows obey the contract: zero-padded codes, municipality inside its department, "
                "fecha_hecho inside its month, cantidad a positive integer, and (4v6r-wu98) one of the 9 articles."
            ),
        ),
    ]


def bronze_asset_settings(
    key: dg.AssetKey, lake: dg.AssetKey, partitions: dg.PartitionsDefinition, group: str, dataset: LakeDataset
) -> dict[str, Any]:
    """What every bronze asset declares (``@dg.asset(**…)``): its lake, months, checks and policies."""
    return {
        **monthly_layer(key, lake, partitions, group),
        "kinds": {"sql"},
        "op_tags": WRITES_WAREHOUSE_TAGS,
        "description": (
            f"`{dataset.bronze_table}`: the lake's rows of each month, typed, with `mes` and load metadata "
            "(`_run_id`, `_loaded_at`). Each run swaps its months in with delete + insert in ONE transaction, "
            "committed only when its checks pass."
        ),
        "check_specs": bronze_check_specs(key),
    }


@dg.asset(**bronze_asset_settings(BRONZE_DELITOS, LAKE_DELITOS, monthly_partitions, "bronze", DELITOS))
def bronze_delitos(
    context: dg.AssetExecutionContext, socrata: SocrataResource, lake: LakeResource, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Swap the run's months in from the lake, reconcile every layer by row id, and commit only when they agree.

    The checks are evaluated inside the load's transaction: a failed one rolls the load back, so bronze keeps
    the rows it published before, and the step fails (dbt does not build). So does a window that would shrink
    implausibly against what bronze holds (the volume guard), unless the run accepts the drop.
    """
    yield from load_bronze_checked(context, socrata, lake, warehouse, DELITOS)


def load_bronze_checked(
    context: dg.AssetExecutionContext,
    socrata: SocrataResource,
    lake: LakeResource,
    warehouse: WarehouseResource,
    dataset: LakeDataset,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """A bronze asset's step for ``dataset``: the approved load of the run's months and its checks' results."""
    end_step_with_its_run()
    hold_warehouse(context, warehouse)
    verdict: dict[str, list[MonthCounts]] = {}
    volume: dict[str, VolumeVerdict] = {}
    accept = drop_accepted(context)
    try:
        window = Window.from_time_window(context.partition_time_window, first_month=dataset.first_month)
        months = window.month_keys()
        source = source_counts(socrata, window)
        held = read_lake(lake, months, dataset)
        published = warehouse.count_by_month(window, dataset)

        def approve(bronze: Mapping[str, RowIds]) -> bool:
            verdict["counts"] = reconcile(months, source, held, bronze)
            volume["verdict"] = lake.volume_guard().judge(published, {m: ids.count for m, ids in bronze.items()})
            reconciled = all(month.reconciles for month in verdict["counts"])
            valid = not any(month.offenders for month in held.values())
            return reconciled and valid and (volume["verdict"].plausible or accept)

        load = warehouse.load(lake, window, context.run_id, approve, dataset)
    except (LakeError, SocrataError, WarehouseError, PartitionRangeError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    checks = [
        reconciliation_result(verdict["counts"]),
        volume_check_result(volume["verdict"], accepted=accept),
        values_result({m: h.offenders for m, h in held.items()}),
    ]
    if not load.committed:
        yield from checks
        failed = [check for check in checks if not check.passed]
        description = "; ".join(check.description or "" for check in failed)
        raise failed_checks(f"bronze was left as it was: {description}", [check.check_name for check in failed])
    context.log.info(f"Loaded {load.rows:,} rows over {len(months)} months in {load.seconds:.1f} s")
    # One materialization per month, each with the result's metadata: a month's rows go to its partition alone.
    rows_by_month = load.rows_by_month
    for month in months:
        rows = rows_by_month.get(month, 0)
        context.add_asset_metadata({"rows": dg.MetadataValue.int(rows), **row_count(rows)}, partition_key=month)
    metadata = {**bronze_metadata(load, len(months), dataset), **drop_metadata(volume["verdict"], accept)}
    yield dg.MaterializeResult(metadata=metadata, check_results=checks)


def bronze_metadata(load: BronzeLoad, months: int, dataset: LakeDataset = DELITOS) -> dict[str, dg.MetadataValue]:
    """What every month of the run shares: the table, and the run's totals (``run_*``)."""
    return {
        "table": dg.MetadataValue.text(dataset.bronze_table),
        "run_months": dg.MetadataValue.int(months),
        "run_rows": dg.MetadataValue.int(load.rows),
        "run_seconds": dg.MetadataValue.float(round(load.seconds, 3)),
    }


def reconciliation_result(counts: list[MonthCounts]) -> dg.AssetCheckResult:
    """Passes when every month reconciles by row id; otherwise names the months and their figures."""
    mismatches = [month for month in counts if not month.reconciles]
    source, lake = sum(m.source for m in counts), sum(m.lake.count for m in counts)
    quarantined, bronze = sum(m.quarantined for m in counts), sum(m.bronze.count for m in counts)
    if mismatches:
        shown = "; ".join(month.describe() for month in mismatches[:SHOWN_MISMATCHES])
        more = f" (and {len(mismatches) - SHOWN_MISMATCHES} more)" if len(mismatches) > SHOWN_MISMATCHES else ""
        description = f"{len(mismatches)} of {len(counts)} months do not reconcile: {shown}{more}"
    else:
        description = (
            f"{len(counts)} months reconcile: source {source:,} = lake {lake:,} + quarantined {quarantined:,}; "
            f"bronze holds the lake's {bronze:,} row ids"
        )
    return dg.AssetCheckResult(
        check_name=RECONCILED_CHECK,
        passed=not mismatches,
        description=description,
        metadata={
            "months": len(counts),
            "months_mismatched": len(mismatches),
            "source_rows": source,
            "lake_rows": lake,
            "quarantined_rows": quarantined,
            "bronze_rows": bronze,
        },
    )


def values_result(offenders_by_month: dict[str, dict[str, int]]) -> dg.AssetCheckResult:
    """Offending rows counted per rule (and the months they are in); passes only when there are none."""
    totals: Counter[str] = Counter()
    for offenders in offenders_by_month.values():
        totals.update(offenders)
    months = sorted(month[:7] for month, offenders in offenders_by_month.items() if offenders)
    summary = ", ".join(f"{reason}: {count:,}" for reason, count in totals.most_common())
    return dg.AssetCheckResult(
        check_name=VALUES_CHECK,
        passed=not totals,
        description=f"offences in {len(months)} months ({', '.join(months[:6])}): {summary}"
        if totals
        else (f"every row of {len(offenders_by_month)} months obeys the contract"),
        metadata={"offences": sum(totals.values()), **{f"offenders: {r}": c for r, c in totals.items()}},
    )
