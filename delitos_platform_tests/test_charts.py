"""The charts the UI shows on the gold assets: real PNG images inside Markdown, or a sentence when there is no data."""

from __future__ import annotations

import base64
import io
import re
from datetime import date

import pytest
from PIL import Image

from delitos_platform.charts import (
    ARTICLES_EMPTY,
    DEPARTMENTS_EMPTY,
    REVISIONS_EMPTY,
    TREND_EMPTY,
    articles_markdown,
    departments_markdown,
    revisions_markdown,
    trend_markdown,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URI_IMAGE = re.compile(r"!\[(?P<alt>[^\]]+)\]\(data:image/png;base64,(?P<data>[A-Za-z0-9+/=]+)\)")
MONTHS = [date(year, month, 1) for year in (2023, 2024) for month in range(1, 13)]


def embedded_png(markdown: str) -> tuple[str, bytes]:
    """The alt text and the bytes of the one PNG embedded in ``markdown``."""
    [image] = list(DATA_URI_IMAGE.finditer(markdown))
    return image["alt"], base64.b64decode(image["data"], validate=True)


def assert_readable_png(data: bytes) -> None:
    """A PNG that decodes, big enough to read and small enough to keep in every materialization."""
    assert data[:8] == PNG_MAGIC
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes every pixel: a truncated or corrupt PNG raises here
        width, height = image.size
    assert 600 <= width <= 1600 and 300 <= height <= 1000, (width, height)
    assert 5_000 < len(data) < 100_000, len(data)


def test_the_trend_is_a_png_of_cases_and_the_rolling_year_with_the_latest_figures_beside_it():
    rows = [(mes, 100 + index, 1_200 + index) for index, mes in enumerate(MONTHS)]

    markdown = trend_markdown(rows)

    alt, data = embedded_png(markdown)
    assert_readable_png(data)
    assert "2023-01" in alt and "2024-12" in alt
    assert "2024-12: 123 cases; 1,223 in the last 12 months" in markdown


def test_the_trend_reads_months_in_any_order():
    rows = [(mes, 10, 120) for mes in MONTHS]

    assert embedded_png(trend_markdown(list(reversed(rows))))[0] == embedded_png(trend_markdown(rows))[0]


def test_articles_are_a_png_with_each_articles_cases_in_a_table():
    rows = [("269I", "HURTO POR MEDIOS INFORMATICOS", 15_000), ("269A", "ACCESO ABUSIVO", 3_000)]

    markdown = articles_markdown(rows)

    assert_readable_png(embedded_png(markdown)[1])
    assert "| 269I | HURTO POR MEDIOS INFORMATICOS | 15,000 |" in markdown


def test_departments_are_a_png_of_the_latest_year_with_a_table():
    rows = [("68", "SANTANDER", 12_345, 12_000), ("05", "ANTIOQUIA", 2_000, 1_900)]

    markdown = departments_markdown(rows, 2025)

    alt, data = embedded_png(markdown)
    assert_readable_png(data)
    assert "2025" in alt
    assert "| 68 | SANTANDER | 12,345 | 12,000 |" in markdown


def test_revisions_are_a_png_of_first_published_and_current_cases_with_how_to_read_it():
    rows = [(date(2024, 1, 1), 90, 100), (date(2024, 2, 1), 80, 80), (date(2023, 12, 1), 70, 75)]

    markdown = revisions_markdown(rows)

    alt, data = embedded_png(markdown)
    assert_readable_png(data)
    assert alt == "first published vs current cases"
    assert "**as first published**" in markdown
    assert "2 of the last 3 months changed since they were first published." in markdown


@pytest.mark.parametrize(
    ("draw", "sentence"),
    [
        (lambda: trend_markdown([]), TREND_EMPTY),
        (lambda: articles_markdown([]), ARTICLES_EMPTY),
        (lambda: departments_markdown([], None), DEPARTMENTS_EMPTY),
        (lambda: revisions_markdown([]), REVISIONS_EMPTY),
    ],
)
def test_no_rows_give_a_sentence_not_a_chart(draw, sentence):
    markdown = draw()

    assert markdown == sentence
    assert "data:image" not in markdown


def test_hostile_names_are_drawn_as_written_and_escaped_in_the_table():
    forged = "$\\FRAC{$ | 999 |\n| 00 | [x](javascript:alert(1)) <b>"
    rows = [("68", "SANTANDER", 357, 300), ("99", forged, 10, 10)]

    markdown = departments_markdown(rows, 2019)

    assert_readable_png(embedded_png(markdown)[1])  # mathtext off: the name is text, not a formula that fails
    table = markdown.split("\n\n", 1)[1].splitlines()
    assert len(table) == 2 + len(rows)  # no forged row
    assert table[-1] == (
        "| 99 | \\$\\\\FRAC\\{\\$ \\| 999 \\| \\| 00 \\| \\[x\\]\\(javascript:alert\\(1\\)\\) \\<b\\> | 10 | 10 |"
    )
