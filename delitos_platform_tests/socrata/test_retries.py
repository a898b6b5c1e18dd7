"""Retries within a budget: Retry-After honoured up to a cap, each wait logged, failures told in one sentence.

Every fault is the emulator's, served over real HTTP and read through real sodapy.
"""

from __future__ import annotations

import socket
import time

import dagster as dg
import pytest

from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform.warehouse.base import WarehouseResource
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake

MONTH = "2019-03-01"
ASSETS = [socrata_delitos, lake_delitos]
MARCH = "date_trunc_ym(fecha_hecho) = '2019-03-01T00:00:00.000'"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert "$select" not in message and "?" not in message and "resource/" not in message, message


def test_a_short_retry_after_is_honoured_and_each_wait_is_logged_in_the_run(armed_portal, local_lake):
    armed_portal.faults.inject("429", count=1, retry_after=1)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"socrata": socrata_for(armed_portal), "lake": local_lake, "warehouse": WarehouseResource()}
    started = time.monotonic()
    result = dg.materialize(ASSETS, resources=resources, partition_key=MONTH, instance=instance)

    assert result.success
    assert time.monotonic() - started >= 1.0  # the source asked for a second; the backoff alone is 0.01 s
    waits = [entry.user_message for entry in instance.all_logs(result.run_id) if "waiting" in entry.user_message]
    assert waits == [
        f"Socrata at {armed_portal.url} throttled requests (HTTP 429) while counting the rows of 2019-03: "
        "attempt 1 of 4, waiting 1 s"
    ]


def test_a_retry_after_longer_than_the_cap_fails_at_once_saying_so(armed_portal):
    armed_portal.faults.inject("429", count=1, retry_after=120)
    started = time.monotonic()
    with pytest.raises(SocrataError) as failure:
        socrata_for(armed_portal).count(MARCH, "counting the rows of 2019-03")

    assert time.monotonic() - started < 5
    assert str(failure.value) == (
        f"Socrata at {armed_portal.url} throttled requests (HTTP 429) while counting the rows of 2019-03 and asked "
        "to wait 120 s, more than the 60 s this platform waits: run again later"
    )


def test_a_source_slower_than_the_budget_fails_within_the_budget(armed_portal):
    armed_portal.faults.inject("slow", count=100, delay=3)
    socrata = socrata_for(armed_portal, timeout_seconds=0.4, request_budget_seconds=1.0, max_retries=10)
    started = time.monotonic()
    with pytest.raises(SocrataError) as failure:
        socrata.count(MARCH, "counting the rows of 2019-03")

    assert time.monotonic() - started < 1.5
    message = str(failure.value)
    _assert_one_sentence(message)
    assert message.startswith(
        f"Socrata at {armed_portal.url} timed out after 0.4 s 3 times while counting the rows of 2019-03 "
        "(dataset 4v6r-wu98); gave up after 3 attempts in "
    )
    assert message.endswith(": the request's time budget is 1 s")


@pytest.mark.parametrize(
    ("kind", "options", "what"),
    [
        ("429", {"retry_after": 0}, "throttled requests (HTTP 429) 3 times"),
        ("503", {"retry_after": 0}, "answered HTTP 503 3 times"),
        ("500", {}, "answered HTTP 500 3 times"),
        ("reset", {}, "reset the connection 3 times"),
        ("truncate", {}, "cut a response short 3 times"),
    ],
)
def test_a_source_that_keeps_failing_is_one_sentence_saying_what_it_did(armed_portal, local_lake, kind, options, what):
    armed_portal.faults.inject(kind, count=100, **options)
    result = materialize_lake(socrata_for(armed_portal, max_retries=2), local_lake, MONTH)

    message = failure_message(result)
    _assert_one_sentence(message)
    assert message.startswith(
        f"Socrata at {armed_portal.url} {what} while counting the rows of 2019-03 (dataset 4v6r-wu98); "
        "gave up after 3 attempts in "
    )
    assert not any(local_lake.path("").rglob("*.parquet"))


def test_a_refused_connection_says_so_and_how_often():
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(SocrataError) as failure:
        SocrataResource(url=url, max_retries=1, backoff_seconds=0.01).metadata()

    assert str(failure.value).startswith(
        f"Socrata at {url} refused the connection twice while reading the dataset's metadata (dataset 4v6r-wu98); "
        "gave up after 2 attempts in "
    )
