"""Which source a local lake was built from: our emulator on loopback, or a Socrata domain.

``delitos demo`` (and ``delitos dev``, ``delitos backfill``) record it in the lake as ``source.json``. A sensor
tick or a run whose configured source is another one is refused before any request: comparing the real national
dataset with the demo's Santander rows would request a run for every month of the country.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from delitos_platform.lake.storage import LakeResource, LocalLake
from delitos_platform.socrata.resource import is_loopback

SOURCE_KEY = "source.json"
EMULATOR = "emulator"  # any loopback URL: the emulator's port changes from one start to the next


def source_name(url: str) -> str:
    """How a source is recorded: ``emulator`` for loopback, else the URL without credentials or a final slash."""
    if is_loopback(url):
        return EMULATOR
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl().rstrip("/")


def record_source(lake: LocalLake, url: str) -> None:
    """Write which source the lake is (about to be) built from."""
    lake.write(SOURCE_KEY, json.dumps({"source": source_name(url)}).encode())


def recorded_source(lake: LakeResource) -> str | None:
    """The source a local lake recorded, if it recorded one (S3 lakes are production's: always the real API)."""
    if not isinstance(lake, LocalLake) or not lake.exists(SOURCE_KEY):
        return None
    try:
        return str(json.loads(lake.read(SOURCE_KEY))["source"])
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable marker protects nothing, and must not stop the platform


def source_refusal(lake: LakeResource, url: str) -> str | None:
    """One sentence when ``url`` is not the source the lake was built from, else ``None``."""
    recorded = recorded_source(lake)
    if recorded is None or recorded == source_name(url):
        return None
    built = "our SODA emulator (delitos demo)" if recorded == EMULATOR else recorded
    wanted = "our emulator" if is_loopback(url) else source_name(url)
    command = "delitos dev" if recorded == EMULATOR else f"delitos dev --source {recorded}"
    return (
        f"the lake {lake.uri('')} was built from {built}, not from {wanted}: open it with `{command}`, "
        "or give the other source a data folder of its own (DELITOS_DATA_DIR)"
    )
