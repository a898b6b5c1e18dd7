"""The run queue of the embedded instance: runs that write the warehouse are tagged, and let in one at a time.

``dagster.yaml`` limits runs tagged ``delitos/writes_warehouse`` to one in progress (``concurrency: runs:
tag_concurrency_limits``). Dagster puts a job's tags on the runs of that job (schedules, sensors, job backfills),
but not on the runs of asset selections (the UI's *Materialize*, asset backfills from the UI or GraphQL): those
run Dagster's implicit asset job. So the tag is not declared on jobs: this coordinator reads every submitted
run's execution plan and tags the run when one of its steps writes the warehouse (bronze, dbt), however it was
launched. Snowflake takes concurrent writers; the production instance queues the same way all the same (one policy).
"""

from __future__ import annotations

import dagster as dg

from delitos_platform.defs.policies import WRITES_WAREHOUSE, WRITES_WAREHOUSE_TAGS, run_writes_warehouse


class WarehouseRunQueue(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator, tagging the runs that write the warehouse before they are queued."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        """Tag the run with ``delitos/writes_warehouse`` when one of its steps writes the warehouse, then queue it."""
        run = context.dagster_run
        if WRITES_WAREHOUSE not in run.tags and run_writes_warehouse(self._instance, run):
            self._instance.add_run_tags(run.run_id, WRITES_WAREHOUSE_TAGS)
            tagged = self._instance.get_run_by_id(run.run_id) or run
            context = dg.SubmitRunContext(tagged, context.workspace)
        return super().submit_run(context)
