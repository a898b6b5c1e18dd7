"""Jobs: the main job materializes every asset of the platform, for any range of months, in one run."""

import dagster as dg

from delitos_platform.defs.automation.freshness import freshness_against_source
from delitos_platform.defs.family import FAMILY

main_job = dg.define_asset_job(
    name="delitos_main_job",
    # The freshness checks have their own daily job: right after a sync they would only say "fresh". The other
    # datasets of the family have a job each (``defs/family.py``).
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.checks(freshness_against_source)
    - dg.AssetSelection.assets(*(key for member in FAMILY for key in member.keys)),
    description="Source → lake (→ bronze → dbt): every asset, for the months of the run, in ONE run.",
)
