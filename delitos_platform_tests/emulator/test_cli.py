"""The ``delitos emulator`` and ``delitos synthesize`` commands, run as real subprocesses."""

from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import requests

from delitos_platform.contract import SOURCE_COLUMNS

COMMAND = [sys.executable, "-m", "delitos_platform.commands"]


def test_emulator_prints_its_url_serves_and_exits_0_on_sigterm() -> None:
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", "--fault", "429:count=1,retry_after=2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"Serving 20,327 rows of 4v6r-wu98 at (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        first = requests.get(f"{match.group(1)}/resource/4v6r-wu98.json", timeout=10)
        assert first.status_code == 429 and first.headers["Retry-After"] == "2"
        assert requests.get(f"{match.group(1)}/resource/4v6r-wu98.json", timeout=10).status_code == 200
        assert requests.post(f"{match.group(1)}/admin/touch", timeout=10).status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_emulator_bad_snapshot_exits_2_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "rows.json"
    broken.write_text('[{"cantidad": "many"}]')
    result = subprocess.run(
        [*COMMAND, "emulator", "--port", "0", "--snapshot", str(broken)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "row 0" in result.stderr and "cantidad" in result.stderr


def test_synthesize_is_deterministic_and_shaped_like_the_source(tmp_path: Path) -> None:
    outputs = [tmp_path / "a.json.gz", tmp_path / "b.json.gz"]
    for output in outputs:
        subprocess.run(
            [*COMMAND, "synthesize", "--rows", "3000", "--seed", "11", "--output", str(output)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    with gzip.open(outputs[0], "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    assert len(rows) >= 3000
    assert all(list(row) == list(SOURCE_COLUMNS) for row in rows)
    assert all(
        len(r["cod_depto"]) == 2 and len(r["cod_muni"]) == 5 and r["cod_muni"].startswith(r["cod_depto"]) for r in rows
    )
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00\.000", r["fecha_hecho"]) for r in rows)
    assert min(r["fecha_hecho"] for r in rows) >= "2006-05" and max(r["fecha_hecho"] for r in rows) < "2026-06"
    assert len({r["cod_depto"] for r in rows}) >= 10
    assert len({r["descripcion_conducta"] for r in rows}) == 9
    years = Counter(r["fecha_hecho"][:4] for r in rows)
    assert years["2008"] < years["2023"]  # early years are sparse
    other = tmp_path / "c.json.gz"
    subprocess.run(
        [*COMMAND, "synthesize", "--rows", "3000", "--seed", "12", "--output", str(other)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert other.read_bytes() != outputs[0].read_bytes()
