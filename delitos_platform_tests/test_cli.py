"""``delitos`` as a person meets it: help on every option, a query printed as a table, a failed demo told in
a few lines (the failing step, its sentence, the run id and where to look), never a traceback.

The happy demo (its line count, each step) is run once, by the README flow in processes/test_readme_flow.py.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from delitos_platform import commands as cli
from delitos_platform.emulator import DEFAULT_SNAPSHOT
from delitos_platform.locations import REPO_ROOT


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser, _ = cli.build_parser()
    [choices] = [action.choices for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(choices)


@pytest.mark.parametrize("name", list(subcommands()))
def test_every_option_has_help_with_its_default_and_the_command_has_examples(name: str):
    parser = subcommands()[name]
    options = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]
    text = parser.format_help()

    assert options, name
    for action in options:
        assert action.help and len(action.help) > 10, f"delitos {name} {action.dest} has no help"
        assert "``" not in action.help
    for action in options:
        if action.option_strings and not action.required:
            assert "(default: " in parser._get_formatter()._get_help_string(action), action.dest
    assert "examples:" in text and f"delitos {name}" in text.split("examples:")[1], text
    assert "``" not in text


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small DuckDB warehouse with a gold table, as the demo leaves it (but built in a second)."""
    folder = tmp_path_factory.mktemp("sql")
    with duckdb.connect(str(folder / "warehouse.duckdb")) as connection:
        connection.execute(
            "CREATE SCHEMA gold; CREATE TABLE gold.delitos_por_departamento AS "
            "SELECT * FROM (VALUES ('SANTANDER', 20425, DATE '2025-10-31'), ('META', 7, NULL)) t(departamento, "
            "casos, ultima_fecha)"
        )
    return folder


def delitos(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sql_prints_aligned_columns_numbers_to_the_right_and_the_row_count(warehouse: Path, capsys):
    query = "select * from gold.delitos_por_departamento order by casos desc"
    code, out, err = delitos(capsys, "sql", query, "--data-dir", str(warehouse))

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "departamento  casos  ultima_fecha",
        "------------  -----  ------------",
        "SANTANDER     20425  2025-10-31",
        "META              7",
        "(2 rows)",
    ]


def test_sql_prints_csv_when_asked(warehouse: Path, capsys):
    query = "select departamento, casos from gold.delitos_por_departamento order by casos"
    code, out, _ = delitos(capsys, "sql", query, "--format", "csv", "--data-dir", str(warehouse))

    assert (code, out) == (0, "departamento,casos\nMETA,7\nSANTANDER,20425\n")


def test_sql_while_a_run_writes_the_warehouse_is_one_sentence(warehouse: Path, capsys):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)",
            str(warehouse / "warehouse.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, out, err = delitos(capsys, "sql", "select 1", "--data-dir", str(warehouse))
    finally:
        holder.kill()
        holder.wait()

    assert (code, out) == (2, "")
    assert err.startswith("delitos sql: a run is writing the warehouse ") and err.count("\n") == 1, err
    assert err.rstrip().endswith("query again once it ends")


def test_a_failed_demo_names_the_step_its_sentence_the_run_and_where_to_look_without_a_traceback(tmp_path: Path):
    """A source whose columns drifted from the contract: the lake step refuses it, nothing else runs."""
    with gzip.open(DEFAULT_SNAPSHOT, "rt") as snapshot:
        rows = json.load(snapshot)[:200]
    for row in rows:
        row["zona"] = "URBANA"  # a column the contract does not know
    (tmp_path / "drifted.json").write_text(json.dumps(rows))
    flags = ["--data-dir", str(tmp_path / "data"), "--dagster-home", str(tmp_path / "home")]

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "delitos_platform.commands",
            "demo",
            "--snapshot",
            str(tmp_path / "drifted.json"),
            *flags,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    out = done.stdout
    lines = out.splitlines()
    assert done.returncode == 1, out + done.stderr
    assert "Traceback" not in out + done.stderr and "Error:" not in out + done.stderr, out + done.stderr
    assert len(lines) <= 12, out
    [failed] = [line for line in lines if line.startswith("Run ")]
    run_id = failed.split()[1]
    assert "failed after" in failed and "at step lake__delitos: the source no longer matches the contract" in failed
    assert "new column 'zona'" in failed
    assert lines[-1].startswith("Look at it: delitos dev --dagster-home ")
    assert lines[-1].endswith(f"http://127.0.0.1:3000/runs/{run_id}")
    assert "  ✗ lake__delitos failed after" in out


def test_a_password_in_a_source_url_is_never_printed(capsys, tmp_path: Path):
    code, out, err = delitos(
        capsys, "backfill", "--source", "ftp://ops:sentinel-pw-4e1@example.org", "--from", "2019-03", "--to", "2019-03"
    )

    assert code == 2 and out == ""
    assert "sentinel-pw-4e1" not in err and "ftp://***@example.org" in err, err
