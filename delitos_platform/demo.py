"""``delitos demo``: the whole platform, offline, on the embedded default, in one command.

Starts our SODA emulator on the shipped snapshot, runs the main job over every month in ONE run against
a persistent ``DAGSTER_HOME`` (so ``dagster dev`` shows the history afterwards), prints a summary and
stops the emulator. Running it again rewrites the same bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import dagster as dg

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.partitions import monthly_partitions

REPO_ROOT = Path(__file__).resolve().parent.parent
# The run's own log lines at INFO: the event stream at DEBUG is the UI's job, not the terminal's.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


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
    """Run the demo; 0 when every step succeeded."""
    home = prepare_dagster_home(args.dagster_home or Path(os.environ.get("DAGSTER_HOME") or ".dagster_home"))
    data_dir = args.data_dir.resolve()
    with EmulatorServer(snapshot=args.snapshot, host="127.0.0.1", port=0) as emulator:
        print(f"Emulator serving {args.snapshot.name} at {emulator.url}", flush=True)
        os.environ.update(
            {
                "DAGSTER_HOME": str(home),
                "DELITOS_ENV": "local",
                "DELITOS_DATA_DIR": str(data_dir),
                "SOCRATA_URL": emulator.url,
            }
        )
        result = run_main_job()
    print_summary(result, data_dir, home)
    return 0 if result.success else 1


def prepare_dagster_home(home: Path) -> Path:
    """A persistent instance folder with the project's ``dagster.yaml``."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def run_main_job() -> dg.ExecuteInProcessResult:
    """The main job over every month, as one run recorded in the persistent instance."""
    from delitos_platform.definitions import defs

    keys = monthly_partitions.get_partition_keys()
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    print(f"Running delitos_main_job over {len(keys)} months ({keys[0]} → {keys[-1]}) in one run…", flush=True)
    job = defs().resolve_job_def("delitos_main_job")
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(instance=instance, tags=tags, run_config=QUIET, raise_on_error=False)


def print_summary(result: dg.ExecuteInProcessResult, data_dir: Path, home: Path) -> None:
    """Rows per layer and where to look next."""
    print()
    if not result.success:
        failures = [event for event in result.all_events if event.is_step_failure]
        for event in failures:
            data = event.step_failure_data
            reason = data.user_failure_data.description if data.user_failure_data else data.error.message
            print(f"FAILED {event.step_key}: {reason}")
        return
    for event in result.get_asset_materialization_events()[:1]:
        metadata = {key: value.value for key, value in event.materialization.metadata.items()}
        print(
            f"lake:        {metadata['rows']:>9,} rows, {metadata['quarantined']:,} quarantined, "
            f"{metadata['pages']} pages in {metadata['duration_seconds']:.1f} s → {data_dir / 'lake'}"
        )
    print(f"\nRun {result.run_id} succeeded. See it in the UI:")
    print(f"  DAGSTER_HOME={home} .venv/bin/dagster dev    # then open http://127.0.0.1:3000")
