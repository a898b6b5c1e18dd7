"""Policies shared by the assets of every layer."""

from datetime import timedelta

import dagster as dg

# The source refreshes monthly: a layer not materialized for 32 days warns, for 35 days fails.
MONTHLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=35), warn_window=timedelta(days=32))
