"""The revision chart on gold/revisiones_por_mes: a real PNG of first-published vs current cases."""

import base64
import io
import re
from datetime import date

from PIL import Image

from delitos_platform.charts import revisions_markdown


def test_the_revision_chart_is_a_png_with_how_to_read_it_and_how_many_months_changed():
    rows = [(date(2024, 1, 1), 90, 100), (date(2024, 2, 1), 80, 80), (date(2023, 12, 1), 70, 75)]

    markdown = revisions_markdown(rows)

    assert "**as first published**" in markdown
    assert "2 of the last 3 months changed since they were first published." in markdown
    [encoded] = re.findall(
        r"!\[first published vs current cases\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown
    )
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert image.format == "PNG" and image.size == (1000, 450)


def test_no_months_say_so():
    assert revisions_markdown([]).startswith("_no months yet")
