"""The embedded platform as ``delitos`` opens it: one Dagster instance, one data folder, one source.

``delitos demo``, ``delitos backfill`` and ``delitos dev`` resolve the instance (``--dagster-home``, else
``$DAGSTER_HOME``, else ``.dagster_home`` at the repository root) and the data (``--data-dir``, else
``$DELITOS_DATA_DIR``, else ``data`` at the repository root) the same way, and check every setting before
anything is written: each problem is one sentence. The source is our emulator on the shipped snapshot unless
the user names another (``--source real`` or a URL); the lake records which one built it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from delitos_platform.contract import SOCRATA_DOMAIN
from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.locations import REPO_ROOT, data_dir

if TYPE_CHECKING:  # the platform is imported when a run starts, not when `delitos` parses its arguments
    import dagster as dg

    from delitos_platform.lake.storage import LocalLake

DEFAULT_HOME = REPO_ROOT / ".dagster_home"


class SettingsError(ValueError):
    """A setting or flag the command cannot run with, told in one sentence before anything is written."""


def default_home(environ: Mapping[str, str] = os.environ) -> Path:
    """``$DAGSTER_HOME``, else ``.dagster_home`` at the repository root (where ``delitos demo`` records runs)."""
    return Path(environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()


def add_instance_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--dagster-home``: their defaults come from the environment variables."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=data_dir(),
        help="the lake and the DuckDB warehouse (the default comes from $DELITOS_DATA_DIR, else data/)",
    )
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=default_home(),
        help="the Dagster instance folder that records the runs (the default comes from $DAGSTER_HOME)",
    )


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--source`` and ``--snapshot``: our emulator on the shipped snapshot unless the user names the API."""
    parser.add_argument(
        "--source",
        default="emulator",
        metavar="emulator|real|URL",
        help=f"where rows come from: our SODA emulator (on loopback), the real API ({SOCRATA_DOMAIN}) or a Socrata URL",
    )
    add_snapshot_argument(parser)


def add_snapshot_argument(parser: argparse.ArgumentParser) -> None:
    """``--snapshot``: the rows our emulator serves."""
    parser.add_argument(
        "--snapshot", type=Path, default=DEFAULT_SNAPSHOT, help="the JSON rows our emulator serves (.json or .json.gz)"
    )


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``--verbose``: everything a run says, as Dagster and dbt say it."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also print Dagster's events, dbt's lines, library warnings and tracebacks",
    )


@dataclass(frozen=True)
class Embedded:
    """Where the embedded platform keeps its runs and its data."""

    home: Path
    data_dir: Path

    @property
    def lake(self) -> LocalLake:
        """The lake folder under the data folder (as ``DELITOS_DATA_DIR`` gives it to the platform)."""
        from delitos_platform.lake.storage import LocalLake

        return LocalLake(root=str(self.data_dir / "lake"))

    def ui_hint(self) -> str:
        """How to open this instance in the UI (the flags only where they differ from the defaults)."""
        flags = [
            f"{flag} {path}"
            for flag, path, default in (
                ("--dagster-home", self.home, DEFAULT_HOME),
                ("--data-dir", self.data_dir, None),
            )
            if path != (default or data_dir({}))
        ]
        return " ".join(["delitos dev", *flags])


