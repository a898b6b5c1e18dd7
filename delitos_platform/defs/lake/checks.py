"""The dataset's ledger: every row of the source has exactly one place, whatever months a run touched."""

import dagster as dg

from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.provenance import source_refusal
from delitos_platform.lake.storage import LakeError, LakeResource
from delitos_platform.reconcile import dataset_ledger
from delitos_platform.socrata import SocrataError, SocrataResource

LEDGER_CHECK = "dataset_ledger_balances"


def ledger_description(dataset: LakeDataset) -> str:
    """What the ledger check of ``dataset`` holds."""
    return (
        "The whole dataset: source count(*) = Σ lake months + Σ their quarantine + rows out of the calendar "
        f"(no date, before {dataset.entry.first_month}, future) + rows of the current, not yet complete month "
        "(pending)."
    )


@dg.asset_check(
    asset=LAKE_DELITOS,
    name=LEDGER_CHECK,
    description=ledger_description(DELITOS),
)
def dataset_ledger_balances(socrata: SocrataResource, lake: LakeResource) -> dg.AssetCheckResult:
    """Four counts asked of the source, the lake's Parquet footers: one line saying where every row is."""
    return ledger_result(socrata, lake, DELITOS)


def ledger_result(socrata: SocrataResource, lake: LakeResource, dataset: LakeDataset) -> dg.AssetCheckResult:
    """The ledger check of ``dataset``'s lake asset (``socrata`` reading that dataset)."""
    # Before any request: never the real API on the demo's data, never another dataset on this one.
    refusal = source_refusal(lake, socrata.url, socrata.dataset_id, dataset)
    if refusal is not None:
        raise dg.Failure(description=refusal, allow_retries=False)
    try:
        ledger = dataset_ledger(socrata, lake, dataset)
    except (SocrataError, LakeError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    return dg.AssetCheckResult(
        passed=ledger.balances,
        description=ledger.describe(),
        metadata={
            "source_rows": ledger.source,
            "lake_rows": ledger.lake,
            "quarantined_rows": ledger.quarantined,
            "out_of_calendar_rows": ledger.out_of_calendar,
            "pending_rows": ledger.pending,
            "months_missing": len(ledger.missing_months),
        },
    )
