"""Run by ``test_disk_full.py`` inside a mount namespace of its own, where ``FULL`` is a small tmpfs and
``READ_ONLY`` a read-only one: materializes the lake and bronze on them and prints what happened as JSON.

    python -m delitos_platform_tests.lake.disk_full_probe FULL READ_ONLY ROOMY
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from dagster_duckdb import DuckDBResource

from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.lake.extract import extract_to_lake
from delitos_platform.lake.storage import LakeError, LocalLake
from delitos_platform.partitions import Window
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.base import WarehouseError
from delitos_platform.warehouse.duckdb import DuckDBWarehouse

MARCH = Window.for_month("2019-03-01")
YEAR = Window(Window.for_month("2019-01-01").start, Window.for_month("2020-01-01").start)
ROOM_LEFT = 24 * 1024  # room for a few staged objects, not for a year of them


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of ``folder`` until only ``leave`` bytes are free."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the filler, with its bytes."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def failure(action: Callable[[], object]) -> str:
    """The one sentence ``action`` failed with (the lake and bronze assets report exactly this)."""
    try:
        action()
    except (LakeError, WarehouseError) as error:
        return str(error)
    raise AssertionError("it did not fail")


def probe(full: Path, read_only: Path, roomy: Path, socrata: SocrataResource) -> dict[str, object]:
    """With room: March published in the full disk's lake, and loaded into bronze from a roomy lake; then full."""
    lake, roomy_lake = LocalLake(root=str(full / "lake")), LocalLake(root=str(roomy / "lake"))
    warehouse = DuckDBWarehouse(duckdb=DuckDBResource(database=str(full / "warehouse.duckdb")))
    extract_to_lake(socrata, lake, MARCH, "with-room")
    extract_to_lake(socrata, roomy_lake, YEAR, "with-room")
    warehouse.load(roomy_lake, MARCH, "with-room")
    lake_before, bronze_before = files(full / "lake"), warehouse.count_by_month(YEAR)
    fill(full, ROOM_LEFT)

    lake_failure = failure(lambda: extract_to_lake(socrata, lake, YEAR, "on-a-full-disk"))
    lake_after = files(full / "lake")
    load_failure = failure(lambda: warehouse.load(roomy_lake, YEAR, "on-a-full-disk"))
    os.remove(full / "filler")  # room again, to read what bronze holds
    read_only_lake = LocalLake(root=str(read_only / "lake"))
    return {
        "lake": {"message": lake_failure, "unchanged": lake_after == lake_before},
        "bronze": {"message": load_failure, "unchanged": warehouse.count_by_month(YEAR) == bronze_before},
        "read_only": {
            "message": failure(lambda: extract_to_lake(socrata, read_only_lake, MARCH, "read-only")),
            "files": [str(path) for path in read_only.rglob("*")],
        },
    }


def main() -> None:
    full, read_only, roomy = (Path(arg) for arg in sys.argv[1:4])
    with EmulatorServer(snapshot=DEFAULT_SNAPSHOT, host="127.0.0.1", port=0) as server:
        print(json.dumps(probe(full, read_only, roomy, SocrataResource(url=server.url))))


if __name__ == "__main__":
    main()
