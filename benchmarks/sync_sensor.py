"""The source sensor at national scale: requests and seconds per evaluation.

    .venv/bin/python benchmarks/sync_sensor.py

Against the emulator serving the 492,000-row synthetic snapshot: a first look at an empty lake, an
evaluation where nothing changed, and one where three months (two of them adjacent) changed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import national_snapshot

from delitos_platform.defs.automation.sync import socrata_changes
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import LocalLake
from delitos_platform.partitions import tagged_range
from delitos_platform.socrata import SocrataResource
from delitos_platform.source_changes import SyncCursor

REVISED = ("2019-03-01", "2019-04-01", "2024-07-01")


def evaluate(
    server: EmulatorServer, lake: LocalLake, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[object, float, int]:
    """One sensor evaluation with Dagster's own test context: its result, seconds and requests to Socrata."""
    resources = {"socrata": SocrataResource(url=server.url), "lake": lake}
    served, started = server.requests_served, time.perf_counter()
    result = socrata_changes(dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance))
    return result, time.perf_counter() - started, server.requests_served - served


def ranges(result: dg.SensorResult) -> list[tuple[str, str]]:
    """The partition ranges of the runs a sensor result requests."""
    return [tagged_range(r.tags) for r in result.run_requests]


def main() -> None:
    """Print requests, seconds and runs for the three situations."""
    # In-process, so that the requests the sensor makes can be counted on the server.
    with (
        EmulatorServer(snapshot=national_snapshot(), port=0) as server,
        TemporaryDirectory() as empty,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        lake = LocalLake(root=empty)
        first, seconds, requests = evaluate(server, lake, instance, None)
        months = len(first.asset_events)
        print(f"first look, empty lake: {seconds:.3f} s, {requests} requests, {months} months, runs {ranges(first)}")
        # The runs requested are never made here: they stay in flight, and nothing is requested twice.
        unchanged, seconds, requests = evaluate(server, lake, instance, first.cursor)
        skipped = unchanged.skip_reason.skip_message
        print(f"nothing changed:        {seconds:.3f} s, {requests} request(s), skipped: {skipped}")
        # As if those runs had succeeded, and three months were revised since.
        synced = SyncCursor.load(first.cursor)
        stale = SyncCursor(synced.rows_updated_at - 1, {**synced.expected(), **dict.fromkeys(REVISED, "0@before")})
        revised, seconds, requests = evaluate(server, lake, instance, stale.dump())
        print(f"3 months changed:       {seconds:.3f} s, {requests} requests, runs {ranges(revised)}")


if __name__ == "__main__":
    main()
