"""Fixtures of the emulator's own tests: servers on loopback and real SODA clients talking to them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from sodapy import Socrata

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer

DATASET = "4v6r-wu98"


@pytest.fixture
def own_soda() -> Iterator[EmulatorServer]:
    """An emulator of this test's own, with the admin endpoint on."""
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, port=0, admin=True, seed=42) as server:
        yield server


def client_for(server: EmulatorServer) -> Socrata:
    """A real sodapy client pointed at an emulator over plain HTTP."""
    adapter = {"prefix": "http://", "adapter": requests.adapters.HTTPAdapter()}
    return Socrata(f"{server.host}:{server.port}", None, session_adapter=adapter, timeout=10)


def resource(
    server: EmulatorServer, params: dict[str, object] | None = None, dataset: str = DATASET
) -> requests.Response:
    """GET a resource endpoint of an emulator with raw query parameters (``$select`` etc.)."""
    return requests.get(f"{server.url}/resource/{dataset}.json", params=params or {}, timeout=10)
