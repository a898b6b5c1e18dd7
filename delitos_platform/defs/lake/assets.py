"""The lake asset: one Parquet object (and one quarantine object) per month of ``fecha_hecho``.

``lake/delitos`` is 4v6r-wu98's; every other configured dataset's lake asset (``defs/family.py``) has the same
checks and runs the same extraction, :func:`extract_to_lake_checked`, with its own entry.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from delitos_platform.defs.policies import failed_checks, hold_warehouse, monthly_layer
from delitos_platform.defs.source.assets import SOCRATA_DELITOS
from delitos_platform.defs.volume_guard import VOLUME_CHECK, drop_accepted, drop_metadata, volume_check_result
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.extract import (
    AuditError,
    ContractDriftError,
    DuplicateIdsError,
    Extraction,
    MonthWritten,
    VolumeHeldError,
    extract_to_lake,
)
from delitos_platform.lake.provenance import claim_dataset, source_refusal
from delitos_platform.lake.storage import LakeError, LakeResource
from delitos_platform.lifeline import end_step_with_its_run
from delitos_platform.markdown import markdown_text
from delitos_platform.partitions import PartitionRangeError, Window, monthly_partitions
from delitos_platform.queue import run_writes_warehouse
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.warehouse.base import WarehouseResource

LAKE_DELITOS = dg.AssetKey(["lake", "delitos"])
SCHEMA_CHECK = "schema_matches_contract"
QUARANTINE_CHECK = "no_rows_quarantined"
IDS_CHECK = "row_ids_unique"


def lake_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The checks every lake asset evaluates before it publishes (the first three block the next layer)."""
    return [
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=key,
            blocking=True,
            description="The source's columns and types and every object's Parquet schema match the contract.",
        ),
        dg.AssetCheckSpec(
            IDS_CHECK,
            asset=key,
            blocking=True,
            description=(
                "Each :id the source served names one row: an id served twice is a fault of the source, held "
                "(nothing published) until the source serves each :id once."
            ),
        ),
        dg.AssetCheckSpec(
            VOLUME_CHECK,
            asset=key,
            blocking=True,
            description=(
                "No month of the run falls sharply against what the lake publishes, and the window loses no more "
                "than a tenth of its rows (thresholds: DELITOS_HOLD_*); a held run publishes nothing."
            ),
        ),
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=key,
            description="Rows the contract refused (kept in quarantine with the reason, counted): a warning.",
        ),
    ]


LAKE_DESCRIPTION = (
    "The source's rows of each month of `fecha_hecho`, typed and sorted by `row_id`, as one Parquet object "
    "per month; rows that break the contract go to a quarantine object with the reason."
)


def lake_asset_settings(
    key: dg.AssetKey,
    source: dg.AssetKey,
    partitions: dg.PartitionsDefinition,
    group: str,
    description: str = LAKE_DESCRIPTION,
) -> dict[str, Any]:
    """What every lake asset declares (``@dg.asset(**…)``): its source, months, checks and policies."""
    return {
        **monthly_layer(key, source, partitions, group),
        "kinds": {"parquet"},
        "pool": "socrata",
        "check_specs": lake_check_specs(key),
        "description": description,
    }


