"""``delitos demo``: the whole platform, offline, on the embedded default, in one command.

Starts our SODA emulator on the shipped snapshot, runs the main job over every month in ONE run against
a persistent ``DAGSTER_HOME`` (so ``delitos dev`` shows the history afterwards), prints a line per step and a
summary, and stops the emulator. Running it again rewrites the same bytes. It takes the warehouse before anything
else and holds it until its summary is printed: while another run (another demo) holds it, the demo fails at once
in one sentence naming that run, having changed nothing.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from delitos_platform.commands import embedded as platform
from delitos_platform.locations import warehouse_path
from delitos_platform.partitions import monthly_partitions

if TYPE_CHECKING:  # the platform is imported when the demo runs, not when `delitos` parses its arguments
    import dagster as dg

TOP_OF_LATEST_YEAR = """
SELECT anio, string_agg(municipio || ' (' || casos || ')', ', ' ORDER BY posicion)
FROM gold.top_municipios
WHERE anio = (SELECT max(anio) FROM gold.top_municipios) AND posicion <= 3
GROUP BY anio
"""
EXAMPLES = """examples:
  delitos demo                                  # into .dagster_home/ and data/, then: delitos dev
  delitos demo --data-dir /tmp/d --dagster-home /tmp/h --verbose
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    platform.add_snapshot_argument(parser)
    platform.add_instance_arguments(parser)
    platform.add_verbose_argument(parser)
    parser.epilog = EXAMPLES


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step succeeded, 1 when a step failed or another run holds the warehouse."""
    from delitos_platform.commands.console import say

    embedded = platform.check_embedded("delitos demo", args)
    started = platform.started_now()
    keys = monthly_partitions.get_partition_keys()
    # The snapshot is read before anything is written: a bad one leaves no instance folder behind.
    with platform.serving(args.snapshot, None) as url:
        platform.check_source(embedded, url)
        result = platform.run_in_warehouse(
            "delitos demo", embedded, url, first=keys[0], last=keys[-1], verbose=args.verbose
        )
        if result is None:
            return 1
        say("")
        if result.success:
            say("\n".join([*summary_lines(result), "", *platform.success_lines(result, embedded, started)]))
        else:
            say("\n".join(platform.failure_lines(result, embedded, started)))
    return 0 if result.success else 1


def summary_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """What each layer holds after the run, read back from the lake metadata and the warehouse."""
    import dagster as dg
    import duckdb

    from delitos_platform.defs.bronze.assets import RECONCILED_CHECK
    from delitos_platform.defs.lake.assets import QUARANTINE_CHECK
    from delitos_platform.defs.lake.checks import LEDGER_CHECK

    lake = result.asset_materializations_for_node("lake__delitos")[0].metadata  # any month: each has the run's totals
    lines = [
        f"lake:    {lake['run_rows'].value:>9,} rows + {lake['run_quarantined'].value:,} quarantined"
        f" + {lake['run_out_of_calendar'].value:,} out of the calendar"
    ]
    with duckdb.connect(str(warehouse_path()), read_only=True) as warehouse:
        for layer, table in (("bronze", "bronze.delitos"), ("silver", "silver.stg_delitos")):
            (rows,) = warehouse.execute(f"SELECT count(*) FROM {table}").fetchone()
            lines.append(f"{layer}:  {rows:>9,} rows")
        casos, registros, depts, munis, first, last, article = warehouse.execute(
            "SELECT * FROM gold.resumen_general"
        ).fetchone()
        year, top = warehouse.execute(TOP_OF_LATEST_YEAR).fetchone()
    lines += [
        f"gold:    {casos:,} cases in {registros:,} reports, {munis} municipalities of {depts} department(s)",
        f"         {first} → {last}; most frequent article {article}; top municipalities of {year}: {top}",
    ]
    shown = {RECONCILED_CHECK: "reconciliation", LEDGER_CHECK: "ledger", QUARANTINE_CHECK: "quarantine"}
    for event in result.all_events:
        evaluation = (
            event.asset_check_evaluation_data
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            else None
        )
        if evaluation is not None and evaluation.check_name in shown:
            warning = evaluation.severity == dg.AssetCheckSeverity.WARN
            verdict = "passed" if evaluation.passed else ("WARNING" if warning else "FAILED")
            lines.append(f"{shown[evaluation.check_name]} {verdict}: {evaluation.description}")
    return lines
