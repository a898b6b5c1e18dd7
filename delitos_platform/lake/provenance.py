"""Which source and dataset a lake was built from: our emulator on loopback or a Socrata domain, and its id.

``delitos demo`` (and ``delitos dev``, ``delitos backfill``) record both in the lake as ``source.json``; the lake
asset records the dataset id on its first publish into any lake (S3 too) that does not say it yet, an older
``source.json`` included. A sensor tick or a run whose configured source or dataset is another one is refused
before any request: comparing the real national dataset with the demo's Santander rows would request a run for
every month of the country, and another dataset's rows would replace every layer's.

A lake holds several datasets of the family, one per prefix (4v6r-wu98's at the root, another's under its slug):
each prefix records the dataset it holds, and the source is the lake's, recorded at its root.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from delitos_platform.lake.dataset import DELITOS, LakeDataset
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


def record_source(lake: LakeResource, url: str, dataset: str) -> None:
    """Write which source and dataset the lake is (about to be) built from."""
    _write(lake, {"source": source_name(url), "dataset": dataset})


def claim_dataset(lake: LakeResource, dataset: str, where: LakeDataset = DELITOS) -> None:
    """Record ``dataset`` under ``where``'s prefix when it does not say which dataset it holds yet (a recorded
    source kept)."""
    record = _recorded(lake, where)
    if "dataset" not in record:
        _write(lake, {**record, "dataset": dataset}, where)


def _write(lake: LakeResource, record: dict[str, str], where: LakeDataset = DELITOS) -> None:
    lake.write(where.prefix + SOURCE_KEY, json.dumps(record, sort_keys=True).encode())


def _recorded(lake: LakeResource, where: LakeDataset = DELITOS) -> dict[str, str]:
    key = where.prefix + SOURCE_KEY
    if not lake.exists(key):
        return {}
    try:
        record = json.loads(lake.read(key))
    except ValueError:
        return {}  # an unreadable marker protects nothing, and must not stop the platform
    return {key: str(value) for key, value in record.items()} if isinstance(record, dict) else {}


def recorded_source(lake: LakeResource) -> str | None:
    """The source a local lake recorded, if it recorded one (S3 lakes are production's: always the real API)."""
    return _recorded(lake).get("source") if isinstance(lake, LocalLake) else None


def recorded_dataset(lake: LakeResource, where: LakeDataset = DELITOS) -> str | None:
    """The dataset id recorded under ``where``'s prefix (``None`` in a new lake, or one recorded before lakes
    said it)."""
    return _recorded(lake, where).get("dataset")


def source_refusal(lake: LakeResource, url: str, dataset: str, where: LakeDataset = DELITOS) -> str | None:
    """One sentence when ``url`` is not the source the lake was built from, or ``dataset`` not the one
    ``where``'s prefix holds, else ``None``."""
    held = recorded_dataset(lake, where)
    if held is not None and held != dataset:
        return _another_dataset(lake, held, dataset, where)
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


def _another_dataset(lake: LakeResource, held: str, dataset: str, where: LakeDataset) -> str:
    """The refusal of ``dataset`` where ``where``'s prefix holds ``held``, naming what chose ``dataset``."""
    own_lake = "a lake of its own (DELITOS_DATA_DIR, or DELITOS_LAKE_PREFIX on S3)"
    refused = f"the lake {lake.uri(where.prefix)} holds Socrata dataset {held}, not {dataset}"
    if not where.prefix:  # the root is 4v6r-wu98's, whose id is a setting
        return f"{refused} (SOCRATA_DATASET): give another dataset {own_lake}"
    # A family dataset's id is its entry's, and its prefix its slug: the slug held another entry's dataset.
    return f"{refused} (the entry of slug {where.slug}): give that entry another slug, or the dataset {own_lake}"
