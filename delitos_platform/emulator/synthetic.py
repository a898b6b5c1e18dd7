"""Synthetic snapshots: national-scale 4v6r-wu98 resampled from its real rows, and any configured dataset.

4v6r-wu98 (:func:`synthesize`): each synthetic row takes its article text and ``cantidad`` from a real row of a
comparable period (so the article mix drifts over time as it really does), a month drawn from a growth curve
(early years sparse), a day within that month, and a municipality from a set of real DANE codes across
departments. A dataset without real rows of its own (:func:`synthetic_rows`) takes the same municipalities, a
month and day drawn evenly from its first month on, a ``cantidad`` of mostly one case, and for each other text
column one of its entry's values or examples (the first most often). Everything derives from one seed: the
same seed writes a byte-identical file.
"""

from __future__ import annotations

import calendar
import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from delitos_platform.contract import DATASET_ID
from delitos_platform.datasets import DatasetEntry, configured
from delitos_platform.emulator.snapshot import DEFAULT_SNAPSHOT, SHIPPED_SNAPSHOTS, Snapshot, read_snapshot

# (cod_depto, departamento, cod_muni, municipio, weight ~ population in thousands).  Santander's own
# municipalities come from the real snapshot and are added with weights from their real counts.
MUNICIPALITIES: tuple[tuple[str, str, str, str, int], ...] = (
    ("11", "BOGOTA D.C.", "11001", "BOGOTA D.C.", 7900),
    ("05", "ANTIOQUIA", "05001", "MEDELLIN", 2600),
    ("05", "ANTIOQUIA", "05088", "BELLO", 550),
    ("05", "ANTIOQUIA", "05360", "ITAGUI", 290),
    ("05", "ANTIOQUIA", "05266", "ENVIGADO", 240),
    ("05", "ANTIOQUIA", "05615", "RIONEGRO", 135),
    ("76", "VALLE DEL CAUCA", "76001", "CALI", 2250),
    ("76", "VALLE DEL CAUCA", "76520", "PALMIRA", 350),
    ("76", "VALLE DEL CAUCA", "76109", "BUENAVENTURA", 310),
    ("76", "VALLE DEL CAUCA", "76834", "TULUA", 220),
    ("08", "ATLANTICO", "08001", "BARRANQUILLA", 1300),
    ("08", "ATLANTICO", "08758", "SOLEDAD", 680),
    ("13", "BOLIVAR", "13001", "CARTAGENA", 1030),
    ("54", "NORTE DE SANTANDER", "54001", "CUCUTA", 780),
    ("66", "RISARALDA", "66001", "PEREIRA", 480),
    ("66", "RISARALDA", "66170", "DOSQUEBRADAS", 230),
    ("17", "CALDAS", "17001", "MANIZALES", 450),
    ("63", "QUINDIO", "63001", "ARMENIA", 300),
    ("73", "TOLIMA", "73001", "IBAGUE", 540),
    ("41", "HUILA", "41001", "NEIVA", 360),
    ("52", "NARIÑO", "52001", "PASTO", 390),
    ("50", "META", "50001", "VILLAVICENCIO", 530),
    ("15", "BOYACA", "15001", "TUNJA", 180),
    ("15", "BOYACA", "15759", "SOGAMOSO", 120),
    ("25", "CUNDINAMARCA", "25754", "SOACHA", 660),
    ("25", "CUNDINAMARCA", "25175", "CHIA", 150),
    ("25", "CUNDINAMARCA", "25899", "ZIPAQUIRA", 130),
    ("25", "CUNDINAMARCA", "25290", "FUSAGASUGA", 140),
    ("23", "CORDOBA", "23001", "MONTERIA", 500),
    ("47", "MAGDALENA", "47001", "SANTA MARTA", 530),
    ("20", "CESAR", "20001", "VALLEDUPAR", 530),
    ("19", "CAUCA", "19001", "POPAYAN", 320),
    ("70", "SUCRE", "70001", "SINCELEJO", 290),
    ("44", "LA GUAJIRA", "44001", "RIOHACHA", 200),
    ("27", "CHOCO", "27001", "QUIBDO", 130),
    ("18", "CAQUETA", "18001", "FLORENCIA", 180),
    ("85", "CASANARE", "85001", "YOPAL", 160),
    ("81", "ARAUCA", "81001", "ARAUCA", 95),
    ("86", "PUTUMAYO", "86001", "MOCOA", 60),
    ("88", "ARCHIPIELAGO DE SAN ANDRES", "88001", "SAN ANDRES", 65),
)
SANTANDER_WEIGHT = 2300  # thousands of inhabitants, shared among the real Santander municipalities
PLACE_COLUMNS = ("cod_depto", "departamento", "cod_muni", "municipio")
# The cantidad of a synthetic row of a dataset without real rows, and its share: almost every report is one case.
CASES = {"1": 0.92, "2": 0.05, "3": 0.02, "4": 0.01}
DEFAULT_END = "2026-05"
# Rows of each dataset the emulator serves without real rows of its own: small, so that it starts in a second.
EMULATOR_ROWS = 2_000


