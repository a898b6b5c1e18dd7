"""Datasets as configuration: each dataset one YAML entry, read and validated before anything runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from delitos_platform import contract
from delitos_platform.datasets import ENTRIES_FOLDER, LAKE_TYPES, DatasetConfigError, configured, load_entries
from delitos_platform_tests.fidelity.test_client_on_recordings import PORTAL_TYPES

FAMILY_COLUMNS = ["fecha_hecho", "cod_depto", "departamento", "cod_muni", "municipio"]
# 4v6r-wu98's columns as the portal's metadata types them, which contract.py spelt out before the entry existed.
CONTRACT_BEFORE_ENTRIES = PORTAL_TYPES
LAKE_SCHEMA_BEFORE_ENTRIES = pa.schema(
    [
        pa.field("row_id", pa.string(), nullable=False),
        pa.field("fecha_hecho", pa.date32(), nullable=False),
        pa.field("cod_depto", pa.string(), nullable=False),
        pa.field("departamento", pa.string(), nullable=False),
        pa.field("cod_muni", pa.string(), nullable=False),
        pa.field("municipio", pa.string(), nullable=False),
        pa.field("descripcion_conducta", pa.string(), nullable=False),
        pa.field("cantidad", pa.int64(), nullable=False),
    ]
)
ARTICLE_CODES = ["269A", "269B", "269C", "269D", "269E", "269F", "269G", "269I", "269J"]


def test_the_four_configured_datasets_load_with_the_familys_shape() -> None:
    entries = configured()
    assert set(entries) == {"4v6r-wu98", "m8fd-ahd9", "4rxi-8m8d", "q2ib-t9am"}
    assert {e.id: e.slug for e in entries.values()} == {
        "4v6r-wu98": "delitos",
        "m8fd-ahd9": "homicidios",
        "4rxi-8m8d": "hurto_personas",
        "q2ib-t9am": "extorsion",
    }
    for entry in entries.values():
        columns = list(entry.source_columns)
        assert columns[:5] == FAMILY_COLUMNS and columns[-1] == "cantidad"
        assert entry.date_column == "fecha_hecho" and entry.id in entry.attribution
    assert list(entries["m8fd-ahd9"].source_columns)[5:-1] == [
        "zona",
        "sexo",
        "arma_medio",
        "_modalidad_presunta",
        "spoa_caracterizacion",
    ]


def test_4v6r_wu98s_entry_gives_todays_contract_exactly() -> None:
    entry = configured()["4v6r-wu98"]
    assert entry.source_columns == CONTRACT_BEFORE_ENTRIES == contract.SOURCE_COLUMNS
    assert list(entry.source_columns) == list(CONTRACT_BEFORE_ENTRIES)  # the order is the contract's too
    assert entry.lake_schema.equals(LAKE_SCHEMA_BEFORE_ENTRIES) and contract.LAKE_SCHEMA.equals(entry.lake_schema)
    assert list(contract.ARTICLES) == ARTICLE_CODES and contract.ARTICLES["269I"] == "HURTO POR MEDIOS INFORMATICOS"
    assert (entry.slug, entry.first_month, entry.title) == ("delitos", "2006-05", "Delitos informáticos")


def test_every_lake_type_is_a_socrata_metadata_type_with_a_header_name() -> None:
    assert set(LAKE_TYPES) <= set(contract.SODA2_TYPES)


def _write(folder: Path, name: str, document: Any) -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, allow_unicode=True))
    return path


def _homicidios(**changes: Any) -> dict[str, Any]:
    document = yaml.safe_load((ENTRIES_FOLDER / "m8fd-ahd9.yaml").read_text(encoding="utf-8"))
    document.update(changes)
    return {key: value for key, value in document.items() if value is not None}


def _refusal(folder: Path) -> str:
    with pytest.raises(DatasetConfigError) as raised:
        load_entries(folder)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_an_unknown_column_type_is_one_sentence_naming_the_entry(tmp_path: Path) -> None:
    columns = _homicidios()["columns"]
    columns[5]["type"] = "texto"
    path = _write(tmp_path, "m8fd-ahd9.yaml", _homicidios(columns=columns))
    assert _refusal(tmp_path) == (
        f"dataset entry {path}: column 'zona' has type 'texto', which is not a Socrata type the lake can hold "
        "(calendar_date, number, text)"
    )


def test_a_date_column_not_among_the_columns_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "m8fd-ahd9.yaml", _homicidios(date_column="fecha"))
    message = _refusal(tmp_path)
    assert message.startswith(f"dataset entry {path}: date column 'fecha' is not among its columns (fecha_hecho, ")


def test_two_entries_with_one_id_or_one_slug_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "m8fd-ahd9.yaml", _homicidios())
    same_id = _write(tmp_path, "zzzz-0000.yaml", _homicidios(slug="otro"))
    assert _refusal(tmp_path) == f"dataset entry {same_id}: id 'm8fd-ahd9' is already that of m8fd-ahd9.yaml"
    same_id.unlink()
    same_slug = _write(tmp_path, "zzzz-0000.yaml", _homicidios(id="zzzz-0000"))
    assert _refusal(tmp_path) == f"dataset entry {same_slug}: slug 'homicidios' is already that of m8fd-ahd9.yaml"


def test_a_missing_required_field_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "m8fd-ahd9.yaml", _homicidios(title=None))
    assert _refusal(tmp_path) == f"dataset entry {path}: missing required field 'title'"


def test_a_malformed_first_month_is_named(tmp_path: Path) -> None:
    for month in ("2010-13", "2010-1", "2010-01-01"):
        text = yaml.safe_dump(_homicidios(first_month=None), allow_unicode=True) + f"first_month: {month}\n"
        path = _write(tmp_path, "m8fd-ahd9.yaml", text)
        assert _refusal(tmp_path) == f"dataset entry {path}: first_month '{month}' is not a month written YYYY-MM"


def test_an_unknown_field_and_a_file_that_is_not_a_mapping_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "m8fd-ahd9.yaml", _homicidios(titel="Homicidios"))
    assert _refusal(tmp_path) == f"dataset entry {path}: unknown field 'titel'"
    _write(tmp_path, "m8fd-ahd9.yaml", "- just\n- a list\n")
    assert _refusal(tmp_path).startswith(f"dataset entry {path}: not a YAML mapping of fields")
    _write(tmp_path, "m8fd-ahd9.yaml", "id: [unclosed\n")
    assert _refusal(tmp_path) == f"dataset entry {path}: not valid YAML at line 2"


def test_the_delitos_command_refuses_a_bad_shipped_entry_in_one_sentence_before_running(tmp_path: Path) -> None:
    package = Path(contract.__file__).parent
    shutil.copytree(package, tmp_path / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    broken = tmp_path / package.name / "datasets" / "q2ib-t9am.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("date_column: fecha_hecho", "date_column: fecha"))
    output = tmp_path / "never.json"
    result = subprocess.run(
        [sys.executable, "-m", "delitos_platform.commands", "synthesize", "--rows", "5", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},  # the copy, not the installed package
    )
    assert result.returncode == 2 and not output.exists()
    assert result.stderr == (
        f"delitos: dataset entry {broken}: date column 'fecha' is not among its columns "
        "(fecha_hecho, cod_depto, departamento, cod_muni, municipio, cantidad)\n"
    )
