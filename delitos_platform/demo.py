"""``delitos demo``: the whole platform, offline, on the embedded default, in one command.

Starts our SODA emulator on the shipped snapshot, runs the main job over every month in ONE run against
a persistent ``DAGSTER_HOME`` (so ``dagster dev`` shows the history afterwards), prints a summary and
stops the emulator. Running it again rewrites the same bytes. It takes the warehouse before anything else and
holds it until its summary is printed: while another run (another demo) holds it, the demo fails at once in one
sentence naming that run, having changed nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.locations import REPO_ROOT, warehouse_path

if TYPE_CHECKING:  # the platform is imported when the demo runs, not when `delitos` parses its arguments
    import dagster as dg
from delitos_platform.partitions import monthly_partitions, range_tags
from delitos_platform.warehouse.lock import WarehouseBusyError, WarehouseLock

# The run's own log lines at INFO: the event stream at DEBUG is the UI's job, not the terminal's.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
TOP_OF_LATEST_YEAR = """
SELECT anio, string_agg(municipio || ' (' || casos || ')', ', ' ORDER BY posicion)
FROM gold.top_municipios
WHERE anio = (SELECT max(anio) FROM gold.top_municipios) AND posicion <= 3
GROUP BY anio
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    parser.add_argument("--snapshot", type=Path, default=DEFAULT_SNAPSHOT, help="JSON rows to serve")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where the lake and warehouse go")
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=None,
        help="Dagster instance folder (default: $DAGSTER_HOME or .dagster_home)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step succeeded, 1 when a step failed or another run holds the warehouse."""
    data_dir = args.data_dir.resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(f"--data-dir {data_dir} is a file, not a folder")
    os.environ.update(
        {
            # One "planned" event per asset for the whole range instead of one per asset and month
            # (1,968 for this run): SQLite writes them one by one, which took half the demo's time.
            # The price, which a demo can pay: a failed run does not mark each month as failed.
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
            "DELITOS_ENV": "local",
            "DELITOS_DATA_DIR": str(data_dir),
        }
    )
    run_id = str(uuid.uuid4())  # the run's own id: its steps find the warehouse already theirs
    warehouse = WarehouseLock(warehouse_path())
    # The snapshot is read before anything is written: a bad one leaves no instance folder behind.
    with EmulatorServer(snapshot=args.snapshot, host="127.0.0.1", port=0) as emulator:
        try:
            warehouse.claim(run_id)
        except WarehouseBusyError as busy:
            print(f"delitos demo: {busy}", file=sys.stderr)
            return 1
        try:
            home = prepare_dagster_home(args.dagster_home or Path(os.environ.get("DAGSTER_HOME") or ".dagster_home"))
            os.environ.update({"DAGSTER_HOME": str(home), "SOCRATA_URL": emulator.url})
            print(f"Emulator serving {args.snapshot.name} at {emulator.url}", flush=True)
            result = run_main_job(run_id)
            print_summary(result, home)
        finally:
            warehouse.release(run_id)
    return 0 if result.success else 1


def prepare_dagster_home(home: Path) -> Path:
    """A persistent instance folder with the project's ``dagster.yaml``."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def run_main_job(run_id: str) -> dg.ExecuteInProcessResult:
    """The main job over every month, as one run (``run_id``) recorded in the persistent instance."""
    import dagster as dg

    from delitos_platform.transform import prepare_dbt

    prepare_dbt()  # the definitions are built from dbt's manifest and never parse dbt themselves
    from delitos_platform.definitions import defs

    keys = monthly_partitions.get_partition_keys()
    tags = range_tags(keys[0], keys[-1])
    print(f"Running delitos_main_job over {len(keys)} months ({keys[0]} → {keys[-1]}) in one run…", flush=True)
    job = defs().resolve_job_def("delitos_main_job")
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, raise_on_error=False, run_id=run_id
        )


def print_summary(result: dg.ExecuteInProcessResult, home: Path) -> None:
    """Rows per layer, the reconciliation, a few gold figures, and where to look next."""
    print()
    lines = summary_lines(result) if result.success else failure_lines(result)
    print("\n".join(lines))
    if result.success:
        print(f"\nRun {result.run_id} succeeded. See it in the UI:")
        print(f"  DAGSTER_HOME={home} .venv/bin/dagster dev    # then open http://127.0.0.1:3000")


def failure_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed step, with its one-sentence reason."""
    lines = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            reason = data.user_failure_data.description if data.user_failure_data else data.error.message
            lines.append(f"FAILED {event.step_key}: {reason}")
    return lines


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
