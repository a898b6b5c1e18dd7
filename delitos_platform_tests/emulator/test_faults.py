"""Faults fire as configured and clients see them the way they would see the real service misbehave."""

from __future__ import annotations

import time

import pytest
import requests

from delitos_platform.emulator import EmulatorServer
from delitos_platform_tests.emulator.conftest import resource


def test_429_for_the_next_n_requests_with_retry_after(own_soda: EmulatorServer) -> None:
    own_soda.faults.inject("429", count=2, retry_after=7)
    statuses = [resource(own_soda, {"$limit": 1}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "7"
    assert statuses[0].json()["error"] is True


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors_have_json_bodies(own_soda: EmulatorServer, kind: str) -> None:
    own_soda.faults.inject(kind, count=1)
    response = resource(own_soda)
    assert response.status_code == int(kind)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["error"] is True
    assert resource(own_soda).status_code == 200


def test_slow_delays_the_answer(own_soda: EmulatorServer) -> None:
    own_soda.faults.inject("slow", count=1, delay=0.5)
    started = time.perf_counter()
    assert resource(own_soda, {"$limit": 1}).status_code == 200
    assert time.perf_counter() - started >= 0.5
    with pytest.raises(requests.Timeout):
        own_soda.faults.inject("slow", count=1, delay=1.0)
        requests.get(f"{own_soda.url}/resource/4v6r-wu98.json", timeout=0.3)


def test_reset_raises_connection_error(own_soda: EmulatorServer) -> None:
    own_soda.faults.inject("reset", count=1)
    with pytest.raises(requests.ConnectionError):
        resource(own_soda)
    assert resource(own_soda, {"$limit": 1}).status_code == 200


def test_truncated_body_raises(own_soda: EmulatorServer) -> None:
    own_soda.faults.inject("truncate", count=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        resource(own_soda)
    assert len(resource(own_soda).json()) == 1000


def test_probability_is_seeded_and_deterministic() -> None:
    def pattern() -> list[int]:
        with EmulatorServer(snapshot=[{"cantidad": "1"}], seed=3) as server:
            server.faults.inject("503", probability=0.3)
            return [resource(server).status_code for _ in range(40)]

    first = pattern()
    assert first == pattern()
    assert 3 <= first.count(503) <= 25
    assert set(first) == {200, 503}


def test_faults_skip_metadata_unless_asked(own_soda: EmulatorServer) -> None:
    own_soda.faults.inject("500", probability=1.0)
    assert requests.get(f"{own_soda.url}/api/views/4v6r-wu98.json", timeout=10).status_code == 200
    own_soda.faults.clear()
    own_soda.faults.inject("500", count=1, paths=["/api/views/"])
    assert requests.get(f"{own_soda.url}/api/views/4v6r-wu98.json", timeout=10).status_code == 500
    assert resource(own_soda, {"$limit": 1}).status_code == 200


def test_unknown_fault_kind_is_refused(own_soda: EmulatorServer) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        own_soda.faults.inject("418", count=1)
