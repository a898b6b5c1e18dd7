"""A data engineer adds a dataset by writing one entry, in a copy of the project: no Python, no SQL.

The copy holds the package and the dbt project as they are here, plus ``datasets/d7zw-hpf4.yaml`` (Secuestro, with
its own column ``tipo_delito``). In a new interpreter whose ``delitos_platform`` is the copy's, ``delitos prepare``
writes the dataset's dbt files, the code location is loaded, and the new dataset's job runs against our emulator
serving synthetic rows of it; the test reads what appeared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from delitos_platform.datasets import ENTRIES_FOLDER
from delitos_platform.locations import REPO_ROOT

ADDED = {
    "id": "d7zw-hpf4",
    "title": "Secuestro",
    "slug": "secuestro",
    "date_column": "fecha_hecho",
    "first_month": "2010-01",
    "attribution": "Source: Policía Nacional de Colombia, datos.gov.co dataset d7zw-hpf4, CC BY-SA 4.0",
    "columns": [
        {"name": "fecha_hecho", "type": "calendar_date"},
        {"name": "cod_depto", "type": "text"},
        {"name": "departamento", "type": "text"},
        {"name": "cod_muni", "type": "text"},
        {"name": "municipio", "type": "text"},
        {"name": "tipo_delito", "type": "text", "examples": ["SECUESTRO EXTORSIVO", "SECUESTRO SIMPLE"]},
        {"name": "cantidad", "type": "number"},
    ],
}

# Run in the copy: prepare, load the definitions, run the new dataset's job over two months, report as JSON.
IN_THE_COPY = """
import json, os, sys
from pathlib import Path

import delitos_platform
from delitos_platform.commands import main
from delitos_platform.datasets import configured
from delitos_platform.emulator import EmulatorServer
from delitos_platform.emulator.synthetic import synthetic_rows
from delitos_platform.partitions import range_tags
from delitos_platform.socrata import SocrataResource

assert Path(delitos_platform.__file__).is_relative_to(sys.argv[1]), delitos_platform.__file__
assert main(["prepare"]) == 0
rows = list(synthetic_rows(configured()["d7zw-hpf4"], rows=40, start="2024-01", end="2024-02"))
with EmulatorServer(datasets={"d7zw-hpf4": rows}, port=0) as server:
    os.environ["SOCRATA_URL"] = server.url  # the code location's resources, on the emulator and DELITOS_DATA_DIR
    from delitos_platform.definitions import defs

    definitions = defs()
    graph = definitions.resolve_asset_graph()
    job = definitions.resolve_job_def("secuestro_job")
    run = job.execute_in_process(tags=range_tags("2024-01-01", "2024-02-01"), raise_on_error=False)
    source = SocrataResource(url=server.url, dataset_id="d7zw-hpf4").query(select=":id", where="1 = 1", limit=1000)
print(json.dumps({
    "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
    "checks": sorted(key.to_user_string() for key in graph.asset_check_keys),
    "jobs": sorted(job.name for job in definitions.resolve_all_job_defs()),
    "source_ids": sorted(row[":id"] for row in source),
    "success": run.success,
}))
"""


def _copy_of_the_project(root: Path) -> Path:
    """The package and the dbt project, without what a run or a parse left behind."""
    leftovers = shutil.ignore_patterns("__pycache__", "target", "logs", ".user.yml")
    shutil.copytree(REPO_ROOT / "delitos_platform", root / "delitos_platform", ignore=leftovers)
    shutil.copytree(REPO_ROOT / "dbt_project", root / "dbt_project", ignore=leftovers)
    return root


def test_one_added_entry_brings_its_assets_checks_job_and_tables_with_no_python(tmp_path: Path) -> None:
    copy, data = _copy_of_the_project(tmp_path / "project"), tmp_path / "data"
    entries = copy / ENTRIES_FOLDER.relative_to(REPO_ROOT)
    (entries / "d7zw-hpf4.yaml").write_text(yaml.safe_dump(ADDED, allow_unicode=True), encoding="utf-8")
    script = tmp_path / "in_the_copy.py"
    script.write_text(IN_THE_COPY, encoding="utf-8")
    environment = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "DELITOS_DATA_DIR": str(data),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()

    finished = subprocess.run(
        [sys.executable, str(script), str(copy), str(data)],
        check=False,
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert {"socrata/secuestro", "lake/secuestro", "bronze/secuestro", "silver/stg_secuestro"} <= set(report["assets"])
    assert {
        "lake/secuestro:schema_matches_contract",
        "lake/secuestro:dataset_ledger_balances",
        "bronze/secuestro:reconciled_with_source",
        "silver/stg_secuestro:stg_secuestro_column_rules",
        "silver/stg_secuestro:unique_stg_secuestro_row_id",
    } <= set(report["checks"])
    assert "secuestro_job" in report["jobs"]
    assert report["success"]
    # Its dbt files were written from the entry, in the copy only.
    assert (copy / "dbt_project/models/family/silver/stg_secuestro.sql").is_file()
    assert not (REPO_ROOT / "dbt_project/models/family/silver/stg_secuestro.sql").exists()
    # Its tables appeared, with the source's row ids, its own column, and its rows in the cross-crime gold.
    import duckdb

    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as connection:
        silver_ids = [row[0] for row in connection.sql("SELECT row_id FROM silver.stg_secuestro ORDER BY 1").fetchall()]
        bronze_ids = [row[0] for row in connection.sql("SELECT row_id FROM bronze.secuestro ORDER BY 1").fetchall()]
        columns = [row[0] for row in connection.sql("DESCRIBE silver.stg_secuestro").fetchall()]
        [(gold_rows,)] = connection.sql(
            "SELECT sum(registros) FROM gold.resumen_por_delito WHERE dataset = 'd7zw-hpf4'"
        ).fetchall()
    assert silver_ids == bronze_ids == report["source_ids"]
    assert "tipo_delito" in columns
    assert gold_rows == len(report["source_ids"])
