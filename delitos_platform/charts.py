"""What the UI shows on the gold assets: charts drawn from the gold tables, as PNG images inside Markdown.

The Dagster UI renders a base64 ``data:`` image inside Markdown metadata. matplotlib is imported inside the
functions that draw, so importing this module (and the definitions) stays fast. Names come from the source: they
are drawn as written (mathtext off: ``$\\FRAC{$`` is text, not a formula that fails) and escaped in the tables.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from delitos_platform.markdown import markdown_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

# Read from the gold tables (plain SQL that DuckDB and Snowflake both speak).
TREND_SQL = "SELECT mes, casos, casos_12m FROM gold.tendencia_mensual ORDER BY mes"
ARTICLES_SQL = """
SELECT articulo, max(categoria) AS categoria, sum(casos) AS casos
FROM gold.delitos_por_mes
GROUP BY articulo ORDER BY casos DESC, articulo
"""
# The latest year on every row: one query, not one for the year and one for its departments.
DEPARTMENTS_SQL = """
SELECT anio, cod_depto, max(departamento) AS departamento, sum(casos) AS casos, sum(registros) AS registros
FROM gold.delitos_por_departamento
WHERE anio = (SELECT max(anio) FROM gold.delitos_por_departamento)
GROUP BY anio, cod_depto ORDER BY casos DESC, cod_depto LIMIT 15
"""

# Each month's casos as first published (its revision 1) and now (its latest revision), the last 24 months.
REVISIONS_SQL = """
SELECT mes, max(CASE WHEN revision = 1 THEN casos END) AS primera,
       max(CASE WHEN revision = ultima THEN casos END) AS actual
FROM (SELECT mes, revision, casos, max(revision) OVER (PARTITION BY mes) AS ultima FROM gold.revisiones_por_mes) AS r
GROUP BY mes ORDER BY mes DESC LIMIT 24
"""
# Cases per crime and month, every configured dataset (the cross-crime gold), each crime by its entry's title.
CRIMES_SQL = """
SELECT r.titulo, c.mes, sum(c.casos) AS casos
FROM gold.casos_por_municipio_mes AS c JOIN gold.resumen_por_delito AS r ON r.dataset = c.dataset
GROUP BY r.titulo, c.mes ORDER BY r.titulo, c.mes
"""
TREND_EMPTY = "_No months yet: the trend is drawn once silver holds a month._"
ARTICLES_EMPTY = "_No cases yet: the articles are drawn once silver holds a month._"
REVISIONS_EMPTY = "_No months yet: the chart is drawn once a month has been loaded._"
DEPARTMENTS_EMPTY = "_No departments yet: they are drawn once silver holds a month._"
CRIMES_EMPTY = "_No crimes yet: they are drawn once a dataset's silver holds a month._"
# Height of each crime's panel in the cross-crime chart: one panel per crime, stacked on one time axis.
CRIME_PANEL_INCHES = 1.8

# 1000 × 450 pixels: readable in the UI's dialog, tens of KB as PNG.
FIGURE_INCHES = (10.0, 4.5)
DPI = 100
MAX_TICKS = 12
CASES_COLOUR = "#4f43dd"  # Dagster's own accent, so the charts sit well in its UI
ROLLING_COLOUR = "#d2691e"
FIRST_COLOUR = "#b8b3f0"  # the current figure in CASES_COLOUR beside it
REVISIONS_HOW_TO_READ = (
    "Each month's cases **as first published** (light: as the platform first loaded it; for months of the first "
    "backfill, as they stood then) and **now** (dark). A dark bar taller than its light one: the month gained "
    "cases after it was first published (late records, corrections). The most recent months usually grow the "
    "most: check `provisional` in `gold.tendencia_mensual` before comparing them."
)


Params = ParamSpec("Params")
Drawn = TypeVar("Drawn")


def literal_text(draw: Callable[Params, Drawn]) -> Callable[Params, Drawn]:
    """Draw with mathtext off: every label, tick and title is shown as the text it is.

    Tick labels are made when the figure is saved, so the whole drawing runs under the setting.
    """

    @functools.wraps(draw)
    def drawing(*args: Params.args, **kwargs: Params.kwargs) -> Drawn:
        from matplotlib import rc_context

        with rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return drawing


def png_markdown(figure: Figure, alt: str) -> str:
    """``figure`` as a PNG embedded in Markdown (``![alt](data:image/png;base64,...)``), which the UI renders."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"


