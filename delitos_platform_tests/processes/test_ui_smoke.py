"""The UI as a person sees it: real headless Chromium against the running webserver, screenshots kept.

The pages are looked at after the main job's backfill (shared fixture ``main_job_backfill``) materialized
every layer, gold included. Screenshots and rendered HTML go to ``test-artifacts/ui/`` (git-ignored).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from delitos_platform.charts import DPI, FIGURE_INCHES
from delitos_platform_tests.processes.conftest import LaunchedBackfill, Platform
from delitos_platform_tests.processes.helpers import ARTIFACTS, HeadlessChromium, devtools_page

UI_ARTIFACTS = ARTIFACTS / "ui"
LOCATION = "delitos_platform.definitions"  # the code location's name, from workspace.yaml's module
# What the webserver's error pages and the app's crash screens say; none of it may be on a rendered page.
ERROR_MARKERS = re.compile(
    r"Unexpected Application Error|Something went wrong|Page not found|Asset not found|PythonError|"
    r"Could not load|Join the Dagster community",
    re.IGNORECASE,
)

RECENT_MATERIALIZATION = re.compile(r"Latest materialization (?:a few seconds|\d+ seconds|a minute|\d+ minutes) ago")


def look_at(chromium: HeadlessChromium, url: str, name: str, expected: list[str]) -> str:
    """The page's visible text once it shows every ``expected`` text; DOM and screenshot kept as artifacts."""
    UI_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dom = ""
    for _attempt in range(3):  # a cold webserver may still be fetching when the virtual-time budget ends
        dom = chromium.dump_dom(url)
        if all(text in visible_text(dom) for text in expected):
            break
    (UI_ARTIFACTS / f"{name}.html").write_text(dom)
    screenshot = chromium.screenshot(url, UI_ARTIFACTS / f"{name}.png")
    assert_png(screenshot)
    text = visible_text(dom)
    missing = [item for item in expected if item not in text]
    assert not missing, f"{missing} not on {url} (see {UI_ARTIFACTS / name}.html/.png)"
    error = ERROR_MARKERS.search(text)
    assert error is None, f"{url} shows {error.group(0)!r} (see {UI_ARTIFACTS / name}.png)"
    return text


def visible_text(dom: str) -> str:
    """The DOM without scripts, styles and tags: what the page says."""
    without_code = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_code))


def assert_png(path: Path) -> None:
    """A real PNG of some size (a blank page compresses to almost nothing)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 20_000, f"{path} is only {len(data)} bytes: probably a blank page"


def test_global_lineage_renders(
    platform: Platform, main_job_backfill: LaunchedBackfill, chromium: HeadlessChromium
) -> None:
    """The global asset lineage (``/asset-groups``) draws the five layers as groups."""
    text = look_at(
        chromium,
        f"{platform.url}/asset-groups",
        "global_lineage",
        ["Global asset lineage", "source", "lake", "bronze", "silver", "gold"],
    )
    assert "Materialize all" in text


def test_gold_group_lineage_renders(
    platform: Platform, main_job_backfill: LaunchedBackfill, chromium: HeadlessChromium
) -> None:
    """The gold group's lineage draws its assets, fed by ``stg_delitos``, and they are materialized."""
    url = f"{platform.url}/locations/{LOCATION}/asset-groups/gold"
    gold = ["delitos_por_mes", "delitos_por_departamento", "top_municipios", "tendencia_mensual", "resumen_general"]
    text = look_at(chromium, url, "gold_lineage", ["stg_delitos", *gold])
    # Gold is not partitioned: each node says when it was materialized.
    assert text.count("Materialized") >= len(gold), text[:3000]
    assert "Never materialized" not in text


def test_gold_asset_page_renders(
    platform: Platform, main_job_backfill: LaunchedBackfill, chromium: HeadlessChromium
) -> None:
    """``gold/resumen_general``'s page shows the asset, its description and a recent materialization."""
    url = f"{platform.url}/assets/gold/resumen_general"
    text = look_at(chromium, url, "gold_resumen_general", ["resumen_general", "Latest materialization", "Columns"])
    assert RECENT_MATERIALIZATION.search(text), text[:3000]


# Markdown metadata over 1,000 characters (any embedded image) sits behind "[Show Markdown]" in its row of the
# asset page's metadata table: one click opens it in a dialog.
SHOW_MARKDOWN = """(() => {
  const rows = [...document.querySelectorAll('tr')].filter(row => row.textContent.includes(%s));
  for (const row of rows) {
    const button = [...row.querySelectorAll('*')].find(
      element => element.children.length === 0 && element.textContent.trim() === '[Show Markdown]');
    if (button) { button.click(); return true; }
  }
  return false;
})()"""
# The first PNG embedded as a data URI, once the browser has decoded it: its size as drawn, and as shown.
CHART_IMAGE = """(() => {
  const image = [...document.images].find(image => image.src.startsWith('data:image/png;base64,'));
  if (!image || !image.complete || image.naturalWidth === 0) return null;
  const shown = image.getBoundingClientRect();
  return {src: image.src.slice(0, 40), alt: image.alt, width: image.naturalWidth, height: image.naturalHeight,
          shown: [Math.round(shown.width), Math.round(shown.height)], text: document.body.innerText};
})()"""


def test_gold_trend_page_shows_the_chart(
    platform: Platform, main_job_backfill: LaunchedBackfill, chromium: HeadlessChromium
) -> None:
    """``gold/tendencia_mensual``'s page shows the monthly trend as a real PNG chart, one click away."""
    url = f"{platform.url}/assets/gold/tendencia_mensual"
    with devtools_page(chromium) as page:
        page.goto(url)
        page.wait_for(SHOW_MARKDOWN % json.dumps("monthly_trend"), 90, f"monthly_trend's [Show Markdown] on {url}")
        image = page.wait_for(CHART_IMAGE, 30, f"the monthly trend's chart to be shown on {url}")
        screenshot = page.screenshot(UI_ARTIFACTS / "gold_tendencia_mensual_chart.png")
        dom = page.evaluate("document.documentElement.outerHTML")
    (UI_ARTIFACTS / "gold_tendencia_mensual_chart.html").write_text(dom)
    assert_png(screenshot)
    assert image["src"].startswith("data:image/png;base64,iVBORw0KGgo")  # the PNG signature, base64-encoded
    assert (image["width"], image["height"]) == (FIGURE_INCHES[0] * DPI, FIGURE_INCHES[1] * DPI)  # it decoded
    assert min(image["shown"]) > 100, image["shown"]  # and is on screen, not hidden or squeezed
    assert image["alt"].startswith("Cases per month and last 12 months"), image["alt"]
    assert re.search(r"\d{4}-\d{2}: [\d,]+ cases; [\d,]+ in the last 12 months", image["text"]), image["text"][:3000]
    error = ERROR_MARKERS.search(image["text"])
    assert error is None, f"{url} shows {error.group(0)!r} (see {screenshot})"


def test_gold_asset_page_shows_column_types(
    platform: Platform, main_job_backfill: LaunchedBackfill, chromium: HeadlessChromium
) -> None:
    """``gold/resumen_general``'s columns are listed each with its type (``data_type`` in dbt's schema.yml)."""
    url = f"{platform.url}/assets/gold/resumen_general"
    typed = {"casos": "BIGINT", "primera_fecha": "DATE", "articulo_mas_frecuente": "VARCHAR"}
    text = look_at(chromium, url, "gold_resumen_general_columns", ["Columns", *typed, *typed.values()])
    for column, data_type in typed.items():
        assert re.search(rf"\b{column} {data_type}\b", text), f"{column} is not shown as {data_type}: {text[:3000]}"
