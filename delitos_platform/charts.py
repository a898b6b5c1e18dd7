"""What the UI shows on the gold assets: a monthly-trend chart and a department table, as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

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
