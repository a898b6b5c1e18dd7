"""Where the embedded platform keeps its data: the lake folder and the DuckDB warehouse file.

Read from ``DELITOS_DATA_DIR`` and ``DELITOS_WAREHOUSE_PATH`` (see ``environment.py`` for the other settings).
A module of its own, without Dagster: ``delitos demo`` finds the warehouse it must take before it loads the
platform.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``DELITOS_DATA_DIR`` (default ``data``): the embedded lake and warehouse live under it.

    A relative path is taken from the repository root, as the dbt profile takes it, so that Dagster and
    dbt open the same warehouse whatever folder they run in.
    """
    return (REPO_ROOT / (environ.get("DELITOS_DATA_DIR") or "data")).resolve()


def warehouse_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The embedded warehouse file: ``DELITOS_WAREHOUSE_PATH``, else ``$DELITOS_DATA_DIR/warehouse.duckdb``."""
    named = environ.get("DELITOS_WAREHOUSE_PATH")
    return (REPO_ROOT / named).resolve() if named else data_dir(environ) / "warehouse.duckdb"
