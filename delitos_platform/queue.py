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

# The op tag of the steps that write the warehouse (bronze, dbt). A run with such a step takes the warehouse
# before any work (`hold_warehouse`), and the queue's run coordinator (below) tags the run
# with it, so that the embedded instance's `dagster.yaml` lets one such run in at a time.
WRITES_WAREHOUSE = "delitos/writes_warehouse"
WRITES_WAREHOUSE_TAGS = {WRITES_WAREHOUSE: "true"}


def run_writes_warehouse(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether a run executes a step tagged ``WRITES_WAREHOUSE``, read from its execution plan."""
    if run.execution_plan_snapshot_id is None:
        return False
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    selected = set(run.step_keys_to_execute or plan.step_keys_to_execute or (step.key for step in plan.steps))
    return any(step.key in selected and WRITES_WAREHOUSE in (step.tags or {}) for step in plan.steps)


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
