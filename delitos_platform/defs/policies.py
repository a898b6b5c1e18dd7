"""Policies shared by the assets of every layer."""

from datetime import timedelta

import dagster as dg

# The source refreshes monthly: a layer not materialized for 32 days warns, for 35 days fails.
MONTHLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=35), warn_window=timedelta(days=32))

# Marks a step that failed because its own blocking checks failed (and published nothing): the checks are alerted
# with their details, the run failure is not alerted a second time.
FAILED_CHECKS_METADATA = "failed_blocking_checks"


def failed_checks(description: str, checks: list[str]) -> dg.Failure:
    """The step's failure when blocking checks it evaluated did not pass; never retried (the data is wrong)."""
    return dg.Failure(
        description=description, metadata={FAILED_CHECKS_METADATA: ", ".join(checks)}, allow_retries=False
    )
