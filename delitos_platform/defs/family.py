"""Every configured dataset but 4v6r-wu98: its source, lake and bronze assets, their checks and its job, from its entry.

A dataset of the family is one entry in ``delitos_platform/datasets/``; from it come ``socrata/<slug>``,
``lake/<slug>`` and ``bronze/<slug>`` (group ``<slug>``, monthly partitions from its first month, one run per
range), the lake's and bronze's checks and the ledger check, and the job ``<slug>_job``. Its silver,
``silver/stg_<slug>``, is a dbt model written from the same entry (``family_dbt.py``), an asset of ``defs/dbt``
in the same group and calendar; the job runs it too, and the cross-crime gold after it. They run the very steps
of 4v6r-wu98's assets (``extract_to_lake_checked``, ``load_bronze_checked``) with the dataset's entry, and read the
source through the ``socrata`` resource pointed at the dataset's own id. 4v6r-wu98 keeps its own assets
(``defs/source``, ``defs/lake``, ``defs/bronze``, dbt) exactly as they were.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from delitos_platform.contract import DATASET_ID
from delitos_platform.datasets import DatasetEntry, configured
from delitos_platform.defs.bronze.assets import bronze_asset_settings, load_bronze_checked
from delitos_platform.defs.lake.assets import LAKE_DESCRIPTION, extract_to_lake_checked, lake_asset_settings
from delitos_platform.defs.lake.checks import LEDGER_CHECK, ledger_description, ledger_result
from delitos_platform.defs.policies import build_freshness_checks
from delitos_platform.family_dbt import silver_model
from delitos_platform.lake.dataset import LakeDataset
from delitos_platform.lake.storage import LakeResource
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.base import WarehouseResource

Step = Iterator[dg.AssetCheckResult | dg.MaterializeResult]


@dataclass(frozen=True)
class FamilyDataset:
    """What one entry of the family puts in the code location."""

    dataset: LakeDataset
    source: dg.AssetSpec
    lake: dg.AssetsDefinition
    bronze: dg.AssetsDefinition
    ledger: dg.AssetChecksDefinition
    freshness: dg.AssetChecksDefinition  # its lake, bronze and silver against its own source (the daily freshness job)
    job: Any  # define_asset_job's, resolved with the Definitions (its class is not public)
    silver_key: dg.AssetKey  # its silver model's: ``silver/stg_<slug>``, a dbt asset of ``defs/dbt`` from its entry

    @property
    def assets(self) -> list[dg.AssetSpec | dg.AssetsDefinition]:
        """Its source, lake and bronze assets, upstream first."""
        return [self.source, self.lake, self.bronze]

    @property
    def checks(self) -> list[dg.AssetChecksDefinition]:
        """Its checks defined apart from its assets: the ledger's and its layers' freshness."""
        return [self.ledger, self.freshness]

    @property
    def keys(self) -> list[dg.AssetKey]:
        """The keys of its own assets, upstream first: source, lake, bronze and silver."""
        return [self.source.key, self.lake.key, self.bronze.key, self.silver_key]


def family_dataset(entry: DatasetEntry) -> FamilyDataset:
    """The assets, checks and job of one dataset of the family, built from its entry alone."""
    dataset = LakeDataset(entry)
    slug, partitions = dataset.slug, dataset.partitions
    source_key, lake_key, bronze_key = (dg.AssetKey([layer, slug]) for layer in ("socrata", "lake", "bronze"))
    source = dg.AssetSpec(
        key=source_key,
        description=(
            f'Dataset `{entry.id}` ("{entry.title}") on www.datos.gov.co, one row per report, refreshed monthly '
            f"and revised. {entry.attribution}."
        ),
        partitions_def=partitions,
        group_name=slug,
        kinds={"socrata"},
        owners=["team:data-engineering"],
        metadata={
            "dataset": dg.MetadataValue.url(f"https://www.datos.gov.co/d/{entry.id}"),
            "partitioned_on": f"{entry.date_column} (monthly, half-open windows)",
        },
    )

    @dg.asset(**lake_asset_settings(lake_key, source_key, partitions, slug, f"{entry.title}: {LAKE_DESCRIPTION}"))
    def lake_asset(
        context: dg.AssetExecutionContext, socrata: SocrataResource, lake: LakeResource, warehouse: WarehouseResource
    ) -> Step:
        yield from extract_to_lake_checked(context, socrata.for_dataset(entry.id), lake, warehouse, dataset)

    @dg.asset(**bronze_asset_settings(bronze_key, lake_key, partitions, slug, dataset))
    def bronze_asset(
        context: dg.AssetExecutionContext, socrata: SocrataResource, lake: LakeResource, warehouse: WarehouseResource
    ) -> Step:
        yield from load_bronze_checked(context, socrata.for_dataset(entry.id), lake, warehouse, dataset)

    @dg.asset_check(asset=lake_key, name=LEDGER_CHECK, description=ledger_description(dataset))
    def ledger(socrata: SocrataResource, lake: LakeResource) -> dg.AssetCheckResult:
        return ledger_result(socrata.for_dataset(entry.id), lake, dataset)

    silver_key = dg.AssetKey(["silver", silver_model(entry)])
    freshness = build_freshness_checks(
        [lake_key, bronze_key, silver_key], name=f"{slug}_freshness_against_source", dataset_id=entry.id
    )
    job = dg.define_asset_job(
        name=f"{slug}_job",
        # Its lake, bronze and silver, and the cross-crime gold that reads every dataset's silver (defs/dbt). Its
        # freshness checks have the daily freshness job (automation/freshness.py): after a sync they say "fresh".
        selection=dg.AssetSelection.assets(lake_key).downstream() - dg.AssetSelection.checks(freshness),
        description=(
            f"{entry.title} ({entry.id}): source → lake → bronze → silver, and the cross-crime gold, for the months "
            "of the run, in ONE run."
        ),
    )
    return FamilyDataset(dataset, source, lake_asset, bronze_asset, ledger, freshness, job, silver_key)


def family(entries: Mapping[str, DatasetEntry] | None = None) -> list[FamilyDataset]:
    """The family's datasets of ``entries`` (the shipped ones by default), 4v6r-wu98 left to its own assets."""
    entries = configured() if entries is None else entries
    return [family_dataset(entry) for dataset_id, entry in entries.items() if dataset_id != DATASET_ID]


FAMILY = family()
