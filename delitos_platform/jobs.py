"""Jobs: the main job materializes every asset of the platform, for any range of months, in one run."""

import dagster as dg

from delitos_platform.partitions import monthly_partitions

main_job = dg.define_asset_job(
    name="delitos_main_job",
    selection=dg.AssetSelection.all(),
    partitions_def=monthly_partitions,
    description="Source → lake (→ bronze → dbt): every asset, for the months of the run, in ONE run.",
)
