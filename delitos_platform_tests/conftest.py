"""Shared fixtures: real servers on loopback (our SODA emulator, moto's S3) and a private DAGSTER_HOME."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakesnow import server as start_fakesnow  # bound at import: fakesnow's first call replaces the attribute
from moto.server import ThreadedMotoServer

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.lake.storage import LocalLake
from delitos_platform.socrata import SocrataResource
from delitos_platform.transform import prepare_dbt


def pytest_configure(config: pytest.Config) -> None:
    """dbt prepared once, before any test loads the definitions (which never parse dbt themselves).

    In the controller only: pytest-xdist's workers start after it has configured, and find the manifest fresh.
    """
    if not hasattr(config, "workerinput"):
        prepare_dbt()


@pytest.fixture(scope="session", autouse=True)
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test runs against its own Dagster instance folder, never the user's."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def snapshot_rows() -> list[dict[str, str]]:
    """The shipped snapshot's rows, as the API serves them (without system fields)."""
    with gzip.open(DEFAULT_SNAPSHOT, "rt", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """A read-only emulator over the shipped snapshot, shared by tests that do not change its data."""
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def fresh_emulator() -> Iterator[EmulatorServer]:
    """An emulator of this test's own, free to be revised or made to misbehave."""
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, host="127.0.0.1", port=0, admin=True) as server:
        yield server


def socrata_for(server: EmulatorServer, **overrides: object) -> SocrataResource:
    """A Socrata resource pointed at an emulator, with retries fast enough for tests."""
    settings = {"url": server.url, "backoff_seconds": 0.01, "max_retries": 3, "timeout_seconds": 10.0}
    return SocrataResource(**{**settings, **overrides})


@pytest.fixture
def local_lake(tmp_path: Path) -> LocalLake:
    """An empty lake folder."""
    return LocalLake(root=str(tmp_path / "lake"))


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict[str, object]]:
    """One fakesnow server (a fake Snowflake over HTTP) for the session: connection kwargs of the connector."""
    with start_fakesnow() as connection_kwargs:
        yield connection_kwargs


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, with throwaway credentials."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield f"http://{host}:{port}"
    server.stop()
