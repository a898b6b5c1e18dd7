"""The Markdown the UI shows on the gold assets."""

from datetime import date

from delitos_platform.charts import BAR_WIDTH, departments_markdown, trend_markdown


def test_the_trend_chart_lists_months_oldest_first_with_bars_scaled_to_the_peak():
    chart = trend_markdown([(date(2024, 2, 1), 50, 600), (date(2024, 1, 1), 100, 550)]).splitlines()

    assert chart[2] == f"| 2024-01 | 100 | {'█' * BAR_WIDTH} | 550 |"
    assert chart[3] == f"| 2024-02 | 50 | {'█' * (BAR_WIDTH // 2)} | 600 |"


def test_the_department_table_names_its_year_and_formats_counts():
    table = departments_markdown([("05", "ANTIOQUIA", 12345, 12000)], 2025)

    assert table.splitlines()[0] == "**2025**"
    assert "| 05 | ANTIOQUIA | 12,345 | 12,000 |" in table


def test_empty_tables_say_so():
    assert trend_markdown([]) == "_no months yet_"
    assert departments_markdown([], None) == "_no departments yet_"