def check_embedded(command: str, args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Embedded:
    """The instance and data folders of a command of the embedded platform, every setting checked first."""
    from delitos_platform.environment import current_environment, warehouse_wait_seconds

    environment = current_environment(environ)  # an unknown DELITOS_ENV is one sentence of its own
    if environment != "local":
        raise SettingsError(
            f"{command} runs the embedded platform (a lake folder and DuckDB), but DELITOS_ENV={environment} is "
            "set: unset it, or run production from its own Dagster deployment (docs/operations.md)"
        )
    warehouse_wait_seconds(environ)
    embedded = Embedded(home=args.dagster_home.resolve(), data_dir=args.data_dir.resolve())
    for flag, folder in (("--data-dir", embedded.data_dir), ("--dagster-home", embedded.home)):
        if folder.exists() and not folder.is_dir():
            raise SettingsError(f"{flag} {folder} is a file, not a folder")
    return embedded


def source_url(args: argparse.Namespace) -> str | None:
    """The URL ``--source`` names, or ``None`` for our emulator (started by the command)."""
    from delitos_platform.socrata.resource import is_loopback

    source = args.source.strip()
    if source == "emulator":
        return None
    if source == "real":
        return SOCRATA_DOMAIN
    if not source.startswith(("http://", "https://")):
        raise SettingsError(f"--source must be emulator, real or a URL like {SOCRATA_DOMAIN}, not {source!r}")
    if is_loopback(source):
        raise SettingsError(f"--source {source} is on loopback: say --source emulator to use our emulator")
    return source.rstrip("/")


def check_source(embedded: Embedded, url: str) -> None:
    """Refuse, in one sentence, a source other than the one the lake was built from."""
    from delitos_platform.environment import socrata_resource
    from delitos_platform.lake.provenance import source_refusal

    refusal = source_refusal(embedded.lake, url, socrata_resource().dataset_id)
    if refusal is not None:
        raise SettingsError(refusal)


@contextmanager
def serving(snapshot: Path, url: str | None) -> Iterator[str]:
    """The source's URL while the command runs: our emulator on ``snapshot`` (stopped after), or ``url``."""
    if url is not None:
        yield url
        return
    with EmulatorServer(snapshot=snapshot, host="127.0.0.1", port=0) as emulator:
        yield emulator.url


def open_platform(embedded: Embedded, url: str) -> None:
    """Point this process's platform at the instance, data and source (what ``dagster dev`` children inherit)."""
    from delitos_platform.environment import socrata_resource
    from delitos_platform.lake.provenance import record_source

    home = prepare_dagster_home(embedded.home)
    embedded.data_dir.mkdir(parents=True, exist_ok=True)
    record_source(embedded.lake, url, socrata_resource().dataset_id)
    os.environ.update(
        {
            # One "planned" event per asset for the whole range instead of one per asset and month
            # (1,968 for the demo's run): SQLite writes them one by one, which took half the demo's time.
            # The price, which a command line can pay: a failed run does not mark each month as failed.
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
            "DELITOS_ENV": "local",
            "DELITOS_DATA_DIR": str(embedded.data_dir),
            "DAGSTER_HOME": str(home),
            "SOCRATA_URL": url,
        }
    )


def prepare_dagster_home(home: Path) -> Path:
    """A persistent instance folder with the project's ``dagster.yaml``."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def run_in_warehouse(
    command: str,
    embedded: Embedded,
    url: str,
    *,
    first: str,
    last: str,
    verbose: bool,
    tags: Mapping[str, str] | None = None,
) -> dg.ExecuteInProcessResult | None:
    """Take the warehouse, open the platform and run the main job over ``first`` → ``last``; ``None`` (having
    said so in one sentence on stderr, changed nothing) while another run holds the warehouse."""
    from delitos_platform.commands.console import complain, quiet_output, say
    from delitos_platform.locations import warehouse_path
    from delitos_platform.warehouse.lock import WarehouseBusyError, WarehouseLock

    run_id = str(uuid.uuid4())  # the run's own id: its steps find the warehouse already theirs
    warehouse = WarehouseLock(warehouse_path({**os.environ, "DELITOS_DATA_DIR": str(embedded.data_dir)}))
    try:
        warehouse.claim(run_id)
    except WarehouseBusyError as busy:
        complain(f"{command}: {busy}")
        return None
    try:
        open_platform(embedded, url)
        say(f"Source: {'our emulator at ' + url if is_emulator(url) else url}")
        with quiet_output(verbose):
            return run_main_job(run_id, first, last, verbose, tags)
    except Exception as error:
        reason = instance_database_failure(error)
        if reason is None or verbose:
            raise
        complain(
            f"{command}: the Dagster instance's database cannot be reached ({reason}), so run {run_id} stopped "
            "where it was; once the database is back, the next delitos demo or backfill marks it failed"
        )
        return None
    finally:
        warehouse.release(run_id)


# Tags of the runs a delitos command runs in its own process: which machine and process, so that a run whose
# process is gone (the instance's database lost under it, the process killed) can be told from one that goes on.
HOST_TAG, PROCESS_TAG = "delitos/cli_host", "delitos/cli_pid"
UNFINISHED = ("NOT_STARTED", "STARTING", "STARTED")


def instance_database_failure(error: BaseException) -> str | None:
    """Why the instance's database failed, when ``error`` (or what caused it) is that; else ``None``."""
    from sqlalchemy.exc import DBAPIError

    while error is not None:
        if isinstance(error, DBAPIError) or type(error).__name__ == "DagsterPostgresException":
            return str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        error = error.__cause__ or error.__context__
    return None


def mark_orphans_failed(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the unfinished runs this machine's delitos commands left when their process ended (a lost
    instance database, a kill): run monitoring watches the runs the daemon launched, not these. Returns their ids.
    """
    import dagster as dg

    statuses = [dg.DagsterRunStatus[status] for status in UNFINISHED]
    runs = instance.get_runs(dg.RunsFilter(statuses=statuses, tags={HOST_TAG: socket.gethostname()}))
    orphans = [run for run in runs if not _process_alive(int(run.tags.get(PROCESS_TAG, "0")))]
    for run in orphans:
        instance.report_run_failed(run, message="the delitos command running it ended before the run did")
    return [run.run_id for run in orphans]


def _process_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return pid == os.getpid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_emulator(url: str) -> bool:
    """Whether ``url`` is our emulator (on loopback)."""
    from delitos_platform.socrata.resource import is_loopback

    return is_loopback(url)


def run_main_job(
    run_id: str, first: str, last: str, verbose: bool, tags: Mapping[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    """The main job over ``first`` → ``last`` (partition keys) as one run recorded in the instance, with progress;
    ``tags``: the run's own, beside its range (e.g. an accepted volume drop)."""
    import dagster as dg

    from delitos_platform.commands.console import run_config, say, with_progress
    from delitos_platform.partitions import monthly_partitions, range_tags
    from delitos_platform.transform import prepare_dbt

    prepare_dbt()  # the definitions are built from dbt's manifest and never parse dbt themselves
    from delitos_platform.definitions import defs

    months = len(monthly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last)))
    say(f"Running delitos_main_job over {months} months ({first[:7]} → {last[:7]}) in one run {run_id}")
    job = with_progress(defs()).resolve_job_def("delitos_main_job")
    with dg.DagsterInstance.get() as instance:
        for orphan in mark_orphans_failed(instance):
            say(f"Marked run {orphan} failed: the delitos command running it ended before it did")
        return job.execute_in_process(
            instance=instance,
            tags={
                **(tags or {}),
                **range_tags(first, last),
                HOST_TAG: socket.gethostname(),
                PROCESS_TAG: str(os.getpid()),
            },
            run_config=run_config(verbose),
            raise_on_error=False,
            run_id=run_id,
        )


