"""A full disk or a read-only lake folder: one sentence naming the path (and the free space), nothing written.

The disk really fills: a 16 MiB tmpfs mounted in a mount namespace of the probe's own (``unshare``, as root or
as an unprivileged user where user namespaces are allowed), gone with the probe; no mount outlives the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = "delitos_platform_tests.lake.disk_full_probe"
MOUNT_THEN_RUN = (
    'mount -t tmpfs -o size=16m tmpfs "$1" && mount -t tmpfs -o ro,size=1m tmpfs "$2" && shift 2 && exec "$@"'
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """What the probe saw on the full disk and the read-only folder (one process for every case)."""
    root = tmp_path_factory.mktemp("disks")
    full, read_only, roomy = (root / name for name in ("full", "read_only", "roomy"))
    for folder in (full, read_only, roomy):
        folder.mkdir()
    # Root needs a mount namespace only; anyone else maps themselves to root in a user namespace first.
    as_user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    command = ["unshare", *as_user, "--mount", "sh", "-c", MOUNT_THEN_RUN, "sh"]
    command += [str(full), str(read_only), sys.executable, "-W", "ignore", "-m", PROBE, str(full), str(read_only)]
    command += [str(roomy)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    probe = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(probe.stdout.strip().splitlines()[-1])


def test_a_full_disk_under_the_lake_is_one_sentence_and_publishes_nothing(outcome):
    message = outcome["lake"]["message"]

    assert message.startswith("the disk is full: cannot write /")
    assert "/lake/_staging/" in message and message.endswith(" free there)")
    assert outcome["lake"]["unchanged"]  # staged objects discarded, the published month untouched


def test_a_full_disk_under_the_warehouse_is_one_sentence_and_leaves_bronze_as_it_was(outcome):
    message = outcome["bronze"]["message"]

    assert message.startswith("the disk is full: cannot write /") and "/warehouse.duckdb (" in message
    assert message.endswith("free there): bronze was left as it was")
    assert outcome["bronze"]["unchanged"]


def test_a_read_only_lake_folder_is_one_sentence_before_anything_is_fetched(outcome):
    message = outcome["read_only"]["message"]

    assert message.startswith("the lake folder is not writable: cannot write /")
    assert message.endswith("/lake: Read-only file system")
    assert outcome["read_only"]["files"] == []
