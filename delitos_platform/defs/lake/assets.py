"""The lake asset: one Parquet object (and one quarantine object) per month of ``fecha_hecho``."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from delitos_platform.defs.policies import MONTHLY_FRESHNESS
from delitos_platform.defs.source.assets import SOCRATA_DELITOS
from delitos_platform.lake.extract import Extraction, extract_to_lake
from delitos_platform.lake.quality import object_schema_drift, source_schema_drift
from delitos_platform.lake.storage import LakeError, LakeResource, data_key
from delitos_platform.partitions import Window, monthly_partitions
from delitos_platform.socrata import SocrataError, SocrataResource

LAKE_DELITOS = dg.AssetKey(["lake", "delitos"])
SCHEMA_CHECK = "schema_matches_contract"


@dg.asset(
    key=LAKE_DELITOS,
    deps=[SOCRATA_DELITOS],
    partitions_def=monthly_partitions,
    # A backfill of any range is ONE run and ONE paged query, never a run per month.
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="lake",
    kinds={"parquet"},
    owners=["team:data-engineering"],
    pool="socrata",
    freshness_policy=MONTHLY_FRESHNESS,
    check_specs=[
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=LAKE_DELITOS,
            blocking=True,
            description="The source's columns and types and every object's Parquet schema match the contract.",
        )
    ],
    description=(
        "The source's rows of each month of `fecha_hecho`, typed and sorted by `row_id`, as one Parquet object "
        "per month; rows that break the contract go to a quarantine object with the reason."
    ),
)
def lake_delitos(
    context: dg.AssetExecutionContext, socrata: SocrataResource, lake: LakeResource
) -> dg.MaterializeResult:
    """Extract the run's months from Socrata into the lake."""
    window = Window.from_time_window(context.partition_time_window)
    context.log.info(f"Extracting [{window.start}, {window.end}) from {socrata.shown_url} into the lake")
    try:
        extraction = extract_to_lake(socrata, lake, window, log=context.log)
        drift = schema_drift(socrata, lake, extraction)
    except (SocrataError, LakeError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    context.log.info(
        f"{extraction.rows} rows and {extraction.quarantined} quarantined in {extraction.pages} pages, "
        f"{extraction.seconds:.1f} s"
    )
    return dg.MaterializeResult(metadata=lake_metadata(extraction), check_results=[schema_check_result(drift)])


def schema_drift(socrata: SocrataResource, lake: LakeResource, extraction: Extraction) -> list[str]:
    """Differences from the contract: the source's published columns, then each stored object's schema."""
    drift = [f"source: {line}" for line in source_schema_drift(socrata.metadata().get("columns", []))]
    for month in extraction.months:
        stored = pq.read_schema(pa.BufferReader(lake.read(data_key(month.month))))
        drift += [f"{data_key(month.month)}: {line}" for line in object_schema_drift(stored)]
    return drift


def schema_check_result(drift: list[str]) -> dg.AssetCheckResult:
    """Fails, with a readable diff, on any drift; nothing downstream builds on a failed schema check."""
    return dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        passed=not drift,
        description="; ".join(drift[:10]) if drift else "source columns and every object match the contract",
        metadata={
            "differences": len(drift),
            "diff": dg.MetadataValue.md("\n".join(f"- {line}" for line in drift) or "none"),
        },
    )


def lake_metadata(extraction: Extraction) -> dict[str, dg.MetadataValue]:
    """Materialization metadata: counts, bytes, pages, the query, the object URI(s) and the duration."""
    metadata: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(extraction.rows),
        "quarantined": dg.MetadataValue.int(extraction.quarantined),
        "bytes": dg.MetadataValue.int(sum(month.bytes for month in extraction.months)),
        "pages": dg.MetadataValue.int(extraction.pages),
        "source_query": dg.MetadataValue.text(f"$where={extraction.where}&$order=:id"),
        "duration_seconds": dg.MetadataValue.float(round(extraction.seconds, 3)),
    }
    # Dagster copies a run's metadata onto every partition it materializes: per-month figures are
    # recorded only when the run is one month (a range's months are counted by the reconciliation check).
    if len(extraction.months) == 1:
        month = extraction.months[0]
        metadata["uri"] = dg.MetadataValue.url(month.uri)
        metadata["quarantine_uri"] = dg.MetadataValue.url(month.quarantine_uri)
    else:
        first, last = extraction.months[0], extraction.months[-1]
        metadata["months"] = dg.MetadataValue.int(len(extraction.months))
        metadata["uri"] = dg.MetadataValue.text(f"{first.uri} … {last.uri}")
    return metadata