def _months(start: str, end: str) -> list[date]:
    first, last = date.fromisoformat(start + "-01"), date.fromisoformat(end + "-01")
    if last < first:
        raise ValueError(f"--end {end} is before --start {start}")
    months, current = [], first
    while current <= last:
        months.append(current)
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return months


def _growth(count: int) -> np.ndarray:
    """Monthly weights: a logistic curve (cybercrime reports grow steeply after ~2019), never zero."""
    t = np.arange(count, dtype=float)
    return 0.02 + 1.0 / (1.0 + np.exp(-(t - 0.7 * count) / (0.075 * count)))


def _places(real: list[dict]) -> tuple[list[tuple[str, str, str, str]], np.ndarray]:
    """Real (cod_depto, departamento, cod_muni, municipio) combinations, and their weights (summing to 1)."""
    counts: dict[tuple[str, str, str, str], int] = {}
    for row in real:
        if all(row.get(k) for k in PLACE_COLUMNS):
            key = (row["cod_depto"], row["departamento"], row["cod_muni"], row["municipio"])
            if len(key[0]) == 2 and len(key[2]) == 5 and key[2].startswith(key[0]):
                counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values()) or 1
    entries = [(*m[:4], float(m[4])) for m in MUNICIPALITIES]
    entries += [(*key, SANTANDER_WEIGHT * n / total) for key, n in sorted(counts.items())]
    weights = np.array([entry[4] for entry in entries])
    return [entry[:4] for entry in entries], weights / weights.sum()


def _municipalities(real: list[dict]) -> tuple[list[str], np.ndarray]:
    """JSON fragments ``"cod_depto":…,"municipio":…`` for every municipality, and their weights."""
    places, weights = _places(real)
    fragments = [
        ",".join(
            f"{json.dumps(k)}:{json.dumps(v, ensure_ascii=False)}" for k, v in zip(PLACE_COLUMNS, place, strict=True)
        )
        for place in places
    ]
    return fragments, weights


