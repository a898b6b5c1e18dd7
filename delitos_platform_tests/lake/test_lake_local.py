"""Source → local lake: exact months, byte-identical re-runs, one run per range, quarantine, retries."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import dagster as dg
import pytest

from delitos_platform.contract import LAKE_SCHEMA
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import LocalLake, data_key, quarantine_key
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import (
    lake_table,
    materialize_lake,
    materialized_metadata,
    partition_metadata,
    quarantine_table,
    rows_per_month,
)

MONTH = "2019-03-01"


def _as_lake_tuples(rows: list[dict[str, str]], month_key: str) -> list[tuple]:
    """API rows of a month as the lake should hold them (typed), sorted for comparison."""
    return sorted(
        (
            row["fecha_hecho"][:10],
            row["cod_depto"],
            row["departamento"],
            row["cod_muni"],
            row["municipio"],
            row["descripcion_conducta"],
            int(row["cantidad"]),
        )
        for row in rows
        if row["fecha_hecho"].startswith(month_key[:7])
    )


def _lake_tuples(lake: LocalLake, month_key: str) -> list[tuple]:
    table = lake_table(lake, month_key).to_pylist()
    return sorted(
        (
            r["fecha_hecho"].isoformat(),
            r["cod_depto"],
            r["departamento"],
            r["cod_muni"],
            r["municipio"],
            r["descripcion_conducta"],
            r["cantidad"],
        )
        for r in table
    )


def test_a_month_lands_in_the_lake_exactly_as_the_source_has_it(emulator, local_lake, snapshot_rows):
    result = materialize_lake(socrata_for(emulator), local_lake, MONTH)

    assert result.success
    table = lake_table(local_lake, MONTH)
    assert table.schema.remove_metadata() == LAKE_SCHEMA
    assert table.num_rows == rows_per_month(snapshot_rows)[MONTH] > 50
    assert _lake_tuples(local_lake, MONTH) == _as_lake_tuples(snapshot_rows, MONTH)
    row_ids = table["row_id"].to_pylist()
    assert row_ids == sorted(row_ids) and len(set(row_ids)) == len(row_ids)
    [metadata] = materialized_metadata(result)
    assert metadata["rows"] == table.num_rows
    assert metadata["quarantined"] == 0
    assert metadata["run_pages"] == 2  # the month's page, and the page of rows outside the calendar
    assert metadata["bytes"] == len(local_lake.read(data_key(MONTH)))
    assert metadata["uri"] == local_lake.uri(data_key(MONTH))
    assert "fecha_hecho >= '2019-03-01T00:00:00.000' AND fecha_hecho < '2019-04-01T00:00:00.000'" in str(
        metadata["source_query"]
    )
    assert metadata["source_api"] == "SODA3"  # the emulator, like datos.gov.co, has both APIs: auto takes SODA3


def test_rerunning_a_month_writes_byte_identical_objects(emulator, local_lake):
    socrata = socrata_for(emulator)
    materialize_lake(socrata, local_lake, MONTH)
    first = local_lake.read(data_key(MONTH)), local_lake.read(quarantine_key(MONTH))

    assert materialize_lake(socrata, local_lake, MONTH).success
    assert (local_lake.read(data_key(MONTH)), local_lake.read(quarantine_key(MONTH))) == first


def test_a_range_is_one_run_and_equals_the_months_run_one_by_one(emulator, tmp_path, snapshot_rows):
    socrata = socrata_for(emulator, page_size=700)
    months = ["2018-11-01", "2018-12-01", "2019-01-01", "2019-02-01"]
    by_range, by_month = LocalLake(root=str(tmp_path / "range")), LocalLake(root=str(tmp_path / "month"))

    result = materialize_lake(socrata, by_range, months[0], months[-1])
    for month in months:
        assert materialize_lake(socrata, by_month, month).success

    assert result.success
    assert sorted(event.partition for event in result.get_asset_materialization_events()) == months
    for month in months:
        assert by_range.read(data_key(month)) == by_month.read(data_key(month))
        assert by_range.read(quarantine_key(month)) == by_month.read(quarantine_key(month))
    metadata = materialized_metadata(result)[0]
    expected = sum(rows_per_month(snapshot_rows)[month] for month in months)
    assert metadata["run_rows"] == expected
    assert expected < 700  # so the four months are one sub-window: one page, and one of out-of-calendar rows
    assert metadata["run_pages"] == 2
    assert metadata["run_months"] == len(months)


def test_each_month_of_a_range_run_records_its_own_figures_once(emulator, local_lake, snapshot_rows):
    """Dagster plots metadata by partition: a month of a range run must say its own rows, not the range's."""
    months = ["2019-01-01", "2019-02-01", "2019-03-01"]
    instance = dg.DagsterInstance.ephemeral()

    result = materialize_lake(socrata_for(emulator), local_lake, months[0], months[-1], instance=instance)

    assert result.success
    source = rows_per_month(snapshot_rows)
    assert len({source[month] for month in months}) == len(months)  # different months, different figures
    for month in months:
        [metadata] = partition_metadata(instance, LAKE_DELITOS, month)  # once: not a copy per event
        assert metadata["rows"] == lake_table(local_lake, month).num_rows == source[month]
        assert metadata["quarantined"] == quarantine_table(local_lake, month).num_rows
        assert metadata["bytes"] == len(local_lake.read(data_key(month)))
        assert metadata["uri"] == local_lake.uri(data_key(month))
        assert metadata["quarantine_uri"] == local_lake.uri(quarantine_key(month))
        assert metadata["source_version"].startswith(f"{source[month]}@")
        assert (metadata["run_months"], metadata["run_rows"]) == (3, sum(source[m] for m in months))


