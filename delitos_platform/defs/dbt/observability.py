"""What a Dagster user expects on a dbt asset's page: its row count, its column lineage, its checks per month.

Kept beside the dbt asset (``assets.py``), not in it:

- ``dagster/row_count`` on every materialization: ONE query once dbt has exited (``union all`` of each gold
  table's ``count(*)`` and a grouped count per monthly silver model, recorded on each month of the run);
- column lineage back to bronze (``dagster/column_lineage``): sqlglot over each model's compiled SQL, with the
  columns its parents declare in the dbt project (every silver and gold column is declared, with its type).
  dagster-dbt's ``fetch_column_metadata`` does the same, but through a dbt adapter built inside the step (seconds
  of dbt's imports, which this project's dbt resource skips for the daily path) and a query per parent. The
  lineage traced is kept by digest of the SQL, so a later run with the same SQL traces nothing;
- silver's row-level dbt tests check the run's window only (``where: "__delitos_window__"``, see
  ``dbt_project/macros/window_tests.sql``): such a test is a partitioned asset check, its result recorded on
  each month of the window (of a window of up to ``PER_MONTH_CHECK_MONTHS``). A test of the whole table
  (uniqueness across months) stays unpartitioned.
"""

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from delitos_platform.defs.policies import row_count
from delitos_platform.partitions import Window
from delitos_platform.warehouse.base import WarehouseResource

# The dbt test config that makes a test check only the run's window (replaced when the test executes).
WINDOW_TEST_PLACEHOLDER = "__delitos_window__"
# Dagster's entry for column-level lineage, drawn on the asset page's Column lineage tab.
COLUMN_LINEAGE_METADATA = "dagster/column_lineage"
# Traced lineage kept beside dbt's partial parse (dbt_project/target/), by digest of the SQL and columns.
LINEAGE_CACHE = "column_lineage.json"
LINEAGE_CACHE_ENTRIES = 200
# The tracing code is part of what a cached lineage was traced from: a fix to it traces every model again.
TRACER_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
# A range run of at most this many months records a partitioned check once per month (the sensor's and the
# schedule's runs, a year's revisions); a longer one (a backfill of the history) once for the range, as Dagster
# records a range run's check: each evaluation is a write to the event log, and 15 checks x 247 months added
# 411 s to the demo on SQLite (66 ms a write on 2 busy cores).
PER_MONTH_CHECK_MONTHS = 12
# The month column of every monthly silver model.
MONTH_COLUMN = "mes"


def windowed_check(
    spec: dg.AssetCheckSpec | None, test: Mapping[str, Any], months: dg.PartitionsDefinition | None
) -> dg.AssetCheckSpec | None:
    """dagster-dbt's check for a dbt test, partitioned like its model (``months``) when the test checks the run's
    window only."""
    if spec is None or months is None or test.get("config", {}).get("where") != WINDOW_TEST_PLACEHOLDER:
        return spec
    with warnings.catch_warnings():  # partitioned checks are a preview of Dagster 1.12.14+, used on purpose
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            spec.name,
            asset=spec.asset_key,
            description=spec.description,
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=spec.automation_condition,
            partitions_def=months,
        )


def with_column_lineage(events: Iterable[Any], manifest: Mapping[str, Any], target_path: Path) -> Iterator[Any]:
    """dbt's events, each model's output with its columns' lineage (when sqlglot can trace its SQL).

    A model's lineage is traced again only when its compiled SQL or the declared columns changed: the traced
    lineage is kept beside dbt's partial parse (``LINEAGE_CACHE``), so the daily run pays for none of it.
    """
    tables = declared_tables(manifest)
    dialect = manifest["metadata"]["adapter_type"]
    cache_file = target_path.parent / LINEAGE_CACHE
    cache = read_lineage_cache(cache_file)
    tables_digest = hashlib.sha256(f"{TRACER_DIGEST}{json.dumps(sorted(tables.items()))}".encode()).hexdigest()
    for event in events:
        unique_id = event.metadata.get("unique_id") if isinstance(event, dg.Output) else None
        node = manifest["nodes"].get(unique_id.value) if unique_id is not None else None
        compiled = target_path / "compiled" / node["package_name"] / node["original_file_path"] if node else None
        if node is None or compiled is None or not compiled.is_file():
            yield event
            continue
        sql = compiled.read_text()
        digest = hashlib.sha256(f"{tables_digest}\n{list(node['columns'])}\n{sql}".encode()).hexdigest()
        if digest not in cache:
            cache[digest] = lineage_as_json(column_lineage(sql, list(node["columns"]), tables, dialect))
        lineage = lineage_from_json(cache[digest])
        yield event.with_metadata({**event.metadata, COLUMN_LINEAGE_METADATA: lineage}) if lineage else event
    write_lineage_cache(cache_file, cache)


