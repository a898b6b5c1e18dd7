"""The transform step's library half: the dbt project (``dbt_project/``), the dbt that runs it, and its preparation.

Preparing is parsing the project into ``target/manifest.json``, which the dbt assets are built from. It happens
explicitly, never as a side effect of importing the definitions: ``delitos prepare`` (also run by ``delitos demo``
and the test session) and, under ``dagster dev`` / ``dg``, Dagster's own ``DbtProject.prepare_if_dev()``. Both go
through the same preparer, which parses only when the manifest is missing or older than the project's files, and
under a file lock, so that processes starting together parse once.

Named for the step (bronze → silver → gold), not for the tool: ``defs/dbt/`` is the step's other half, the assets.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DagsterDbtProjectPreparer, DbtCliResource, DbtProject, DbtProjectPreparer
from dagster_dbt.core import dbt_cli_invocation
from filelock import FileLock
from packaging.version import Version

from delitos_platform.datasets import ENTRIES_FOLDER, load_entries
from delitos_platform.family_dbt import write_family_files
from delitos_platform.in_process_dbt import dbt_in_this_process
from delitos_platform.locations import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
# The dbt installed beside this interpreter, found even when the venv is not activated (no PATH entry).
DBT_EXECUTABLE = (
    str(Path(sys.executable).with_name("dbt"))
    if Path(sys.executable).with_name("dbt").exists()
    else (shutil.which("dbt") or "dbt")
)
PREPARE_COMMAND = "delitos prepare"
# How long a process waits for another one that is parsing the same project (a parse takes seconds).
PREPARE_LOCK_SECONDS = 300.0
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
# The folders and files whose changes make a manifest stale.
PROJECT_FOLDERS = ("models", "macros", "tests")

logger = logging.getLogger(__name__)


class DelitosDbtCliResource(DbtCliResource):
    """``DbtCliResource`` without three costs of every run that this project has no use for.

    dagster-dbt asks the executable for its version (``dbt --version``: a Python start-up and dbt's imports,
    seconds per run) and builds a dbt adapter inside the Dagster process (dbt's imports again, and their memory)
    for the column and row-count metadata it can fetch, which these assets never ask for. The dbt run here is
    the dbt-core installed beside this interpreter, so its version is known without starting it. And dbt runs in
    this process (``cli``), not in a new interpreter that imports dbt again.
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None

    def cli(self, args: Sequence[str], **kwargs: object) -> dbt_cli_invocation.DbtCliInvocation:  # type: ignore[override]
        """dagster-dbt's invocation, with dbt run in this process (``InProcessDbt``) instead of a new interpreter.

        dagster-dbt reads its dbt through ``subprocess.Popen``'s interface and offers no other hook; it is given
        ``InProcessDbt`` for that one call, and everything else (arguments, target folder, event stream, errors)
        stays dagster-dbt's.
        """
        with dbt_in_this_process():
            return super().cli(args, **kwargs)  # type: ignore[arg-type]


class DelitosDbtPreparer(DagsterDbtProjectPreparer):
    """Dagster's preparer (``prepare_if_dev`` prepares under ``dagster dev`` / ``dg``) with this project's ``prepare``.

    The stock ``prepare`` parses on every load and starts the ``dbt`` found on ``PATH``, which is not there when
    the venv's ``dagster`` or ``dg`` runs without the venv activated (as the README runs them).
    """

    def prepare(self, project: DbtProject) -> None:
        """Parse the project when its manifest is missing or stale."""
        prepare_dbt(project)


class DelitosDbtProject(DbtProject):
    """``DbtProject`` whose preparer is ``DelitosDbtPreparer``, for every caller Dagster has.

    ``DbtProject`` takes no preparer in its constructor; ``prepare_if_dev()`` and
    ``dagster-dbt project prepare-and-package`` both ask ``project.preparer``.
    """

    @property
    def preparer(self) -> DbtProjectPreparer:  # type: ignore[override]
        """This project's preparer."""
        return DelitosDbtPreparer()


# Parsed with the embedded target: the manifest describes the models; each run parses its own target.
delitos_dbt_project = DelitosDbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="duckdb")


def prepare_dbt(
    project: DbtProject = delitos_dbt_project,
    force: bool = False,
    entries_folder: Path = ENTRIES_FOLDER,
) -> bool:
    """Parse ``project`` into its manifest when the manifest is missing or stale (or ``force``); True when it parsed.

    First the family layer's dbt files are written from the dataset entries of ``entries_folder`` (by default the
    package's), each only when its content changes (``family_dbt.write_family_files``), so the manifest is stale
    exactly when the project changed; an entry newer than the manifest makes it stale too.
    Concurrent callers (test workers, a code server and a daemon starting together) wait for one another; the
    ones that waited find the manifest fresh and do not parse again. A project dbt cannot parse is a
    ``ValueError`` whose message is dbt's errors on one line.
    """
    write_family_files(Path(project.project_dir), load_entries(entries_folder))
    if not force and not manifest_is_stale(project, entries_folder):
        return False
    project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(project.manifest_path.with_name("manifest.lock"), timeout=PREPARE_LOCK_SECONDS):
        if not force and not manifest_is_stale(project, entries_folder):
            return False
        invocation = DelitosDbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=project.target_path, raise_on_error=False
        )
        invocation.wait()
        error = invocation.get_error()
    if error is not None:
        raise ValueError(f"dbt could not parse {project.project_dir}: {dbt_errors(str(error))}")
    return True


def manifest_for_definitions(project: DbtProject) -> Path:
    """The manifest the dbt assets are built from, never parsed here: missing, it is one sentence saying what to run.

    A stale manifest is used as it is, with a warning: the assets then lag behind the project's files.
    """
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"dbt has not been prepared ({project.manifest_path} is missing): run `{PREPARE_COMMAND}` first"
            " (`dg dev` and `dagster dev` prepare it themselves)"
        )
    if manifest_is_stale(project):
        logger.warning(
            "dbt_project changed since %s was parsed: run `%s` to see the change in the assets",
            project.manifest_path,
            PREPARE_COMMAND,
        )
    return project.manifest_path


def manifest_is_stale(project: DbtProject, entries_folder: Path = ENTRIES_FOLDER) -> bool:
    """Whether the manifest is missing or older than any model, macro, test or ``*.yml`` of the project, or than
    a dataset entry (the family layer's models are written from them)."""
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    files = [path for folder in PROJECT_FOLDERS for path in (project.project_dir / folder).rglob("*")]
    files += project.project_dir.glob("*.yml")
    files += [entries_folder, *entries_folder.glob("*.yaml")]
    return max((path.stat().st_mtime for path in files), default=0.0) > built


def dbt_errors(message: str, shown: int = 3) -> str:
    """The errors dbt logged (dagster-dbt lists them after a marker), without colours or repeats."""
    _, _, logged = message.partition("Errors parsed from dbt logs:")
    lines = [ANSI_CODES.sub("", line).strip() for line in (logged or message).splitlines()]
    distinct = list(dict.fromkeys(line for line in lines if line and line != "Encountered an error:"))
    return ": ".join(distinct[:shown]) + (f" (+{len(distinct) - shown} more)" if len(distinct) > shown else "")