def new_figure(size: tuple[float, float] = FIGURE_INCHES, rows: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure (no pyplot: no global state, safe in any thread) with ``rows`` axes stacked, sharing x."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for axis in axes:
        axis.spines[["top", "right"]].set_visible(False)
    return figure, list(axes)


def _thousands() -> FuncFormatter:
    """Axis ticks as whole numbers with thousands separators."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _position: f"{value:,.0f}")


@literal_text
def trend_markdown(rows: Sequence[tuple[date, int, int]]) -> str:
    """Cases per month and the 12-month rolling sum, every month (rows: mes, casos, casos_12m; any order)."""
    if not rows:
        return TREND_EMPTY
    ordered = sorted((mes, int(casos), int(casos_12m)) for mes, casos, casos_12m in rows)
    months = [mes for mes, _, _ in ordered]
    figure, (monthly, rolling) = new_figure(rows=2)
    monthly.bar(months, [casos for _, casos, _ in ordered], width=25, color=CASES_COLOUR)
    for axis in (monthly, rolling):
        axis.grid(axis="y", alpha=0.3)
        axis.yaxis.set_major_formatter(_thousands())
    monthly.set_ylabel("cases per month")
    rolling.plot(months, [casos_12m for _, _, casos_12m in ordered], color=ROLLING_COLOUR, linewidth=2)
    rolling.set_ylabel("last 12 months")
    rolling.set_ylim(bottom=0)  # from zero, so a change looks as big as it is
    _month_ticks(rolling, len(months))
    rolling.set_xlabel("month of the offence (fecha_hecho)")
    first, last = f"{months[0]:%Y-%m}", f"{months[-1]:%Y-%m}"
    figure.suptitle(f"Cybercrime cases per month, {first} to {last}")
    mes, casos, casos_12m = ordered[-1]
    latest = f"**{mes:%Y-%m}: {casos:,} cases; {casos_12m:,} in the last 12 months.**"
    return f"{png_markdown(figure, f'Cases per month and last 12 months, {first} to {last}')}\n\n{latest}"


@literal_text
def articles_markdown(rows: Sequence[tuple[str, str, int]]) -> str:
    """Cases by article of Law 1273/2009, most first (rows: articulo, categoria, casos)."""
    if not rows:
        return ARTICLES_EMPTY
    ordered = sorted(((articulo, categoria, int(casos)) for articulo, categoria, casos in rows), key=_most_first)
    figure, (axis,) = new_figure()
    labels = [f"{articulo} {(categoria or '').capitalize()}" for articulo, categoria, _ in ordered]
    axis.barh(labels[::-1], [casos for _, _, casos in ordered][::-1], color=CASES_COLOUR)  # the most at the top
    _counts_along_x(axis)
    axis.set_xlabel("cases, all months")
    figure.suptitle("Cybercrime cases by article of Law 1273 of 2009")
    table = ["| article | category | cases |", "|---|---|---:|"]
    table += [
        f"| {markdown_text(articulo)} | {markdown_text(categoria)} | {casos:,} |"
        for articulo, categoria, casos in ordered
    ]
    return f"{png_markdown(figure, 'Cases by article of Law 1273 of 2009')}\n\n" + "\n".join(table)


@literal_text
def departments_markdown(rows: Sequence[tuple[str, str, int, int]], year: int | None) -> str:
    """Departments of the latest year by cases, most first (rows: cod_depto, departamento, casos, registros)."""
    if not rows:
        return DEPARTMENTS_EMPTY
    ordered = sorted(
        ((code, name, int(casos), int(registros)) for code, name, casos, registros in rows), key=_most_first
    )
    figure, (axis,) = new_figure()
    axis.barh(
        [name for _, name, _, _ in ordered][::-1], [casos for _, _, casos, _ in ordered][::-1], color=CASES_COLOUR
    )
    _counts_along_x(axis)
    axis.set_xlabel(f"cases in {year}")
    figure.suptitle(f"Departments with most cybercrime cases in {year}")
    table = ["| code | department | cases | reports |", "|---|---|---:|---:|"]
    table += [
        f"| {markdown_text(code)} | {markdown_text(name)} | {casos:,} | {registros:,} |"
        for code, name, casos, registros in ordered
    ]
    return f"{png_markdown(figure, f'Departments by cases in {year}')}\n\n" + "\n".join(table)


def latest_year_departments_markdown(rows: Sequence[tuple[int, str, str, int, int]]) -> str:
    """``departments_markdown`` of ``DEPARTMENTS_SQL``'s rows (anio, cod_depto, departamento, casos, registros)."""
    return departments_markdown([row[1:] for row in rows], rows[0][0] if rows else None)


def _month_ticks(axis: Axes, months: int) -> None:
    """About a dozen ticks at most on a time axis: months (``YYYY-MM``) over three years or less, else years."""
    from matplotlib.dates import DateFormatter, MonthLocator, YearLocator

    if months <= 36:
        axis.xaxis.set_major_locator(MonthLocator(interval=-(-months // MAX_TICKS)))
        axis.xaxis.set_major_formatter(DateFormatter("%Y-%m"))
    else:
        axis.xaxis.set_major_locator(YearLocator(base=-(-months // (12 * MAX_TICKS))))
        axis.xaxis.set_major_formatter(DateFormatter("%Y"))


def _counts_along_x(axis: Axes) -> None:
    """A horizontal bar chart's count axis: gridlines and thousands separators."""
    axis.grid(axis="x", alpha=0.3)
    axis.xaxis.set_major_formatter(_thousands())


def _most_first(row: tuple) -> tuple:
    """Rows by cases (third field), most first; ties by their first field."""
    return (-row[2], row[0])


@literal_text
def revisions_markdown(rows: Sequence[tuple[date, int, int]]) -> str:
    """First-published vs current cases of the last months as a PNG bar chart, with how to read it.

    ``rows``: mes, casos as first published, casos now.
    """
    if not rows:
        return REVISIONS_EMPTY
    ordered = sorted(rows)
    positions = range(len(ordered))
    figure, (axis,) = new_figure()
    axis.bar(
        [x - 0.2 for x in positions],
        [first for _, first, _ in ordered],
        0.4,
        color=FIRST_COLOUR,
        label="first published",
    )
    axis.bar([x + 0.2 for x in positions], [now for _, _, now in ordered], 0.4, color=CASES_COLOUR, label="now")
    axis.set_xticks(list(positions), [f"{mes:%Y-%m}" for mes, _, _ in ordered], rotation=60, fontsize=8)
    axis.yaxis.set_major_formatter(_thousands())
    axis.set_ylabel("cases")
    axis.set_title("Cases per month: as first published vs now")
    axis.legend(frameon=False)
    changed = sum(first != now for _, first, now in ordered)
    summary = f"{changed} of the last {len(ordered)} months changed since they were first published."
    return "\n\n".join([REVISIONS_HOW_TO_READ, summary, png_markdown(figure, "first published vs current cases")])


@literal_text
def crimes_markdown(rows: Sequence[tuple[str, date, int]]) -> str:
    """Cases per month of every crime side by side: one panel per crime on one time axis, each on its own scale
    (homicides and thefts differ by orders of magnitude), and a table of their totals (rows: titulo, mes, casos)."""
    if not rows:
        return CRIMES_EMPTY
    by_crime: dict[str, list[tuple[date, int]]] = {}
    for titulo, mes, casos in sorted(rows):
        by_crime.setdefault(titulo, []).append((mes, int(casos)))
    figure, axes = new_figure((FIGURE_INCHES[0], 1 + CRIME_PANEL_INCHES * len(by_crime)), rows=len(by_crime))
    for axis, (titulo, months) in zip(axes, by_crime.items(), strict=True):
        axis.bar([mes for mes, _ in months], [casos for _, casos in months], width=25, color=CASES_COLOUR)
        axis.set_title(titulo, loc="left", fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        axis.yaxis.set_major_formatter(_thousands())
    first = min(months[0][0] for months in by_crime.values())
    last = max(months[-1][0] for months in by_crime.values())
    _month_ticks(axes[-1], (last.year - first.year) * 12 + last.month - first.month + 1)
    axes[-1].set_xlabel("month of the offence (fecha_hecho)")
    figure.suptitle(f"Cases per month, crime by crime, {first:%Y-%m} to {last:%Y-%m}")
    table = ["| crime | cases | months | latest month |", "|---|---:|---:|---|"]
    table += [
        f"| {markdown_text(titulo)} | {sum(casos for _, casos in months):,} | {len(months)} | {months[-1][0]:%Y-%m} |"
        for titulo, months in by_crime.items()
    ]
    return f"{png_markdown(figure, 'Cases per month, crime by crime')}\n\n" + "\n".join(table)
