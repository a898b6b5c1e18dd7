"""The fault matrix's platform: a short window loaded on every layer, runs in this process or in a child that
a test kills, and the one question every case ends with: is every layer the source, by row id?
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import requests
from dagster_aws.s3 import S3Resource

from delitos_platform.defs.bronze.assets import BRONZE_DELITOS
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import STAGING, LakeResource, LocalLake, S3Lake, data_key, quarantine_key
from delitos_platform.partitions import Window
from delitos_platform.row_ids import RowIds
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.platform.helpers import (
    duckdb_resources,
    layer_identities,
    query,
    run_months,
)

FIRST, LAST = "2019-02-01", "2019-03-01"
MONTHS = [FIRST, LAST]
LAKE_AND_BRONZE = [LAKE_DELITOS, BRONZE_DELITOS]
SILVER = dg.AssetKey(["silver", "stg_delitos"])
# Small pages: a month takes several, so that a fault or a change can land between two of them.
PAGE_SIZE = 25
KILL_TIMEOUT = 120.0


@dataclass
class Platform:
    """One case's platform: its own emulator (free to misbehave) over a copy of the loaded starting point."""

    server: EmulatorServer
    data_dir: Path
    lake: LakeResource = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.lake is None:
            self.lake = LocalLake(root=str(self.data_dir / "lake"))

    @property
    def database(self) -> Path:
        """The DuckDB warehouse file."""
        return self.data_dir / "warehouse.duckdb"

    def resources(self, **socrata: Any) -> dict[str, Any]:
        """The platform's resources; ``socrata`` overrides the source's settings (retries, page size)."""
        resources = duckdb_resources(self.server, self.data_dir)
        resources["socrata"] = socrata_for(self.server, **socrata)
        resources["lake"] = self.lake
        return resources

    def run(
        self, selection: list[dg.AssetKey] | None = LAKE_AND_BRONZE, months: tuple[str, str] = (FIRST, LAST), **socrata
    ) -> dg.ExecuteInProcessResult:
        """One run of ``selection`` (lake and bronze unless told; None: the whole chain) over ``months``."""
        return run_months(self.resources(**socrata), *months, selection)

    def identities(self, months: list[str] = MONTHS) -> dict[str, RowIds]:
        """Row ids of ``months`` on every layer: source, lake, bronze, silver."""
        return layer_identities(self.server, self.lake, self.database, months)

    def assert_exact(self, months: list[str] = MONTHS) -> None:
        """Every layer holds exactly the source's rows of ``months``: none lost, none doubled."""
        found = self.identities(months)
        assert found["source"].count > 0
        assert found == dict.fromkeys(found, found["source"]), found

    def source_values(self) -> dict[str, str]:
        """``cantidad`` of every source row of the window, by row id."""
        rows = self.resources()["socrata"].query(select=":id, cantidad", where=_window_soql(), limit=50_000)
        return {row[":id"]: str(int(float(row["cantidad"]))) for row in rows}

    def table_values(self, table: str) -> dict[str, str]:
        """``cantidad`` of every row of a warehouse table in the window, by row id."""
        rows = query(self.database, f"SELECT row_id, cantidad FROM {table} WHERE fecha_hecho >= '{FIRST}'")
        return {row_id: str(cantidad) for row_id, cantidad in rows}

    def published(self, months: list[str] = MONTHS) -> dict[str, bytes]:
        """The bytes of every published object of ``months``."""
        keys = [key(month) for month in months for key in (data_key, quarantine_key)]
        return {key: self.lake.read(key) for key in keys}

    def staged_files(self) -> list[str]:
        """Whatever is left in the lake's staging area (local lake)."""
        area = Path(self.lake.root) / STAGING
        return sorted(str(path.relative_to(area)) for path in area.rglob("*")) if area.exists() else []

    def admin(self, action: str, **body: Any) -> dict[str, Any]:
        """One call to the emulator's admin endpoint."""
        response = requests.post(f"{self.server.url}/admin/{action}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()


def _window_soql() -> str:
    return Window(Window.for_month(FIRST).start, Window.for_month(LAST).end).soql()


def copy_data_dir(source: Path, target: Path) -> Path:
    """A private copy of a loaded data folder (lake files and the DuckDB warehouse)."""
    shutil.copytree(source, target)
    return target


# ------------------------------------------------------------------------------------------ runs to kill
def resources_for(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The resources a child run uses, from its spec (the parent's emulator URL, data folder, S3 lake)."""
    resources = duckdb_resources(EmulatorAddress(spec["url"]), Path(spec["data_dir"]))  # type: ignore[arg-type]
    resources["socrata"] = socrata_for(EmulatorAddress(spec["url"]), page_size=spec["page_size"])  # type: ignore[arg-type]
    if spec.get("s3"):
        s3 = S3Resource(endpoint_url=spec["s3"]["endpoint"], region_name="us-east-1")
        resources["lake"] = S3Lake(s3=s3, bucket=spec["s3"]["bucket"])
    return resources


@dataclass(frozen=True)
class EmulatorAddress:
    """Where a child run finds the parent's emulator (all ``duckdb_resources`` asks of a server)."""

    url: str


def run_spec(spec: Mapping[str, Any]) -> bool:
    """Run the chain (or the selection) a spec describes; True when the run succeeded."""
    os.environ.update(spec.get("env", {}))
    selection = [dg.AssetKey(key.split("/")) for key in spec["selection"]] if spec.get("selection") else None
    return run_months(resources_for(spec), spec["first"], spec["last"], selection).success


class Forker:
    """A child process that has imported the platform once and forks a run per request, each in a process
    group of its own: a test kills a run at the moment it chooses without paying the imports again.
    """

    def __init__(self, log: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "delitos_platform_tests.faults.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )

    def start(self, spec: Mapping[str, Any]) -> int:
        """Start one run; returns its pid (also its process group)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(spec) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the forking runner died"
        return int(line)

    def stop(self) -> None:
        """End the runner (its runs are killed by the tests that started them)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def alive(pid: int) -> bool:
    """Whether a process still exists (the runner's children are reaped by the kernel)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(moment: Callable[[], Any], pid: int, what: str, timeout: float = KILL_TIMEOUT, interval=0.002) -> Any:
    """Poll ``moment`` until it holds while the run ``pid`` is still alive; AssertionError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        found = moment()
        if found:
            return found
        assert alive(pid), f"the run ended before {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(interval)


def kill_group(pid: int) -> None:
    """SIGKILL a run's whole process group (the run and dbt, if it runs) and wait until it is gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(pid)


def kill_spec(platform: Platform, log: Path, **spec: Any) -> dict[str, Any]:
    """A child run's spec: the platform's emulator and data folder, small pages, lake and bronze."""
    return {
        "url": platform.server.url,
        "data_dir": str(platform.data_dir),
        "page_size": PAGE_SIZE,
        "first": FIRST,
        "last": LAST,
        "selection": ["lake/delitos", "bronze/delitos"],
        "log": str(log),
        "env": {"DELITOS_WAREHOUSE_PATH": str(platform.database)},
        **spec,
    }


def files_under(root: Path) -> Iterator[Path]:
    """Every file under ``root``."""
    return (path for path in root.rglob("*") if path.is_file())
