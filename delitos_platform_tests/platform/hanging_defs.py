"""The platform's definitions with a lake that can hang inside bronze's load, for runs in processes of their own.

``dagster asset materialize -m delitos_platform_tests.platform.hanging_defs`` runs the embedded platform as
``delitos_platform.definitions`` does (resources from the environment), except that, when
``DELITOS_TEST_HANG_MONTH`` is set, bronze's load stops before reading that month, holding the warehouse, until the file
``DELITOS_TEST_RELEASE`` exists (it touches ``DELITOS_TEST_READY`` first): a run caught holding the warehouse.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from delitos_platform.defs.bronze.assets import bronze_delitos
from delitos_platform.defs.dbt.assets import dbt_models
from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.environment import build_resources, data_dir
from delitos_platform.lake.storage import LocalLake, data_key

HANG_SECONDS = 300


class LakeThatHangs(LocalLake):
    """A local lake that, when bronze's load asks for one month's file, waits for a release file first."""

    hang_month: str = ""
    ready: str = ""
    release: str = ""

    @contextmanager
    def local_files(self, keys: Sequence[str]) -> Iterator[dict[str, Path]]:
        """The objects' files (what bronze's load reads), once the release file exists when the month is asked."""
        if self.hang_month and data_key(self.hang_month) in keys:
            Path(self.ready).touch()
            deadline = time.monotonic() + HANG_SECONDS
            while not Path(self.release).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        with super().local_files(keys) as files:
            yield files


def _resources() -> dict[str, object]:
    lake = LakeThatHangs(
        root=str(data_dir() / "lake"),
        hang_month=os.environ.get("DELITOS_TEST_HANG_MONTH", ""),
        ready=os.environ.get("DELITOS_TEST_READY", ""),
        release=os.environ.get("DELITOS_TEST_RELEASE", ""),
    )
    return {**build_resources(), "lake": lake}


defs = dg.Definitions(assets=[socrata_delitos, lake_delitos, bronze_delitos, dbt_models], resources=_resources())
