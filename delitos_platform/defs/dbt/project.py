"""The dbt project (``dbt_project/``) as Dagster sees it, and the manifest its assets are built from."""

import shutil
import sys
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
# The dbt installed beside this interpreter, found even when the venv is not activated (no PATH entry).
DBT_EXECUTABLE = (
    str(Path(sys.executable).with_name("dbt"))
    if Path(sys.executable).with_name("dbt").exists()
    else (shutil.which("dbt") or "dbt")
)


class DelitosDbtCliResource(DbtCliResource):
    """``DbtCliResource`` without two costs of every run that this project has no use for.

    dagster-dbt asks the executable for its version (``dbt --version``: a Python start-up and dbt's imports,
    seconds per run) and builds a dbt adapter inside the Dagster process (dbt's imports again, and their memory)
    for the column and row-count metadata it can fetch, which these assets never ask for. The dbt run here is
    the dbt-core installed beside this interpreter, so its version is known without starting it.
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None


# Parsed with the embedded target: the manifest describes the models; each run parses its own target.
delitos_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="duckdb")


def ensure_manifest(project: DbtProject = delitos_dbt_project) -> Path:
    """The manifest, parsed again when it is missing or older than any file of the project."""
    if _manifest_is_stale(project):
        DelitosDbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()
    return project.manifest_path


def _manifest_is_stale(project: DbtProject) -> bool:
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    sources = (path for folder in ("models", "macros", "tests") for path in (project.project_dir / folder).rglob("*"))
    newest = max((path.stat().st_mtime for path in sources), default=0.0)
    yml = max(path.stat().st_mtime for path in project.project_dir.glob("*.yml"))
    return max(newest, yml) > built
