"""What the UI shows on the gold assets: a monthly-trend chart and a department table, as Markdown."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Read from the gold tables (plain SQL that DuckDB and Snowflake both speak).
TREND_SQL = "SELECT mes, casos, casos_12m FROM gold.tendencia_mensual ORDER BY mes DESC LIMIT 24"
DEPARTMENTS_SQL = """
SELECT cod_depto, max(departamento) AS departamento, sum(casos) AS casos, sum(registros) AS registros
FROM gold.delitos_por_departamento
WHERE anio = (SELECT max(anio) FROM gold.delitos_por_departamento)
GROUP BY cod_depto ORDER BY casos DESC, cod_depto LIMIT 15
"""
LATEST_YEAR_SQL = "SELECT max(anio) FROM gold.delitos_por_departamento"
BAR_WIDTH = 30
# Each month's casos as first published (its revision 1) and now (its latest revision), the last 24 months.
REVISIONS_SQL = """
SELECT mes, max(CASE WHEN revision = 1 THEN casos END) AS primera,
       max(CASE WHEN revision = ultima THEN casos END) AS actual
FROM (SELECT mes, revision, casos, max(revision) OVER (PARTITION BY mes) AS ultima FROM gold.revisiones_por_mes) AS r
GROUP BY mes ORDER BY mes DESC LIMIT 24
"""
DPI = 100
REVISIONS_INCHES = (10.0, 4.5)
FIRST_COLOUR, CURRENT_COLOUR = "#b8b3f0", "#4f43dd"
REVISIONS_HOW_TO_READ = (
    "Each month's cases **as first published** (light: as the platform first loaded it; for months of the first "
    "backfill, as they stood then) and **now** (dark). A dark bar taller than its light one: the month gained "
    "cases after it was first published (late records, corrections). The most recent months usually grow the "
    "most: check `provisional` in `gold.tendencia_mensual` before comparing them."
)


def trend_markdown(rows: Sequence[tuple[date, int, int]]) -> str:
    """The last months as a table with a bar per month, oldest first (rows: mes, casos, casos_12m)."""
    if not rows:
        return "_no months yet_"
    ordered = sorted(rows)
    peak = max(casos for _, casos, _ in ordered) or 1
    lines = ["| month | cases | | last 12 months |", "|---|---:|:---|---:|"]
    for mes, casos, casos_12m in ordered:
        bar = "█" * round(BAR_WIDTH * casos / peak)
        lines.append(f"| {mes:%Y-%m} | {casos:,} | {bar} | {casos_12m:,} |")
    return "\n".join(lines)


def departments_markdown(rows: Sequence[tuple[str, str, int, int]], year: int | None) -> str:
    """Departments of the latest year by cases (rows: cod_depto, departamento, casos, registros)."""
    if not rows:
        return "_no departments yet_"
    lines = [f"**{year}**", "", "| code | department | cases | reports |", "|---|---|---:|---:|"]
    lines += [f"| {code} | {name} | {casos:,} | {registros:,} |" for code, name, casos, registros in rows]
    return "\n".join(lines)


def png_markdown(figure: Figure, alt: str) -> str:
    """``figure`` as a PNG embedded in Markdown (``![alt](data:image/png;base64,...)``), which the UI renders."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"


def revisions_markdown(rows: Sequence[tuple[date, int, int]]) -> str:
    """First-published vs current cases of the last months as a PNG bar chart, with how to read it (rows: mes,
    primera, actual)."""
    if not rows:
        return "_no months yet: the chart is drawn once a month has been loaded_"
    from matplotlib.figure import Figure  # imported when drawing: loading the definitions stays fast

    ordered = sorted(rows)
    positions = range(len(ordered))
    figure = Figure(figsize=REVISIONS_INCHES, layout="constrained")
    axis = figure.subplots()
    axis.bar(
        [x - 0.2 for x in positions],
        [first for _, first, _ in ordered],
        0.4,
        color=FIRST_COLOUR,
        label="first published",
    )
    axis.bar([x + 0.2 for x in positions], [now for _, _, now in ordered], 0.4, color=CURRENT_COLOUR, label="now")
    axis.set_xticks(list(positions), [f"{mes:%Y-%m}" for mes, _, _ in ordered], rotation=60, fontsize=8)
    axis.set_ylabel("cases")
    axis.set_title("Cases per month: as first published vs now")
    axis.spines[["top", "right"]].set_visible(False)
    axis.legend(frameon=False)
    changed = sum(first != now for _, first, now in ordered)
    summary = f"{changed} of the last {len(ordered)} months changed since they were first published."
    return "\n\n".join([REVISIONS_HOW_TO_READ, summary, png_markdown(figure, "first published vs current cases")])