def _write(output: str | Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``output``, gzip-compressed when its name ends in ``.gz``."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as raw:
        if output.name.endswith(".gz"):
            # mtime=0 and no file name in the header: the same seed gives byte-identical files.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as handle:
                for chunk in chunks:
                    handle.write(chunk)
        else:
            for chunk in chunks:
                raw.write(chunk)


def synthesize(
    source: str | Path,
    output: str | Path,
    *,
    rows: int = 492_000,
    seed: int = 7,
    start: str = "2006-05",
    end: str = DEFAULT_END,
) -> int:
    """Write ``rows`` synthetic rows of 4v6r-wu98 to ``output`` (.json.gz or .json); returns the number written."""
    if rows < 1:
        raise ValueError("--rows must be at least 1")
    real = [r for r in read_snapshot(source) if r.get("fecha_hecho") and r.get("descripcion_conducta")]
    real.sort(key=lambda r: r["fecha_hecho"])
    months = _months(start, end)
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(_growth(len(months)))
    cdf /= cdf[-1]
    quantile = rng.random(rows)
    month_index = np.minimum(np.searchsorted(cdf, quantile), len(months) - 1)
    # A real row from the same point of the real timeline keeps the period's article mix.
    jitter = rng.normal(0.0, 0.02, rows)
    real_index = np.clip(((quantile + jitter) * len(real)).astype(np.int64), 0, len(real) - 1)
    fragments, weights = _municipalities(real)
    muni_index = rng.choice(len(fragments), size=rows, p=weights)
    lengths = np.array([calendar.monthrange(m.year, m.month)[1] for m in months])
    day = 1 + (rng.random(rows) * lengths[month_index]).astype(np.int64)
    order = np.lexsort((muni_index, day, month_index))  # published in date order, like the real file
    tails = [
        f',"descripcion_conducta":{json.dumps(r["descripcion_conducta"], ensure_ascii=False)}'
        + (f',"cantidad":{json.dumps(r["cantidad"])}' if r.get("cantidad") is not None else "")
        for r in real
    ]
    prefixes = [f'{{"fecha_hecho":"{m.year:04d}-{m.month:02d}-' for m in months]
    body = ",\n".join(
        f'{prefixes[m]}{d:02d}T00:00:00.000",{fragments[u]}{tails[r]}}}'
        for m, d, u, r in zip(
            month_index[order].tolist(),
            day[order].tolist(),
            muni_index[order].tolist(),
            real_index[order].tolist(),
            strict=True,
        )
    )
    _write(output, [("[" + body + "]\n").encode()])
    return rows


def dataset_rng(seed: int, dataset_id: str) -> np.random.Generator:
    """The random generator of one dataset's synthetic rows: datasets of one seed differ from one another."""
    return np.random.default_rng([seed, zlib.crc32(dataset_id.encode())])


def _text_choices(entry: DatasetEntry) -> dict[str, list[str]]:
    """What each text column outside the date and place is drawn from: its examples, else its values."""
    drawn: dict[str, list[str]] = {}
    for column in entry.columns:
        if column.type != "text" or column.name in PLACE_COLUMNS:
            continue
        choices = list(column.examples or column.values or ())
        if not choices:
            raise ValueError(f"dataset {entry.id}: column {column.name!r} has no values or examples to draw from")
        drawn[column.name] = choices
    return drawn


def _rank_weights(count: int) -> np.ndarray:
    """Shares of ``count`` values listed most frequent first: the k-th value 1/k as often as the first."""
    weights = 1.0 / np.arange(1, count + 1)
    return weights / weights.sum()


@dataclass(frozen=True)
class _Drawn:
    """Synthetic rows column by column: each column's distinct values, and which one each row takes, in order."""

    names: list[str]
    choices: list[list[str]]
    picks: list[np.ndarray]

    def rendered(self, tables: list[list[str]], chunk_rows: int = 50_000) -> Iterator[tuple[str, ...]]:
        """Each row as a tuple of its columns' entries in ``tables`` (a table per column, as ``choices``)."""
        arrays = [np.array(table, dtype=object) for table in tables]
        for first in range(0, len(self.picks[0]), chunk_rows):
            columns = [
                array[pick[first : first + chunk_rows]].tolist() for array, pick in zip(arrays, self.picks, strict=True)
            ]
            yield from zip(*columns, strict=True)


def _draw(entry: DatasetEntry, *, rows: int, seed: int, start: str | None, end: str, places_from: str | Path) -> _Drawn:
    """Draw ``rows`` rows of ``entry``'s dataset (see :func:`synthetic_rows`), published in date order."""
    if rows < 1:
        raise ValueError("--rows must be at least 1")
    months = _months(start or entry.first_month, end)
    texts = _text_choices(entry)
    places, weights = _places(read_snapshot(places_from))
    rng = dataset_rng(seed, entry.id)
    month_index = rng.integers(len(months), size=rows)
    lengths = np.array([calendar.monthrange(m.year, m.month)[1] for m in months])
    day = 1 + (rng.random(rows) * lengths[month_index]).astype(np.int64)
    place_index = rng.choice(len(places), size=rows, p=weights)
    cases = rng.choice(len(CASES), size=rows, p=list(CASES.values()))
    picks = {name: rng.choice(len(values), size=rows, p=_rank_weights(len(values))) for name, values in texts.items()}
    days, day_index = np.unique(month_index * 32 + day, return_inverse=True)
    choices = {
        entry.date_column: [f"{months[key // 32]:%Y-%m}-{key % 32:02d}T00:00:00.000" for key in days.tolist()],
        **{name: [place[k] for place in places] for k, name in enumerate(PLACE_COLUMNS)},
        **texts,
    }
    indexes = {entry.date_column: day_index, **dict.fromkeys(PLACE_COLUMNS, place_index), **picks}
    order = np.lexsort((place_index, day, month_index))  # published in date order, like the real file
    names = [column.name for column in entry.columns]
    numbers = {column.name for column in entry.columns if column.type == "number"}
    return _Drawn(
        names,
        [list(CASES) if name in numbers else choices[name] for name in names],
        [(cases if name in numbers else indexes[name])[order] for name in names],
    )


def synthetic_rows(
    entry: DatasetEntry,
    *,
    rows: int,
    seed: int = 7,
    start: str | None = None,
    end: str = DEFAULT_END,
    places_from: str | Path = DEFAULT_SNAPSHOT,
) -> Iterator[dict[str, str]]:
    """``rows`` rows in ``entry``'s schema (every value a string, as the API sends them), in date order.

    Months run from ``start`` (by default the entry's first month) to ``end``; the municipalities are real DANE
    combinations, resampled from ``places_from`` (4v6r-wu98's real rows) and the country's largest cities.
    """
    drawn = _draw(entry, rows=rows, seed=seed, start=start, end=end, places_from=places_from)
    for values in drawn.rendered(drawn.choices):
        yield dict(zip(drawn.names, values, strict=True))


def synthesize_dataset(
    entry: DatasetEntry,
    output: str | Path,
    *,
    rows: int,
    seed: int = 7,
    start: str | None = None,
    end: str = DEFAULT_END,
    source: str | Path | None = None,
) -> int:
    """Write ``rows`` synthetic rows of ``entry``'s dataset to ``output``; returns the number written.

    A dataset whose entry ships real rows is resampled from them, or from ``source`` (:func:`synthesize`); any
    other is drawn by :func:`synthetic_rows`, its municipalities taken from ``source`` (by default 4v6r-wu98's).
    """
    if entry.snapshot is not None:
        real = source or SHIPPED_SNAPSHOTS / entry.snapshot
        return synthesize(real, output, rows=rows, seed=seed, start=start or entry.first_month, end=end)
    drawn = _draw(entry, rows=rows, seed=seed, start=start, end=end, places_from=source or DEFAULT_SNAPSHOT)
    # Each distinct value's JSON ``"name":"value"`` written once: rows are joined from them, as in synthesize().
    fragments = [
        [f"{json.dumps(name)}:{json.dumps(value, ensure_ascii=False)}" for value in values]
        for name, values in zip(drawn.names, drawn.choices, strict=True)
    ]
    _write(output, _json_array("{" + ",".join(parts) + "}" for parts in drawn.rendered(fragments)))
    return rows


def _json_array(lines: Iterator[str], chunk_rows: int = 50_000) -> Iterator[bytes]:
    """A JSON array of one object a line, in chunks of ``chunk_rows`` rows (memory stays flat at any size)."""
    yield b"["
    separator = ""
    while chunk := [line for _, line in zip(range(chunk_rows), lines, strict=False)]:
        yield (separator + ",\n".join(chunk)).encode()
        separator = ",\n"
    yield b"]\n"


def family_snapshots(*, rows: int = EMULATOR_ROWS, seed: int = 0) -> dict[str, Snapshot]:
    """What the emulator serves for every configured dataset, 4v6r-wu98 first: its real rows, or synthetic ones."""
    entries = configured()
    ordered = [entries[DATASET_ID], *(e for e in entries.values() if e.id != DATASET_ID)]
    return {
        entry.id: SHIPPED_SNAPSHOTS / entry.snapshot
        if entry.snapshot is not None
        else list(synthetic_rows(entry, rows=rows, seed=seed))
        for entry in ordered
    }