def lineage_as_json(lineage: dg.TableColumnLineage | None) -> dict[str, list[list[str]]]:
    """A model's lineage as JSON: column → [[asset key path…, column], …]."""
    if lineage is None:
        return {}
    return {
        column: [[*dep.asset_key.path, dep.column_name] for dep in deps]
        for column, deps in lineage.deps_by_column.items()
    }


def lineage_from_json(columns: Mapping[str, list[list[str]]]) -> dg.TableColumnLineage | None:
    """The lineage ``lineage_as_json`` wrote; ``None`` when no column was traced."""
    if not columns:
        return None
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=dg.AssetKey(dep[:-1]), column_name=dep[-1]) for dep in deps]
            for column, deps in columns.items()
        }
    )


def read_lineage_cache(path: Path) -> dict[str, Any]:
    """The traced lineage by digest of what it was traced from; empty when missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_lineage_cache(path: Path, cache: Mapping[str, Any]) -> None:
    """Keep the cache (atomically: a concurrent step reads the old one or the new one); at most its newest entries."""
    kept = dict(list(cache.items())[-LINEAGE_CACHE_ENTRIES:])
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        staging.write_text(json.dumps(kept))
        os.replace(staging, path)
    except OSError:
        staging.unlink(missing_ok=True)  # a read-only project: lineage is traced again next time


# Where an audited model is built and tested before it is published (dbt's ``delitos_staged_suffix`` macro): its
# compiled SQL reads an audited parent under this name, which is the parent's table all the same.
STAGED_SUFFIX = "__auditado"


def declared_tables(manifest: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    """Every model's and source's table, ``(schema, name)`` in lower case, with its declared columns and types.

    A model that declares no column (an ephemeral one, which is no table) is left out: sqlglot cannot qualify
    anything against a schema that holds a table without columns.
    """
    tables = {}
    for node in [*manifest["nodes"].values(), *manifest["sources"].values()]:
        if node["resource_type"] in ("model", "source") and node["columns"]:
            name = node.get("alias") or node.get("identifier") or node["name"]
            tables[(node["schema"].lower(), name.lower())] = {
                column.lower(): props.get("data_type") or "VARCHAR" for column, props in node["columns"].items()
            }
    return tables


def column_lineage(
    sql: str, columns: list[str], tables: Mapping[tuple[str, str], Mapping[str, str]], dialect: str
) -> dict[str, dg.TableColumnLineage]:
    """``dagster/column_lineage`` of one model: for each of its columns, the parents' columns it is computed from.

    A column sqlglot cannot trace is left out; none traced, no lineage.
    """
    import sqlglot
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    schema = {schema: {} for schema, _ in tables}
    for (table_schema, name), table_columns in tables.items():
        schema[table_schema][name] = schema[table_schema][name + STAGED_SUFFIX] = dict(table_columns)
    try:
        expression = qualify(
            sqlglot.parse_one(sql, dialect=dialect), schema=schema, dialect=dialect, validate_qualify_columns=False
        )
        scope = build_scope(expression)
    except sqlglot.errors.SqlglotError:
        return None
    deps_by_column = {}
    for column in columns:
        try:
            root = lineage(column.lower(), expression, schema=schema, dialect=dialect, scope=scope, copy=False)
        except sqlglot.errors.SqlglotError:
            continue  # a column computed from a table the project does not declare (bronze's load ledger)
        deps_by_column[column] = sorted(
            {
                dg.TableColumnDep(asset_key=dg.AssetKey(list(table)), column_name=name)
                for node in root.walk()
                if not node.downstream and isinstance(node.source, sqlglot.exp.Table)
                # Snowflake's dialect spells unquoted names in upper case; the project's are lower case.
                for table in [(node.source.db.lower(), node.source.name.lower().removesuffix(STAGED_SUFFIX))]
                for name in [node.name.split(".")[-1].strip('"').lower()]
                if table in tables
            },
            key=lambda dep: (dep.asset_key.to_user_string(), dep.column_name),
        )
    return dg.TableColumnLineage(deps_by_column=deps_by_column) if deps_by_column else None


def recorded_per_month(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, events: Iterable[Any]
) -> Iterator[Any]:
    """dbt's events with ``dagster/row_count`` added, and a partitioned check's result as one per month.

    Every built table is counted in ONE query; a monthly model's counts go to its months (``add_asset_metadata``
    per partition), the others' to their event.
    """
    events = list(events)
    window = Window.from_time_window(context.partition_time_window) if context.has_partition_key_range else None
    built = [context.asset_key_for_output(event.output_name) for event in events if isinstance(event, dg.Output)]
    monthly = {key for key in built if window and context.assets_def.specs_by_key[key].partitions_def is not None}
    counts = row_counts(warehouse, built, monthly, window)
    for (key, month), rows in counts.items():
        if month is not None:
            context.add_asset_metadata(row_count(rows), asset_key=key, partition_key=month)
    monthly_checks = {spec.key for spec in context.assets_def.check_specs if spec.partitions_def is not None}
    per_month_checks = window is not None and len(window.month_keys()) <= PER_MONTH_CHECK_MONTHS
    for event in events:
        if isinstance(event, dg.AssetCheckResult) and per_month_checks and check_key_of(event) in monthly_checks:
            yield from per_month(event, window)  # no step downstream waits on a dbt check's output
        elif (
            isinstance(event, dg.Output)
            and (table := (context.asset_key_for_output(event.output_name), None)) in counts
        ):
            yield event.with_metadata({**(event.metadata or {}), **row_count(counts[table])})
        else:
            yield event


def row_counts(
    warehouse: WarehouseResource, keys: list[dg.AssetKey], monthly: set[dg.AssetKey], window: Window | None
) -> dict[tuple[dg.AssetKey, str | None], int]:
    """Rows of each table, and of each month of ``window`` in the monthly ones (0 for a month without): one query.

    Keyed by (asset key, month partition key or ``None`` for the whole table).
    """
    if not keys:
        return {}
    selects = []
    for key in keys:
        if key in monthly and window is not None:
            start, end = window.start.isoformat(), window.end.isoformat()
            selects.append(
                f"select '{key.to_user_string()}' as asset, {MONTH_COLUMN} as month, count(*) as row_count "
                f"from {table_of(key)} where {MONTH_COLUMN} >= date '{start}' and {MONTH_COLUMN} < date '{end}' "
                f"group by {MONTH_COLUMN}"
            )
        else:
            selects.append(
                f"select '{key.to_user_string()}' as asset, cast(null as date) as month, count(*) as row_count "
                f"from {table_of(key)}"
            )
    by_asset = {key.to_user_string(): key for key in keys}
    counts: dict[tuple[dg.AssetKey, str | None], int] = {}
    for key in keys:
        for month in window.month_keys() if key in monthly and window is not None else [None]:
            counts[(key, month)] = 0
    for asset, month, rows in warehouse.fetch(" union all ".join(selects)):
        counts[(by_asset[asset], month.isoformat()[:10] if month is not None else None)] = int(rows)
    return counts


def check_key_of(result: dg.AssetCheckResult) -> dg.AssetCheckKey | None:
    """The check a dagster-dbt result is for (it always names its asset and check)."""
    if result.asset_key is None or result.check_name is None:
        return None
    return dg.AssetCheckKey(result.asset_key, result.check_name)


def per_month(result: dg.AssetCheckResult, window: Window) -> Iterator[dg.AssetCheckEvaluation]:
    """A check of the window's rows, as what it says of each month: one evaluation per partition."""
    key = check_key_of(result)
    assert key is not None
    checked = f"checked on the run's window {window.start.isoformat()} → {window.end.isoformat()}"
    description = f"{result.description}; {checked}" if result.description else checked
    for month in window.month_keys():
        yield dg.AssetCheckEvaluation(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=result.passed,
            metadata=dict(result.metadata or {}),
            severity=result.severity,
            description=description,
            partition=month,
        )


def table_of(key: dg.AssetKey) -> str:
    """A dbt model's table from its asset key (``silver/stg_delitos`` → ``silver.stg_delitos``)."""
    schema, name = key.path
    return f"{schema}.{name}"