@dg.asset(**lake_asset_settings(LAKE_DELITOS, SOCRATA_DELITOS, monthly_partitions, "lake"))
def lake_delitos(
    context: dg.AssetExecutionContext, socrata: SocrataResource, lake: LakeResource, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Extract the run's months from Socrata into the lake: staged, audited, then published.

    A source whose columns drifted from the contract, or a staged object that fails its audit, fails the schema
    check and the step: the lake keeps every object it had. A run that goes on to write the warehouse takes it
    first: one that cannot have it extracts nothing.
    """
    yield from extract_to_lake_checked(context, socrata, lake, warehouse, DELITOS)


def extract_to_lake_checked(
    context: dg.AssetExecutionContext,
    socrata: SocrataResource,
    lake: LakeResource,
    warehouse: WarehouseResource,
    dataset: LakeDataset,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """A lake asset's step for ``dataset``: the extraction of the run's months and its checks' results."""
    end_step_with_its_run()
    # Before any request: never the real API on the demo's data, never another dataset on this one.
    refusal = source_refusal(lake, socrata.url, socrata.dataset_id, dataset)
    if refusal is not None:
        raise dg.Failure(description=refusal, allow_retries=False)
    if run_writes_warehouse(context.instance, context.run):
        hold_warehouse(context, warehouse)
    try:
        window = Window.from_time_window(context.partition_time_window, first_month=dataset.first_month)
        context.log.info(f"Extracting [{window.start}, {window.end}) from {socrata.shown_url} into the lake")
        accept = drop_accepted(context)
        extraction = extract_to_lake(
            socrata,
            lake,
            window,
            context.run_id,
            log=context.log,
            run_is_over=lambda run: run_is_over(context, run),
            accept_drop=accept,
            dataset=dataset,
        )
        # Published: the lake (under this dataset's prefix) now holds this dataset, and refuses any other.
        claim_dataset(lake, socrata.dataset_id, dataset)
    except ContractDriftError as error:
        yield schema_check_result(error.drift)
        raise failed_checks(str(error), [SCHEMA_CHECK]) from None
    except DuplicateIdsError as error:
        yield ids_check_result(str(error))
        raise failed_checks(str(error), [IDS_CHECK]) from None
    except AuditError as error:
        yield schema_check_result([str(error)])
        raise failed_checks(str(error), [SCHEMA_CHECK]) from None
    except VolumeHeldError as error:
        yield schema_check_result([])
        yield ids_check_result(None)
        yield volume_check_result(error.verdict, accepted=False, held_at=error.held_at)
        raise failed_checks(str(error), [VOLUME_CHECK]) from None
    except (SocrataError, LakeError, PartitionRangeError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    context.log.info(
        f"{extraction.rows} rows and {extraction.quarantined} quarantined in {extraction.pages} pages, "
        f"{extraction.out_of_calendar} out of the calendar, {extraction.seconds:.1f} s"
    )
    # Dagster records one materialization per month of the run, each with the result's metadata: a month's own
    # figures are added to its partition alone, so that each month (and Dagster's plots by partition) says its own.
    for month in extraction.months:
        context.add_asset_metadata(month_metadata(month), partition_key=month.month)
    yield dg.MaterializeResult(
        metadata=lake_metadata(extraction),
        check_results=[
            schema_check_result([]),
            ids_check_result(None),
            volume_check_result(extraction.volume, accepted=extraction.drop_accepted),
            quarantine_check_result(extraction),
        ],
    )


def run_is_over(context: dg.AssetExecutionContext, run_id: str) -> bool:
    """Whether the instance holds ``run_id`` as finished, or not at all (its staging can be discarded)."""
    run = context.instance.get_run_by_id(run_id)
    return run is None or run.is_finished


def schema_check_result(drift: list[str]) -> dg.AssetCheckResult:
    """Fails, with a readable diff, on any drift; nothing downstream builds on a failed schema check."""
    return dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        passed=not drift,
        description="; ".join(drift[:10]) if drift else "source columns and every object match the contract",
        metadata={
            "differences": len(drift),
            "diff": dg.MetadataValue.md("\n".join(f"- {markdown_text(line)}" for line in drift) or "none"),
        },
    )


def ids_check_result(fault: str | None) -> dg.AssetCheckResult:
    """Fails, saying which ids and months, when the source served an ``:id`` on more than one row."""
    return dg.AssetCheckResult(
        check_name=IDS_CHECK,
        passed=fault is None,
        description=fault or "every :id the source served names one row",
    )


def quarantine_check_result(extraction: Extraction) -> dg.AssetCheckResult:
    """A warning, never a blocker: rows the contract refused are kept in quarantine and counted, not lost."""
    months = [month.month[:7] for month in extraction.months if month.quarantined]
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=not extraction.quarantined,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{extraction.quarantined:,} rows quarantined in {len(months)} months ({', '.join(months[:6])})"
            if extraction.quarantined
            else "no row of the run's months was refused"
        ),
        metadata={"quarantined": extraction.quarantined, "months": len(months)},
    )


def lake_metadata(extraction: Extraction) -> dict[str, dg.MetadataValue]:
    """What every month of the run shares: the query, the dataset's version, and the run's totals (``run_*``)."""
    return {
        "source_query": dg.MetadataValue.text(f"WHERE {extraction.where} ORDER BY :id (keyset on :id)"),
        "source_api": dg.MetadataValue.text(extraction.api),
        "source_rows_updated_at": dg.MetadataValue.int(extraction.rows_updated_at),
        "run_months": dg.MetadataValue.int(len(extraction.months)),
        "run_rows": dg.MetadataValue.int(extraction.rows),
        "run_quarantined": dg.MetadataValue.int(extraction.quarantined),
        "run_out_of_calendar": dg.MetadataValue.int(extraction.out_of_calendar),
        "run_pages": dg.MetadataValue.int(extraction.pages),
        "run_months_read_again": dg.MetadataValue.int(len(extraction.reread)),
        "run_seconds": dg.MetadataValue.float(round(extraction.seconds, 3)),
        **drop_metadata(extraction.volume, extraction.drop_accepted),
    }


def month_metadata(month: MonthWritten) -> dict[str, dg.MetadataValue]:
    """One month's own figures: its rows, refused rows, bytes, objects and the source version it was read at."""
    return {
        "rows": dg.MetadataValue.int(month.rows),
        "quarantined": dg.MetadataValue.int(month.quarantined),
        "bytes": dg.MetadataValue.int(month.bytes),
        "uri": dg.MetadataValue.url(month.uri),
        "quarantine_uri": dg.MetadataValue.url(month.quarantine_uri),
        "source_version": dg.MetadataValue.text(month.version),
    }
