"""Bad input gets one clear sentence and writes nothing; a killed write leaves no partial object."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from delitos_platform.lake.storage import LocalLake
from delitos_platform.socrata import SocrataError, SocrataResource
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake

MONTH = "2019-03-01"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_an_unreachable_api_is_one_sentence(local_lake):
    url = f"http://127.0.0.1:{_closed_port()}"
    result = materialize_lake(SocrataResource(url=url, max_retries=1, backoff_seconds=0.01), local_lake, MONTH)

    assert failure_message(result).startswith(
        f"Socrata at {url} refused the connection twice while reading the dataset's metadata"
    )
    assert _files_under(Path(local_lake.root)) == []


def test_an_unknown_dataset_is_one_sentence(emulator, local_lake):
    result = materialize_lake(socrata_for(emulator, dataset_id="zzzz-9999"), local_lake, MONTH)

    assert failure_message(result).startswith(f"dataset 'zzzz-9999' does not exist at {emulator.url}")
    assert _files_under(Path(local_lake.root)) == []


def test_a_bad_socrata_url_is_one_sentence(local_lake):
    result = materialize_lake(SocrataResource(url="datos.gov.co"), local_lake, MONTH)

    assert failure_message(result) == "SOCRATA_URL must look like https://www.datos.gov.co, not 'datos.gov.co'"


def test_endless_throttling_gives_up_with_one_sentence(fresh_emulator, local_lake):
    fresh_emulator.faults.inject("429", count=100, retry_after=0)
    result = materialize_lake(socrata_for(fresh_emulator, max_retries=2), local_lake, MONTH)

    assert failure_message(result).startswith(
        f"Socrata at {fresh_emulator.url} throttled requests (HTTP 429) 3 times while counting the rows of 2019-03"
    )
    assert _files_under(Path(local_lake.root)) == []


def test_a_dropped_column_is_refused_before_any_row_is_fetched(fresh_emulator, local_lake):
    fresh_emulator.dataset.drop_column("cantidad")
    result = materialize_lake(socrata_for(fresh_emulator), local_lake, MONTH)

    assert failure_message(result) == (
        "the source no longer matches the contract: source: missing column 'cantidad' (number)"
    )
    assert _files_under(Path(local_lake.root)) == []


def test_a_soql_error_quotes_socrata(emulator, local_lake):
    socrata = socrata_for(emulator)
    with pytest.raises(SocrataError, match=r"^Socrata rejected the SODA3 query: .*no_such_column"):
        socrata.query(select="no_such_column")


@pytest.mark.parametrize("key", ["2019-13-01", "2019-03-15", "last-month", "2001-01-01"])
def test_a_bad_partition_key_is_refused_before_anything_runs(emulator, local_lake, key):
    with pytest.raises(dg.DagsterError, match=key):
        materialize_lake(socrata_for(emulator), local_lake, key)
    assert _files_under(Path(local_lake.root)) == []


def test_a_killed_write_leaves_the_previous_object_whole(tmp_path):
    lake = LocalLake(root=str(tmp_path / "lake"))
    lake.write("delitos/mes=2019-03/delitos-2019-03.parquet", b"previous object")
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from delitos_platform.lake.storage import LocalLake; "
            "LocalLake(root=sys.argv[1]).write('delitos/mes=2019-03/delitos-2019-03.parquet', b'x' * 600_000_000)",
            lake.root,
        ]
    )
    folder = Path(lake.root) / "delitos" / "mes=2019-03"
    deadline = time.monotonic() + 30
    while not any(path.suffix == ".tmp" and path.stat().st_size > 0 for path in folder.iterdir()):
        assert time.monotonic() < deadline and writer.poll() is None, "the writer never started writing"
        time.sleep(0.005)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    assert lake.read("delitos/mes=2019-03/delitos-2019-03.parquet") == b"previous object"


def test_credentials_written_into_the_socrata_url_never_reach_a_message(local_lake):
    url = f"http://reader:s3cret-in-url@127.0.0.1:{_closed_port()}"
    result = materialize_lake(SocrataResource(url=url, max_retries=0), local_lake, MONTH)

    message = failure_message(result)
    assert message.startswith("Socrata at http://127.0.0.1:")
    assert "s3cret-in-url" not in message