def where_to_look(result: dg.ExecuteInProcessResult, embedded: Embedded) -> str:
    """The run's page in the UI that runs on this instance; else how to start one (which prints its address)."""
    from delitos_platform.commands.ui import running_ui

    url = running_ui(embedded.home, result.run_id)
    if url is not None:
        return f"{url}/runs/{result.run_id}"
    return f"{embedded.ui_hint()}    # no UI runs on this instance: this starts one and prints its address"


def failure_lines(result: dg.ExecuteInProcessResult, embedded: Embedded, started: float) -> list[str]:
    """One sentence, the failing step, and where to look."""
    from delitos_platform.commands.console import elapsed, failure_sentence

    failures = [event for event in result.all_events if event.is_step_failure]
    if failures:
        what = f"at step {failures[0].step_key}: {failure_sentence(failures[0].step_failure_data)}"
    else:
        what = "before any step ran (see the run's events)"
    return [
        f"Run {result.run_id} failed after {elapsed(started)} {what}",
        f"Look at it: {where_to_look(result, embedded)}",
    ]


def success_lines(result: dg.ExecuteInProcessResult, embedded: Embedded, started: float) -> list[str]:
    """Where to look at a run that succeeded."""
    from delitos_platform.commands.console import elapsed

    return [
        f"Run {result.run_id} succeeded in {elapsed(started)}. See it in the UI:",
        f"  {where_to_look(result, embedded)}",
    ]


def started_now() -> float:
    """A start time for ``elapsed``."""
    return time.monotonic()