def test_an_empty_month_still_gets_empty_objects(emulator, local_lake):
    assert materialize_lake(socrata_for(emulator), local_lake, "2007-01-01").success

    assert lake_table(local_lake, "2007-01-01").num_rows == 0
    assert lake_table(local_lake, "2007-01-01").schema.remove_metadata() == LAKE_SCHEMA
    assert quarantine_table(local_lake, "2007-01-01").num_rows == 0


MALFORMED = [
    ({"cantidad": "0"}, "cantidad is not a positive integer"),
    ({"cantidad": "1.5"}, "cantidad is not a positive integer"),
    ({"cod_muni": "6800"}, "cod_muni is not 5 digits"),
    ({"cod_muni": "05001"}, "cod_muni does not start with cod_depto"),
    ({"municipio": None}, "municipio is empty"),
    ({"descripcion_conducta": "ARTICULO 269H. NO EXISTE"}, "descripcion_conducta is not one of the 9 articles"),
]


@pytest.fixture
def snapshot_with_malformed_rows(tmp_path: Path, snapshot_rows) -> Path:
    """The real March 2019, plus one malformed copy of its first row per defect."""
    month_rows = [row for row in snapshot_rows if row["fecha_hecho"].startswith(MONTH[:7])]
    malformed = []
    for change, _ in MALFORMED:
        row = {**month_rows[0], **change}
        malformed.append({key: value for key, value in row.items() if value is not None})
    path = tmp_path / "malformed.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(month_rows + malformed, handle)
    return path


def test_malformed_rows_are_quarantined_with_their_reason_never_dropped(
    snapshot_with_malformed_rows, local_lake, snapshot_rows
):
    with EmulatorServer(snapshot=snapshot_with_malformed_rows, port=0) as server:
        result = materialize_lake(socrata_for(server), local_lake, MONTH)

    assert result.success
    quarantine = quarantine_table(local_lake, MONTH).to_pylist()
    assert len(quarantine) == len(MALFORMED)
    reasons = sorted(row["reason"] for row in quarantine)
    for _, reason in MALFORMED:
        assert any(found.startswith(reason) for found in reasons), reason
    assert all(json.loads(row["raw"])[":id"] == row["row_id"] for row in quarantine)
    good = rows_per_month(snapshot_rows)[MONTH]
    assert lake_table(local_lake, MONTH).num_rows == good
    [metadata] = materialized_metadata(result)
    assert (metadata["rows"], metadata["quarantined"]) == (good, len(MALFORMED))


def test_throttling_errors_and_resets_are_retried_and_the_result_is_still_exact(fresh_emulator, tmp_path):
    clean, faulty = LocalLake(root=str(tmp_path / "clean")), LocalLake(root=str(tmp_path / "faulty"))
    socrata = socrata_for(fresh_emulator, page_size=500, max_retries=4)
    months = ("2019-01-01", "2019-03-01")
    assert materialize_lake(socrata, clean, *months).success

    for kind, options in (("429", {"retry_after": 1}), ("503", {}), ("reset", {}), ("truncate", {})):
        fresh_emulator.faults.clear()
        fired = fresh_emulator.faults.fired[kind]
        fresh_emulator.faults.inject(kind, count=2, **options)
        assert materialize_lake(socrata, faulty, *months).success, kind
        assert fresh_emulator.faults.fired[kind] == fired + 2, kind  # both faults hit the run, and it got over them
        for month in ("2019-01-01", "2019-02-01", "2019-03-01"):
            assert faulty.read(data_key(month)) == clean.read(data_key(month)), kind


def test_a_retyped_column_leaves_every_published_object_byte_identical(fresh_emulator, local_lake):
    socrata, months = socrata_for(fresh_emulator), ("2019-01-01", "2019-03-01")
    assert materialize_lake(socrata, local_lake, *months).success
    before = _lake_files(local_lake)

    fresh_emulator.dataset.retype_column("cantidad", "text")
    result = materialize_lake(socrata, local_lake, *months)

    assert not result.success
    assert _lake_files(local_lake) == before  # same objects, same bytes, no staging left behind


def _lake_files(lake: LocalLake) -> dict[str, bytes]:
    root = Path(lake.root)
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
