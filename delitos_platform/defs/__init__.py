"""What the Dagster UI shows, one folder per step of the story: source → lake → bronze → dbt → automation."""

import warnings

import dagster as dg

# Every asset of the chain backfills any range in ONE run (``BackfillPolicy.single_run()``), a parameter Dagster
# still marks beta. Chosen knowingly: said here once, not twice in every terminal that loads the definitions.
BACKFILL_POLICY_BETA = r"Parameter `backfill_policy` of function `asset` is currently in beta"
warnings.filterwarnings("ignore", message=BACKFILL_POLICY_BETA, category=dg.BetaWarning)
