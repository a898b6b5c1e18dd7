"""The emulator serves every configured dataset, one snapshot each, through real sodapy over loopback HTTP.

4v6r-wu98 keeps its shipped real rows; a dataset without real rows of its own is served synthetic rows in its
entry's schema, which ``delitos synthesize --dataset`` writes too, the same for the same seed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
import requests

from delitos_platform.datasets import DatasetEntry, configured
from delitos_platform.emulator import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.emulator.snapshot import read_snapshot
from delitos_platform.emulator.synthetic import family_snapshots, synthesize, synthesize_dataset
from delitos_platform.partitions import Window
from delitos_platform_tests.conftest import socrata_for

COMMAND = [sys.executable, "-m", "delitos_platform.commands"]
FAMILY_ROWS = 600
SYNTHETIC = sorted(dataset_id for dataset_id, entry in configured().items() if entry.snapshot is None)
# A window of a few years: a few dozen rows of each small synthetic dataset, a few hundred of 4v6r-wu98's.
WINDOW = Window(date(2016, 1, 1), date(2018, 1, 1))
# `delitos synthesize --rows 500 --seed 3 --start 2019-01 --end 2019-12 --output x.json` on main before entries
# existed: the command without --dataset must keep writing these very bytes.
SYNTHESIZED_BEFORE_ENTRIES = "887d54c3f83139ec85d1e80cd5e58e500bee4dd23a1b3c2ef16199165a4f843b"


@pytest.fixture(scope="module")
def family() -> Iterator[EmulatorServer]:
    """One emulator serving the whole family (small synthetic datasets), shared by tests that only read."""
    with EmulatorServer(datasets=family_snapshots(rows=FAMILY_ROWS), port=0) as server:
        yield server


def test_the_family_is_served_4v6r_wu98_first_with_its_real_rows(family: EmulatorServer) -> None:
    assert list(family.datasets) == ["4v6r-wu98", *SYNTHETIC] and set(family.datasets) == set(configured())
    assert family.dataset_id == "4v6r-wu98" and len(family.dataset) == len(read_snapshot(DEFAULT_SNAPSHOT))
    assert all(len(family.datasets[dataset_id]) == FAMILY_ROWS for dataset_id in SYNTHETIC)


@pytest.mark.parametrize("dataset_id", sorted(configured()))
def test_every_datasets_metadata_has_its_entrys_columns(family: EmulatorServer, dataset_id: str) -> None:
    entry = configured()[dataset_id]
    metadata = socrata_for(family, dataset_id=dataset_id).metadata()
    columns = {column["fieldName"]: column["dataTypeName"] for column in metadata["columns"]}
    assert list(columns.items()) == list(entry.source_columns.items())
    assert all(column["renderTypeName"] == column["dataTypeName"] for column in metadata["columns"])
    assert (metadata["id"], metadata["name"], metadata["attribution"]) == (dataset_id, entry.title, entry.attribution)
    # Shaped as 4v6r-wu98's, which the fidelity tests hold to a recorded portal answer: the same fields, typed alike.
    held = family.metadata("4v6r-wu98")
    assert {key: type(value) for key, value in metadata.items()} == {key: type(value) for key, value in held.items()}
    assert all(set(column) == set(held["columns"][0]) for column in metadata["columns"])


def _source_ids(server: EmulatorServer, dataset_id: str, window: Window) -> set[str]:
    """The ids of the rows of ``window`` as the emulator holds them (read beside HTTP, not through it)."""
    rows = server.datasets[dataset_id].dump()
    return {row_id for row_id, row in rows.items() if window.start <= row["fecha_hecho"].date() < window.end}


@pytest.mark.parametrize("api", ["soda3", "soda2"])
@pytest.mark.parametrize("dataset_id", sorted(configured()))
def test_every_datasets_rows_page_out_whole_and_exactly_by_id(
    family: EmulatorServer, dataset_id: str, api: str
) -> None:
    entry = configured()[dataset_id]
    expected = _source_ids(family, dataset_id, WINDOW)
    assert len(expected) > 9
    # Four pages or so: keyset paging crosses pages, in every dataset alike.
    socrata = socrata_for(family, dataset_id=dataset_id, page_size=len(expected) // 4 + 1, api=api)
    select = [":id", *entry.source_columns]
    pages = list(socrata.pages(select, WINDOW.soql(entry.date_column)))
    assert len(pages) >= 4
    table = pa.concat_tables(pages)
    ids = table["row_id"].to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert table.column_names == ["row_id", *entry.source_columns]
    assert all(value is not None for column in table.columns for value in column.to_pylist())
    assert socrata.api_in_use == api


def test_admin_changes_and_faults_strike_the_dataset_the_body_names(snapshot_rows: list[dict[str, str]]) -> None:
    datasets = {
        "4v6r-wu98": snapshot_rows[:300],
        **{k: v for k, v in family_snapshots(rows=200).items() if k in SYNTHETIC},
    }
    with EmulatorServer(datasets=datasets, port=0, admin=True) as server:
        before = {dataset_id: dataset.rows_updated_at for dataset_id, dataset in server.datasets.items()}
        month = next(iter(server.datasets["m8fd-ahd9"].dump().values()))["fecha_hecho"].strftime("%Y-%m")
        answer = requests.post(
            f"{server.url}/admin/revise", json={"dataset": "m8fd-ahd9", "month": month, "rows": 1}, timeout=10
        ).json()
        assert len(answer["ids"]) == 1 and answer["rowsUpdatedAt"] == server.datasets["m8fd-ahd9"].rows_updated_at
        moved = {
            dataset_id
            for dataset_id, dataset in server.datasets.items()
            if dataset.rows_updated_at != before[dataset_id]
        }
        assert moved == {"m8fd-ahd9"}

        requests.post(
            f"{server.url}/admin/faults", json={"dataset": "q2ib-t9am", "kind": "500", "count": 1}, timeout=10
        )
        assert requests.get(f"{server.url}/resource/m8fd-ahd9.json", timeout=10).status_code == 200
        assert requests.get(f"{server.url}/resource/q2ib-t9am.json", timeout=10).status_code == 500
        assert requests.get(f"{server.url}/resource/q2ib-t9am.json", timeout=10).status_code == 200

        requests.post(f"{server.url}/admin/touch", timeout=10)  # no dataset named: the first served
        assert server.dataset.rows_updated_at != before["4v6r-wu98"]
        refused = requests.post(f"{server.url}/admin/touch", json={"dataset": "zzzz-9999"}, timeout=10)
        assert refused.status_code == 400 and "no dataset 'zzzz-9999' is served" in refused.json()["message"]


def test_the_emulator_command_serves_the_family_beside_its_snapshot() -> None:
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", "--family", "--family-rows", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        served = ", ".join(f"300 rows of {dataset_id}" for dataset_id in SYNTHETIC)
        match = re.search(rf"Serving 20,327 rows of 4v6r-wu98, {served} at (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        for dataset_id in configured():
            rows = requests.get(f"{match.group(1)}/resource/{dataset_id}.json", timeout=10).json()
            assert rows and list(rows[0]) == list(configured()[dataset_id].source_columns)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def _synthesized(entry: DatasetEntry, path: Path, seed: int) -> bytes:
    synthesize_dataset(entry, path, rows=1500, seed=seed)
    return path.read_bytes()


def _real_places() -> set[tuple[str, ...]]:
    """The municipalities a synthetic row may name: 4v6r-wu98's real ones and the country's largest cities."""
    from delitos_platform.emulator.synthetic import MUNICIPALITIES

    real = read_snapshot(DEFAULT_SNAPSHOT)
    places = {(r["cod_depto"], r["departamento"], r["cod_muni"], r["municipio"]) for r in real}
    return places | {m[:4] for m in MUNICIPALITIES}


@pytest.mark.parametrize("dataset_id", SYNTHETIC)
def test_synthesize_dataset_is_deterministic_and_true_to_its_schema(tmp_path: Path, dataset_id: str) -> None:
    entry = configured()[dataset_id]
    first = _synthesized(entry, tmp_path / "a.json.gz", seed=5)
    assert _synthesized(entry, tmp_path / "b.json.gz", seed=5) == first
    assert _synthesized(entry, tmp_path / "c.json.gz", seed=6) != first
    rows = json.loads(gzip.decompress(first))
    assert len(rows) == 1500
    assert all(list(row) == list(entry.source_columns) for row in rows)
    assert all(isinstance(value, str) for row in rows for value in row.values())
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00\.000", row["fecha_hecho"]) for row in rows)
    assert entry.first_month <= min(row["fecha_hecho"][:7] for row in rows)
    assert [row["fecha_hecho"] for row in rows] == sorted(row["fecha_hecho"] for row in rows)
    places = {(r["cod_depto"], r["departamento"], r["cod_muni"], r["municipio"]) for r in rows}
    assert places <= _real_places() and len({place[0] for place in places}) >= 10
    assert {row["cantidad"] for row in rows} <= {"1", "2", "3", "4"} and sum(r["cantidad"] == "1" for r in rows) > 1200
    for column in entry.columns:
        if column.examples:
            assert {row[column.name] for row in rows} == set(column.examples)


def test_synthesize_without_a_dataset_writes_the_same_bytes_as_before_entries(tmp_path: Path) -> None:
    output = tmp_path / "x.json"
    synthesize(DEFAULT_SNAPSHOT, output, rows=500, seed=3, start="2019-01", end="2019-12")
    assert hashlib.sha256(output.read_bytes()).hexdigest() == SYNTHESIZED_BEFORE_ENTRIES
    # 4v6r-wu98 named is resampled from its real rows, as without a name.
    plain, named = tmp_path / "plain.json", tmp_path / "named.json"
    synthesize(DEFAULT_SNAPSHOT, plain, rows=300, seed=9)
    synthesize_dataset(configured()["4v6r-wu98"], named, rows=300, seed=9)
    assert named.read_bytes() == plain.read_bytes()


def _delitos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_synthesize_command_writes_a_configured_datasets_schema(tmp_path: Path) -> None:
    output = tmp_path / "homicidios.json.gz"
    result = _delitos("synthesize", "--dataset", "m8fd-ahd9", "--rows", "400", "--seed", "2", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Wrote 400 rows to {output}")
    same = tmp_path / "same.json.gz"
    synthesize_dataset(configured()["m8fd-ahd9"], same, rows=400, seed=2)
    assert output.read_bytes() == same.read_bytes()  # the command is the library's synthesis, nothing more
    rows = json.loads(gzip.decompress(output.read_bytes()))
    assert len(rows) == 400 and list(rows[0]) == list(configured()["m8fd-ahd9"].source_columns)
    unknown = _delitos("synthesize", "--dataset", "zzzz-9999", "--output", str(output))
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "zzzz-9999" in unknown.stderr
