"""Loading snapshots: typed columns, malformed-but-loadable rows, and clear errors for unloadable ones."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.emulator.snapshot import Dataset
from delitos_platform_tests.emulator.conftest import resource


def test_quarantine_shaped_rows_load_and_serve_as_given() -> None:
    rows = [
        {
            "fecha_hecho": "2024-01-02T00:00:00.000",
            "cod_muni": "5001",
            "cantidad": "0",
            "descripcion_conducta": "ALGO DESCONOCIDO",
        },
        {"cantidad": "1.5", "municipio": None},
        {"cantidad": "-1"},
    ]
    with EmulatorServer(snapshot=rows) as server:
        assert resource(server).json() == [
            {
                "fecha_hecho": "2024-01-02T00:00:00.000",
                "cod_muni": "5001",
                "cantidad": "0",
                "descripcion_conducta": "ALGO DESCONOCIDO",
            },
            {"cantidad": "1.5"},
            {"cantidad": "-1"},
        ]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"cantidad": "uno"}, "cantidad"),
        ({"fecha_hecho": "21/01/2009"}, "fecha_hecho"),
        ({"cantidad": "nan"}, "cantidad"),
    ],
)
def test_unloadable_values_name_the_row_and_field(row: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"row 1: field '{field}'"):
        Dataset([{"cantidad": "1"}, row], "4v6r-wu98")


def test_extra_columns_are_typed_and_served(tmp_path: Path) -> None:
    path = tmp_path / "extra.json.gz"
    rows = [{"cantidad": "1", "extra_when": "2024-01-01T00:00:00.000", "note": "2024"}, {"cantidad": 2}]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(rows, handle)
    with EmulatorServer(snapshot=path) as server:
        response = resource(server, {"$select": "cantidad, extra_when, note", "$where": "extra_when < '2025-01-01'"})
        assert response.json() == [{"cantidad": "1", "extra_when": "2024-01-01T00:00:00.000", "note": "2024"}]
        assert json.loads(response.headers["X-SODA2-Types"]) == ["number", "floating_timestamp", "text"]


def test_schema_drift_helpers() -> None:
    with EmulatorServer(snapshot=[{"cantidad": "1", "cod_muni": "68001"}]) as server:
        server.dataset.add_column("nueva", "text")
        server.dataset.retype_column("cod_muni", "number")
        server.dataset.drop_column("municipio")
        meta = server.metadata()
        types = {c["fieldName"]: c["dataTypeName"] for c in meta["columns"]}
        assert types["nueva"] == "text" and types["cod_muni"] == "number" and "municipio" not in types
        assert resource(server, {"$select": "cod_muni + 1 AS next"}).json() == [{"next": "68002"}]


def test_bad_files_fail_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json"):
        Dataset.from_file(broken, "4v6r-wu98")
    with pytest.raises(OSError):
        Dataset.from_file(tmp_path / "missing.json", "4v6r-wu98")


def test_a_dataset_on_disk_answers_like_one_in_memory_and_stop_removes_its_folder(emulator: EmulatorServer) -> None:
    queries = [
        {"$select": ":id, *", "$order": ":id", "$limit": 50000},
        {"$select": ":id", "$limit": 50000},  # file order, not the stored :id order
        {"$select": "municipio, count(*), sum(cantidad)", "$group": "municipio", "$order": "count(*) DESC"},
        {"$select": ":id", "$where": ":id > 'row-m' AND cantidad > 1", "$order": ":id DESC", "$limit": 7},
    ]
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, on_disk=True, admin=True) as on_disk:
        folder = on_disk.dataset.folder
        assert (folder / "dataset.duckdb").is_file() and not emulator.dataset.on_disk
        for params in queries:
            assert resource(on_disk, params).json() == resource(emulator, params).json(), params
        added = on_disk.dataset.add_rows([{"cantidad": "3", "municipio": "NUEVO"}])
        assert resource(on_disk, {"$where": f":id = '{added[0]}'"}).json() == [{"cantidad": "3", "municipio": "NUEVO"}]
    assert not folder.exists()


def test_only_a_large_snapshot_file_goes_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    small = Dataset.from_file(DEFAULT_SNAPSHOT, "4v6r-wu98")
    monkeypatch.setattr("delitos_platform.emulator.snapshot.ON_DISK_ABOVE_BYTES", DEFAULT_SNAPSHOT.stat().st_size - 1)
    large = Dataset.from_file(DEFAULT_SNAPSHOT, "4v6r-wu98")
    try:
        assert (small.on_disk, large.on_disk) == (False, True)
        assert len(small) == len(large) == 20_327
    finally:
        small.close()
        large.close()
    assert not small.folder.exists() and not large.folder.exists()
