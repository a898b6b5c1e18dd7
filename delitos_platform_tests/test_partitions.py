"""Monthly partitions and their half-open windows: the one place a window's bounds and `$where` are built."""

from __future__ import annotations

from datetime import date

import pytest

from delitos_platform.defs.dbt.assets import window_environment
from delitos_platform.partitions import Window, monthly_partitions, parse_partition_key


def test_partitions_start_in_may_2006_and_are_months():
    keys = monthly_partitions.get_partition_keys()

    assert keys[0] == "2006-05-01"
    assert all(key.endswith("-01") for key in keys)


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [("2024-01-01", date(2024, 1, 1), date(2024, 2, 1)), ("2023-12-01", date(2023, 12, 1), date(2024, 1, 1))],
)
def test_a_month_window_is_half_open(month, start, end):
    assert Window.for_month(month) == Window(start, end)


def test_a_window_knows_its_months_and_its_where_clause():
    window = Window(date(2023, 11, 1), date(2024, 2, 1))

    assert window.month_keys() == ["2023-11-01", "2023-12-01", "2024-01-01"]
    assert window.soql() == "fecha_hecho >= '2023-11-01T00:00:00.000' AND fecha_hecho < '2024-02-01T00:00:00.000'"


def test_dbt_gets_the_window_as_exact_variables():
    assert window_environment(Window.for_month("2024-02-01")) == {
        "DELITOS_DBT_WINDOW_START": "2024-02-01",
        "DELITOS_DBT_WINDOW_END": "2024-03-01",
    }


@pytest.mark.parametrize("key", ["2024-13-01", "2024-02-15", "feb", ""])
def test_a_bad_partition_key_is_a_clear_error(key):
    with pytest.raises(ValueError, match=f"bad partition key {key!r}: expected the first day of a month"):
        parse_partition_key(key)


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError, match="empty window"):
        Window(date(2024, 2, 1), date(2024, 2, 1))
