"""``delitos sql``: one query of the environment's warehouse, printed as a table a person reads (or CSV).

Locally the DuckDB file is opened read-only: it works while no run writes it (DuckDB takes one writer, and a
writer's lock keeps readers of other processes out). The query is confined to the warehouse: DuckDB's external
access is off and its configuration locked, so no statement writes or reads a file (``COPY``, ``read_csv``,
``EXPORT``), attaches another database or installs or loads an extension. In production the query goes to
Snowflake, with the settings the platform uses (``SNOWFLAKE_*``), as the reader role of docs/snowflake.md. A
query the database refuses is one sentence, no traceback.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from delitos_platform.locations import data_dir

EXAMPLES = """examples:
  delitos sql "select * from gold.resumen_general"
  delitos sql "select mes, casos, casos_12m from gold.tendencia_mensual order by mes desc limit 12" --format csv
  DELITOS_ENV=prod delitos sql "select * from GOLD.RESUMEN_GENERAL"       # Snowflake, with the SNOWFLAKE_* settings
"""


# The warehouse's tables and nothing else: no file system, no network, no extension, and no ``SET`` undoing it.
CONFINED_TO_THE_WAREHOUSE = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}
# What a statement refused by that confinement tried, by its DuckDB statement type (anything else read a file).
REFUSED_ACTIONS = {
    "COPY": "copying to or from a file",
    "EXPORT": "exporting to files",
    "ATTACH": "attaching another database",
    "LOAD": "installing or loading an extension",
    "SET": "changing DuckDB's settings",
}


class QueryError(ValueError):
    """The warehouse refused the query, or could not be opened: one sentence."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``delitos sql``."""
    parser.add_argument("query", help='one SQL statement, e.g. "select * from gold.resumen_general"')
    parser.add_argument("--format", choices=("table", "csv"), default="table", help="how rows are printed")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=data_dir(),
        help="where the local DuckDB warehouse is (the default comes from $DELITOS_DATA_DIR, else data/)",
    )
    parser.epilog = EXAMPLES


def run(args: argparse.Namespace) -> int:
    """Run the query and print its rows; 0 on success (a refused query raises ``QueryError``)."""
    from delitos_platform.environment import current_environment

    if current_environment() == "prod":
        columns, rows = query_snowflake(args.query)
    else:
        from delitos_platform.locations import warehouse_path

        columns, rows = query_duckdb(
            warehouse_path({**os.environ, "DELITOS_DATA_DIR": str(args.data_dir.resolve())}), args.query
        )
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        print("\n".join(table_lines(columns, rows)))
    return 0


def query_duckdb(path: Path, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and rows of ``query`` on the DuckDB file at ``path``, opened read-only."""
    import duckdb

    if not path.is_file():
        raise QueryError(f"there is no warehouse at {path} yet: run `delitos demo` first (or give --data-dir)")
    try:
        connection = duckdb.connect(str(path), read_only=True, config=CONFINED_TO_THE_WAREHOUSE)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise QueryError(
                f"a run is writing the warehouse {path} (DuckDB takes one writer and then no reader): "
                "query again once it ends"
            ) from None
        raise QueryError(f"cannot open the warehouse {path}: {_sentence(error)}") from None
    try:
        cursor = connection.execute(query)
        columns = [column[0] for column in cursor.description or []]
        return columns, cursor.fetchall() if columns else []
    except duckdb.Error as error:
        if isinstance(error, duckdb.PermissionException) or "configuration has been locked" in str(error):
            action = refused_action(connection, query)
            raise QueryError(f"{action} is refused (a query reads the warehouse's tables only)") from None
        raise QueryError(f"DuckDB refused the query: {_sentence(error)}") from None
    finally:
        connection.close()


def refused_action(connection: Any, query: str) -> str:
    """What a statement refused by ``CONFINED_TO_THE_WAREHOUSE`` tried to do, in words."""
    kinds = [statement.type.name for statement in connection.extract_statements(query)]
    return next((REFUSED_ACTIONS[kind] for kind in kinds if kind in REFUSED_ACTIONS), "reading a file")


def query_snowflake(query: str, environ: Mapping[str, str] = os.environ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and rows of ``query`` on Snowflake, connected with the platform's ``SNOWFLAKE_*`` settings."""
    import snowflake.connector

    from delitos_platform.environment import SNOWFLAKE_SETTINGS, require_prod_settings

    require_prod_settings(environ)
    settings: dict[str, Any] = {name.removeprefix("SNOWFLAKE_").lower(): environ[name] for name in SNOWFLAKE_SETTINGS}
    if environ.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
        settings["private_key_file"] = environ["SNOWFLAKE_PRIVATE_KEY_PATH"]
        if environ.get("SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
            settings["private_key_file_pwd"] = environ["SNOWFLAKE_PRIVATE_KEY_PASSWORD"]
    else:
        settings["password"] = environ["SNOWFLAKE_PASSWORD"]
    try:
        with snowflake.connector.connect(**settings) as connection, connection.cursor() as cursor:
            cursor.execute(query)
            columns = [column[0] for column in cursor.description or []]
            return columns, list(cursor.fetchall()) if columns else []
    except snowflake.connector.Error as error:
        raise QueryError(f"Snowflake refused the query: {_sentence(error)}") from None


def table_lines(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns (numbers to the right), a rule under the header, and the row count."""
    cells = [[_cell(value) for value in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows) for i in range(len(columns))
    ]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        ).rstrip()

    count = f"({len(rows)} row{'' if len(rows) == 1 else 's'})"
    return [line(columns), "  ".join("-" * w for w in widths), *(line(row) for row in cells), count]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _sentence(error: Exception) -> str:
    """A database's message, its first line (DuckDB's next lines point into the query)."""
    lines = str(error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__
