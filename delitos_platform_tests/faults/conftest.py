"""The fault matrix's shared starting point: source → lake → bronze → silver/gold of two months, built once
per session and copied for every case (a copy of a few files instead of a run with dbt)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform_tests.faults.helpers import FIRST, LAST, Forker, Platform, copy_data_dir
from delitos_platform_tests.platform.helpers import duckdb_resources, run_months


@pytest.fixture(scope="session")
def loaded_start(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every layer loaded for the window from the shipped snapshot, through the whole chain."""
    data_dir = tmp_path_factory.mktemp("faults") / "start"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DELITOS_WAREHOUSE_PATH", str(data_dir / "warehouse.duckdb"))
        assert run_months(duckdb_resources(emulator, data_dir), FIRST, LAST).success
    return data_dir


@pytest.fixture
def platform(loaded_start: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """This case's copy of the starting point, and an emulator of its own over the same snapshot."""
    data_dir = copy_data_dir(loaded_start, tmp_path / "data")
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(data_dir / "warehouse.duckdb"))
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, port=0, admin=True) as server:
        yield Platform(server, data_dir)


@pytest.fixture(scope="session")
def forker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forker]:
    """One process that imported the platform, forking the runs that tests kill."""
    runner = Forker(tmp_path_factory.mktemp("forker") / "runner.log")
    yield runner
    runner.stop()
