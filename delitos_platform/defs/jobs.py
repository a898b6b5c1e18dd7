"""Jobs: the main job materializes every asset of the platform, for any range of months, in one run."""

import dagster as dg

from delitos_platform.defs.automation.freshness import freshness_against_source

main_job = dg.define_asset_job(
    name="delitos_main_job",
    # The freshness checks have their own daily job: right after a sync they would only say "fresh".
    selection=dg.AssetSelection.all() - dg.AssetSelection.checks(freshness_against_source),
    description="Source → lake (→ bronze → dbt): every asset, for the months of the run, in ONE run.",
)
