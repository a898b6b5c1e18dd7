"""The bronze asset: ``bronze.delitos`` loaded from the lake, and its blocking reconciliation check."""

from collections import Counter

import dagster as dg

from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.defs.policies import MONTHLY_FRESHNESS
from delitos_platform.lake.quality import lake_value_offenders
from delitos_platform.lake.storage import LakeError, LakeResource
from delitos_platform.partitions import Window, monthly_partitions
from delitos_platform.reconcile import MonthCounts, reconcile
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.warehouse.base import BronzeLoad, WarehouseError, WarehouseResource

BRONZE_DELITOS = dg.AssetKey(["bronze", "delitos"])
RECONCILED = "reconciled_with_source"
VALUES_CHECK = "values_valid"
SHOWN_MISMATCHES = 12


@dg.asset(
    key=BRONZE_DELITOS,
    deps=[LAKE_DELITOS],
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="bronze",
    kinds={"sql"},
    freshness_policy=MONTHLY_FRESHNESS,
    owners=["team:data-engineering"],
    description=(
        "`bronze.delitos`: the lake's rows of each month, typed, with `mes` and load metadata (`_run_id`, "
        "`_loaded_at`). Each run swaps its months in with delete + insert in ONE transaction."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILED,
            asset=BRONZE_DELITOS,
            blocking=True,
            description="Per month: Socrata count(*) = lake rows + quarantined rows = bronze rows. dbt waits on it.",
        ),
        dg.AssetCheckSpec(
            VALUES_CHECK,
            asset=BRONZE_DELITOS,
            blocking=True,
            description=(
                "The loaded rows obey the contract: zero-padded codes, municipality inside its department, "
                "fecha_hecho inside its month, cantidad a positive integer, one of the 9 articles."
            ),
        ),
    ],
)
def bronze_delitos(
    context: dg.AssetExecutionContext, socrata: SocrataResource, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Load the run's months from the lake into the warehouse, then reconcile every layer."""
    window = Window.from_time_window(context.partition_time_window)
    try:
        load = warehouse.load(lake, window, context.run_id)
        counts = reconcile(socrata, lake, warehouse, window)
        offenders = lake_value_offenders(lake, list(load.rows_by_month))
    except (LakeError, SocrataError, WarehouseError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    context.log.info(f"Loaded {load.rows:,} rows over {len(load.rows_by_month)} months in {load.seconds:.1f} s")
    return dg.MaterializeResult(
        metadata=bronze_metadata(load), check_results=[reconciliation_result(counts), values_result(offenders)]
    )


def bronze_metadata(load: BronzeLoad) -> dict[str, dg.MetadataValue]:
    """Rows loaded, the months swapped and how long it took."""
    return {
        "rows": dg.MetadataValue.int(load.rows),
        "months": dg.MetadataValue.int(len(load.rows_by_month)),
        "duration_seconds": dg.MetadataValue.float(round(load.seconds, 3)),
        "table": dg.MetadataValue.text("bronze.delitos"),
    }


def reconciliation_result(counts: list[MonthCounts]) -> dg.AssetCheckResult:
    """Passes when every month reconciles; otherwise names the months and their three numbers."""
    mismatches = [month for month in counts if not month.reconciles]
    totals = MonthCounts(
        "total",
        sum(m.source for m in counts),
        sum(m.lake for m in counts),
        sum(m.quarantined for m in counts),
        sum(m.bronze for m in counts),
    )
    if mismatches:
        shown = "; ".join(month.describe() for month in mismatches[:SHOWN_MISMATCHES])
        more = f" (and {len(mismatches) - SHOWN_MISMATCHES} more)" if len(mismatches) > SHOWN_MISMATCHES else ""
        description = f"{len(mismatches)} of {len(counts)} months do not reconcile: {shown}{more}"
    else:
        description = f"{len(counts)} months reconcile: source {totals.source:,} = lake {totals.lake:,} + " + (
            f"quarantined {totals.quarantined:,} = bronze {totals.bronze:,}"
        )
    return dg.AssetCheckResult(
        check_name=RECONCILED,
        passed=not mismatches,
        description=description,
        metadata={
            "months": len(counts),
            "months_mismatched": len(mismatches),
            "source_rows": totals.source,
            "lake_rows": totals.lake,
            "quarantined_rows": totals.quarantined,
            "bronze_rows": totals.bronze,
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
