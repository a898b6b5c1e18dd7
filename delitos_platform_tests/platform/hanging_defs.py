"""The platform's definitions with a lake that can hang inside bronze's load, for runs in processes of their own.

``dagster asset materialize -m delitos_platform_tests.platform.hanging_defs`` runs the embedded platform as
``delitos_platform.definitions`` does (resources from the environment), except that, when
``DELITOS_TEST_HANG_MONTH`` is set, bronze's load stops on that month, with the warehouse open, until the file
``DELITOS_TEST_RELEASE`` exists (it touches ``DELITOS_TEST_READY`` first): a run caught holding the warehouse.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from delitos_platform.defs.bronze.assets import bronze_delitos
from delitos_platform.defs.dbt.assets import dbt_models
from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.environment import build_resources, data_dir
from delitos_platform.lake.storage import LocalLake, data_key

HANG_SECONDS = 300


class LakeThatHangs(LocalLake):
    """A local lake whose second read of one month's object (bronze copying it in) waits for a release file."""

    hang_month: str = ""
    ready: str = ""
    release: str = ""
    _reads: int = PrivateAttr(default=0)

    def read(self, key: str) -> bytes:
        """The object's bytes; on the month's second read (the first is bronze's reconciliation), hang first."""
        if self.hang_month and key == data_key(self.hang_month):
            self._reads += 1
            if self._reads == 2:
                Path(self.ready).touch()
                deadline = time.monotonic() + HANG_SECONDS
                while not Path(self.release).exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
        return super().read(key)


def _resources() -> dict[str, object]:
    lake = LakeThatHangs(
        root=str(data_dir() / "lake"),
        hang_month=os.environ.get("DELITOS_TEST_HANG_MONTH", ""),
        ready=os.environ.get("DELITOS_TEST_READY", ""),
        release=os.environ.get("DELITOS_TEST_RELEASE", ""),
    )
    return {**build_resources(), "lake": lake}


defs = dg.Definitions(assets=[socrata_delitos, lake_delitos, bronze_delitos, dbt_models], resources=_resources())
