"""dbt prepared explicitly: parsed by ``delitos prepare`` (or under ``dg``/``dagster dev``) when it changed, never
when the definitions are imported; an unprepared project is one sentence saying what to run.

Every test works on a copy of the dbt project in a temporary folder: the repository's own manifest is shared by
every test worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from delitos_platform.commands import main
from delitos_platform.defs.dbt.assets import extra_environment
from delitos_platform.transform import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    DelitosDbtCliResource,
    DelitosDbtProject,
    delitos_dbt_project,
    prepare_dbt,
)

# Loads the definitions as a code server would, with the dbt project replaced by the copy named in argv[1].
LOAD_DEFINITIONS = """
import sys
from delitos_platform import transform
transform.delitos_dbt_project = transform.DelitosDbtProject(
    project_dir=sys.argv[1], profiles_dir=sys.argv[1], target="duckdb"
)
import delitos_platform.definitions
"""


def copy_of_the_project(folder: Path) -> DelitosDbtProject:
    """The platform's dbt project copied into ``folder``, without anything dbt wrote (never prepared)."""
    shutil.copytree(DBT_PROJECT_DIR, folder, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    return DelitosDbtProject(project_dir=folder, profiles_dir=folder, target="duckdb")


def changed_after_the_parse(path: Path, project: DelitosDbtProject) -> None:
    """``path`` dated a second after the manifest, as a file changed after the parse is (timestamps can be coarse)."""
    parsed = project.manifest_path.stat().st_mtime
    os.utime(path, (parsed + 1, parsed + 1))


def test_loading_the_definitions_unprepared_is_one_sentence_and_parses_nothing(tmp_path: Path) -> None:
    """Outside ``dagster dev``, importing the definitions never starts dbt: without a manifest they refuse to load,
    the last line saying what to run, and no dbt frame in the traceback."""
    project = copy_of_the_project(tmp_path / "dbt_project")
    environment = {name: value for name, value in os.environ.items() if name != "DAGSTER_IS_DEV_CLI"}

    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_DEFINITIONS, str(project.project_dir)],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )

    assert loaded.returncode != 0
    last_line = loaded.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"FileNotFoundError: dbt has not been prepared ({project.manifest_path} is missing): run `delitos prepare`"
        " first (`dg dev` and `dagster dev` prepare it themselves)"
    ), loaded.stderr
    assert "dagster_dbt" not in loaded.stderr
    assert not (project.project_dir / "target").exists()


def test_prepare_parses_a_missing_or_changed_project_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes preparing together parse once; a fresh manifest is not parsed again; under ``dg``/``dagster
    dev`` Dagster's ``prepare_if_dev()`` parses a changed project (and only there); a project dbt cannot parse is
    one line naming dbt's error."""
    project = copy_of_the_project(tmp_path / "dbt_project")
    monkeypatch.delenv("DAGSTER_IS_DEV_CLI", raising=False)
    project.prepare_if_dev()
    assert not project.manifest_path.exists(), "prepare_if_dev parsed outside dagster dev"

    with ThreadPoolExecutor(max_workers=2) as pool:
        parsed = sorted(pool.map(lambda _: prepare_dbt(project), range(2)))
    assert parsed == [False, True]
    assert prepare_dbt(project) is False

    schema = project.project_dir / "models" / "gold" / "schema.yml"
    schema.write_text(schema.read_text().replace("One row summarising everything in silver.", "Totals of silver."))
    changed_after_the_parse(schema, project)
    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")
    project.prepare_if_dev()
    manifest = json.loads(project.manifest_path.read_text())
    assert manifest["nodes"]["model.delitos.resumen_general"]["description"] == "Totals of silver."

    model = project.project_dir / "models" / "gold" / "resumen_general.sql"
    model.write_text(model.read_text().replace("ref('stg_delitos')", "ref('no_such_model')"))
    changed_after_the_parse(model, project)
    with pytest.raises(ValueError, match=r"^dbt could not parse .*no_such_model") as refused:
        prepare_dbt(project)
    assert "\n" not in str(refused.value)


def test_delitos_prepare_says_the_project_is_prepared(capsys: pytest.CaptureFixture[str]) -> None:
    """The test session prepared the platform's project: ``delitos prepare`` finds nothing to do and says so."""
    assert main(["prepare"]) == 0
    assert capsys.readouterr().out == (
        f"dbt already prepared: {delitos_dbt_project.manifest_path} is newer than every file of the project\n"
    )


def test_dbt_in_the_steps_process_leaves_its_environment_and_directory_as_they_were(tmp_path: Path) -> None:
    """dbt runs inside the process with the environment dagster-dbt gives it (a run's window included), then the
    process's own environment and working directory are as before: no run's window reaches the next run."""
    project = copy_of_the_project(tmp_path / "dbt_project")
    prepare_dbt(project)
    resource = DelitosDbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE)
    environment, directory = dict(os.environ), os.getcwd()

    with extra_environment({"DELITOS_DBT_WINDOW_START": "2019-03-01", "DELITOS_DBT_WINDOW_END": "2019-04-01"}):
        invocation = resource.cli(["ls", "--select", "stg_delitos"], target_path=tmp_path / "ls", raise_on_error=False)
    listed = [event.raw_event["info"]["msg"] for event in invocation.stream_raw_events()]

    assert invocation.process.pid == os.getpid()  # no dbt process was started
    assert invocation.get_error() is None
    assert "delitos.silver.stg_delitos" in listed
    assert dict(os.environ) == environment
    assert os.getcwd() == directory
    assert (tmp_path / "ls" / "dbt.log").exists()  # dbt's debug log, as the CLI writes it
