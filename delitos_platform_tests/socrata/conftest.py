"""Fixtures of the Socrata client's tests: one emulator per module, its faults disarmed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer


@pytest.fixture(scope="module")
def soda() -> Iterator[EmulatorServer]:
    """One emulator for the module; each test arms its own faults."""
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def armed_portal(soda: EmulatorServer) -> Iterator[EmulatorServer]:
    """The module's emulator, with no fault armed when the test ends."""
    yield soda
    soda.faults.clear()
