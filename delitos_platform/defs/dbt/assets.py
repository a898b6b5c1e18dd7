"""dbt models as assets: silver and gold built by ONE ``dbt build`` per run; dbt tests as asset checks.

One ``@dbt_assets`` whose silver model is monthly, like the layers below it, and whose gold tables are not
partitioned. ``silver.stg_delitos`` is incremental: a run replaces exactly its window (delete + insert). The
gold tables summarize every month and are rebuilt whole from silver in the same invocation, so a range run
records one materialization per gold table, not one per month. Re-syncing a month is one dbt invocation, not
two: dbt's start-up costs seconds. dbt's ``build`` order makes an error-severity test block everything
downstream of it.
"""

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from delitos_platform import charts
from delitos_platform.charts import (
    ARTICLES_SQL,
    CRIMES_SQL,
    DEPARTMENTS_SQL,
    REVISIONS_SQL,
    TREND_SQL,
    articles_markdown,
    crimes_markdown,
    latest_year_departments_markdown,
    revisions_markdown,
    trend_markdown,
)
from delitos_platform.defs.dbt.observability import recorded_per_month, windowed_check, with_column_lineage
from delitos_platform.defs.family import FAMILY, FamilyDataset
from delitos_platform.defs.policies import MONTHLY_FRESHNESS, hold_warehouse
from delitos_platform.family_dbt import silver_model
from delitos_platform.in_process_dbt import extra_environment
from delitos_platform.lake.dataset import DELITOS
from delitos_platform.lifeline import end_step_with_its_run, guarded
from delitos_platform.partitions import Window
from delitos_platform.queue import WRITES_WAREHOUSE_TAGS
from delitos_platform.transform import ANSI_CODES, dbt_errors, delitos_dbt_project, manifest_for_definitions
from delitos_platform.warehouse.base import WarehouseResource

# 4v6r-wu98's silver and gold, and the cross-crime gold (models/family/gold/). Each family dataset's silver is a dbt
# asset of its own (``family_silver``), monthly on its own calendar: Dagster runs a multi-asset's partitioned
# members on one calendar at a time, and 4v6r-wu98's daily run stays one invocation.
MODELS = "fqn:delitos.silver fqn:delitos.gold fqn:delitos.family.gold"
# dbt's run_results statuses of a node that went wrong: a model or seed error, a failing test.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
# Materializations that build into a staged relation and publish only once its tests passed (macros/audit_publish.sql).
AUDITED = frozenset({"delitos_audited_table", "delitos_audited_incremental", "delitos_audited_window"})
# Each family dataset's silver model: monthly on its dataset's calendar, in its dataset's group (defs/family.py).
FAMILY_SILVER = {silver_model(member.dataset.entry): member.dataset for member in FAMILY}
# The cross-crime gold's group: beside 4v6r-wu98's gold, not in it (its lineage reads every dataset's silver).
CROSS_CRIME_GROUP = "cross_crime"
# Layers in data-flow order, to name them as they are built.
LAYERS = ("silver", "gold")
# A row of the table dbt prints when a model breaks its contract (header and rule rows do not match):
# | column_name | definition_type | contract_type | mismatch_reason |
CONTRACT_ROW = re.compile(r"^\|\s*(?!column_name\b)(\w+)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|$")
# A test runs only when every model it reads is built in the same invocation or upstream of one that is
# ("buildable"), not when any one is (dbt's "eager" default): gold's `matches_totals` tests read silver too, and a
# run of silver alone on a fresh warehouse must not test gold tables it never built; a run of the cross-crime gold
# tests it against the (ephemeral) union of every silver it read. A run of everything selects every test either way.
INDIRECT_SELECTION = {"DBT_INDIRECT_SELECTION": "buildable"}
# Longest reason quoted from dbt in the one-line failure (a database error can carry a whole query).
REASON_CHARACTERS = 200


def _layer(node: Mapping[str, Any]) -> str:
    """The layer of a dbt node: the schema it lands in (silver when the project sets none)."""
    return node.get("config", {}).get("schema") or LAYERS[0]


def _layer_order(node: Mapping[str, Any]) -> int:
    layer = _layer(node)
    return LAYERS.index(layer) if layer in LAYERS else len(LAYERS)


class DelitosDbtTranslator(DagsterDbtTranslator):
    """Models are keyed and grouped by the schema they land in: ``silver/stg_delitos``, ``gold/...``; a family
    dataset's silver (``silver/stg_homicidios``) is in its dataset's group, monthly from its first month, and the
    cross-crime gold (``gold/casos_por_municipio_mes``) in a group of its own.

    The catalog shows a model's dbt description alone (dagster-dbt's default appends the raw SQL to it); the SQL
    is on the asset's page, as ``sql`` metadata and as a code reference to the model's file.
    """

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The model's description from its ``schema.yml``."""
        return (dbt_resource_props.get("description") or "").strip()

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        """dagster-dbt's metadata (column schema, table name), the model's SQL as a fenced block and its file.

        The file is referenced here rather than by dagster-dbt's ``enable_code_references``, which needs the
        project passed to ``@dbt_assets``, and dbt then always runs in that project, whatever the resource says.
        """
        metadata = dict(super().get_metadata(dbt_resource_props))
        sql = (dbt_resource_props.get("raw_code") or "").strip()
        if sql:
            metadata["sql"] = dg.MetadataValue.md(f"```sql\n{sql}\n```")
        if dbt_resource_props.get("original_file_path"):
            model_file = delitos_dbt_project.project_dir / dbt_resource_props["original_file_path"]
            metadata["dagster/code_references"] = dg.CodeReferencesMetadataValue(
                code_references=[dg.LocalFileCodeReference(file_path=str(model_file))]
            )
        return metadata

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        """The default spec, with the model's schema as key prefix and group."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] != "model":
            return spec
        layer = _layer(props)
        dataset = FAMILY_SILVER.get(props["name"], DELITOS) if layer == "silver" else None
        if dataset not in (None, DELITOS):
            group = dataset.slug
        else:
            group = CROSS_CRIME_GROUP if props["fqn"][:2] == ["delitos", "family"] else layer
        return spec.replace_attributes(
            key=dg.AssetKey([layer, props["name"]]),
            group_name=group,
            owners=["team:analytics-engineering"],
            freshness_policy=MONTHLY_FRESHNESS,
            partitions_def=dataset.partitions if dataset else None,
        )

    def get_asset_check_spec(
        self, asset_spec: dg.AssetSpec, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetCheckSpec | None:
        """dagster-dbt's check, partitioned by month where the dbt test checks the run's window."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        return windowed_check(spec, self.get_resource_props(manifest, unique_id), asset_spec.partitions_def)


def window_environment(window: Window) -> dict[str, str]:
    """The run's window for dbt, half-open ``[start, end)`` as ISO dates (read by the ``delitos_window`` macro).

    Passed in the environment, not ``--vars``: dbt re-parses the whole project whenever ``--vars`` change.
    """
    return {"DELITOS_DBT_WINDOW_START": window.start.isoformat(), "DELITOS_DBT_WINDOW_END": window.end.isoformat()}


TRANSLATOR = DelitosDbtTranslator()
delitos_dbt_project.prepare_if_dev()  # under `dagster dev` / `dg`: parsed again when the project changed
MANIFEST = manifest_for_definitions(delitos_dbt_project)  # else prepared beforehand (`delitos prepare`), not here


@dbt_assets(
    manifest=MANIFEST,
    select=MODELS,
    name="dbt_models",
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
    op_tags=WRITES_WAREHOUSE_TAGS,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """``silver.stg_delitos`` for exactly the run's months, then every gold table, each with its tests.

    A run without a partition can only have selected gold (silver is monthly): it reads no window. The trend,
    article, department, revision and cross-crime tables also get a chart the UI shows on their page
    (``GOLD_CHARTS``).
    """
    yield from build_selected(context, dbt, warehouse)


def family_silver(member: FamilyDataset) -> dg.AssetsDefinition:
    """A family dataset's silver model (``silver/stg_<slug>``, written from its entry) as its own dbt asset."""
    model = silver_model(member.dataset.entry)

    @dbt_assets(
        manifest=MANIFEST,
        select=model,
        name=f"dbt_{member.dataset.slug}",
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=TRANSLATOR,
        op_tags=WRITES_WAREHOUSE_TAGS,
    )
    def silver(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource) -> Iterator[Any]:
        yield from build_selected(context, dbt, warehouse)

    silver.__doc__ = f"``silver.{model}`` ({member.dataset.entry.title}) for exactly the run's months, with its tests."
    return silver


FAMILY_SILVER_ASSETS = [family_silver(member) for member in FAMILY]


def build_selected(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """ONE ``dbt build`` of the step's selected models for the run's months, their events with row counts, per-month
    checks and charts.

    Events are held until dbt exits: an embedded DuckDB file can be read only once dbt has let go of it.
    """
    end_step_with_its_run()
    hold_warehouse(context, warehouse)
    partitioned = context.has_partition_key_range
    window = window_environment(Window.from_time_window(context.partition_time_window)) if partitioned else {}
    events = list(run_dbt(dbt, ["build"], context, window))
    for event in recorded_per_month(context, warehouse, events):
        key = _asset_key_of(context, event)
        charted = key in GOLD_CHARTS
        yield event.with_metadata({**(event.metadata or {}), **drawn(context, key, warehouse)}) if charted else event


# Each chart's entry says what it was drawn from: a rebuild that left its rows (and the drawing code) as they were
# carries the previous picture over instead of drawing it again (matplotlib costs about half a second a chart).
CHART_DIGEST = "chart_digest"
CHARTS_CODE = hashlib.sha256(Path(charts.__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class GoldChart:
    """A chart on a gold table's page: its metadata entry, the one query it is drawn from, and how it is drawn."""

    entry: str
    sql: str
    draw: Callable[[Sequence[tuple]], str]

    def metadata(
        self, instance: dg.DagsterInstance, key: dg.AssetKey, warehouse: WarehouseResource
    ) -> dict[str, dg.MetadataValue]:
        """The chart of the table as it is now, drawn only when its rows differ from the last materialization's."""
        rows = warehouse.fetch(self.sql)
        digest = dg.MetadataValue.text(hashlib.sha256(f"{CHARTS_CODE}{rows!r}".encode()).hexdigest())
        previous = _latest_metadata(instance, key)
        chart = previous.get(self.entry) if previous.get(CHART_DIGEST) == digest else None
        return {self.entry: chart or dg.MetadataValue.md(self.draw(rows)), CHART_DIGEST: digest}


def drawn(context: dg.AssetExecutionContext, key: dg.AssetKey, warehouse: WarehouseResource) -> dict[str, Any]:
    """A gold page's chart; one that cannot be drawn is a warning, never a failure: its table is built and tested."""
    chart = GOLD_CHARTS[key]
    try:
        return chart.metadata(context.instance, key, warehouse)
    except Exception as error:  # a view of data already built and tested: nothing in it may fail the run
        reason = f"{type(error).__name__}: {error}"
        context.log.warning(
            f"{key.to_user_string()}'s {chart.entry} chart could not be drawn (the table is built): {reason}"
        )
        return {"chart": dg.MetadataValue.text(f"not drawn: {reason}")}


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> Mapping[str, Any]:
    """The metadata of the asset's latest materialization; empty when it has none."""
    latest = instance.get_latest_materialization_event(key)
    return latest.asset_materialization.metadata if latest and latest.asset_materialization else {}


# Gold tables whose page shows a chart.
GOLD_CHARTS = {
    dg.AssetKey(["gold", "tendencia_mensual"]): GoldChart("monthly_trend", TREND_SQL, trend_markdown),
    dg.AssetKey(["gold", "delitos_por_mes"]): GoldChart("cases_by_article", ARTICLES_SQL, articles_markdown),
    dg.AssetKey(["gold", "delitos_por_departamento"]): GoldChart(
        "departments", DEPARTMENTS_SQL, latest_year_departments_markdown
    ),
    dg.AssetKey(["gold", "revisiones_por_mes"]): GoldChart(
        "first_published_vs_current", REVISIONS_SQL, revisions_markdown
    ),
    dg.AssetKey(["gold", "resumen_por_delito"]): GoldChart("crimes_side_by_side", CRIMES_SQL, crimes_markdown),
}


def _asset_key_of(context: dg.AssetExecutionContext, event: Any) -> dg.AssetKey | None:
    if isinstance(event, dg.Output):
        return context.asset_key_for_output(event.output_name)
    return getattr(event, "asset_key", None) if isinstance(event, dg.MaterializeResult) else None


def run_dbt(
    dbt: DbtCliResource,
    args: list[str],
    context: dg.AssetExecutionContext,
    environment: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """Stream a dbt command's events; a failure becomes one readable ``dg.Failure`` (dbt's own errors)."""
    # dagster-dbt reads the selection setting and hands dbt a copy of os.environ when it starts it.
    with extra_environment({**INDIRECT_SELECTION, **(environment or {})}):
        invocation = dbt.cli(args, context=context, raise_on_error=False)
    with guarded(invocation.process):  # dbt is interrupted if this step dies before it ends
        yield from with_column_lineage(invocation.stream(), invocation.manifest, Path(invocation.target_path))
    error = invocation.get_error()
    if error is not None:
        summary = failed_nodes_summary(_run_results(invocation), invocation.manifest) or dbt_errors(str(error))
        raise dg.Failure(description=f"dbt {args[0]} failed: {summary}", allow_retries=False)
    keep_partial_parse(Path(invocation.target_path), Path(invocation.project_dir))


def _run_results(invocation: Any) -> Mapping[str, Any]:
    """The invocation's ``run_results.json``; empty when dbt stopped before running any node."""
    try:
        return invocation.get_artifact("run_results.json")
    except OSError:
        return {}


def failed_nodes_summary(run_results: Mapping[str, Any], manifest: Mapping[str, Any]) -> str | None:
    """One sentence: which nodes failed and why, and which layers dbt's ``build`` order left unbuilt.

    E.g. ``silver/stg_delitos failed (Conversion Error: ...), so gold was not rebuilt (5 models skipped)``.
    None when no node failed (dbt stopped earlier, e.g. a compilation error): dbt's log says more then.
    """
    results = run_results.get("results", [])
    failed = [result for result in results if result["status"] in FAILED_STATUSES]
    if not failed:
        return None
    nodes = manifest.get("nodes", {})
    names = ", ".join(_node_name(nodes.get(result["unique_id"], {}), result["unique_id"]) for result in failed)
    sentence = f"{names} failed ({_reason(failed[0].get('message') or '')})"
    skipped = [
        nodes.get(result["unique_id"], {})
        for result in results
        if result["status"] == "skipped" and result["unique_id"].startswith("model.")
    ]
    if skipped:
        layers = list(dict.fromkeys(_layer(node) for node in sorted(skipped, key=_layer_order)))
        verb = "was" if len(layers) == 1 else "were"
        sentence += f", so {' and '.join(layers)} {verb} not rebuilt ({len(skipped)} models skipped)"
    kept = kept_models(failed, nodes)
    if kept:
        sentence += f"; {', '.join(kept)} kept {'its' if len(kept) == 1 else 'their'} previous contents (not published)"
    return sentence


def kept_models(failed: list[Mapping[str, Any]], nodes: Mapping[str, Any]) -> list[str]:
    """The audited models a failed test tested: built, not published (the previous table stays).

    A generic test tests the model it is declared on (``attached_node``), a singular one every model it reads: the
    rule of ``delitos_tests_model`` in macros/audit_publish.sql, which decides what is published.
    """
    tested = [
        nodes[unique_id]
        for result in failed
        if result["unique_id"].startswith("test.")
        for unique_id in _tested_models(nodes.get(result["unique_id"], {}))
        if nodes.get(unique_id, {}).get("config", {}).get("materialized") in AUDITED
    ]
    return list(dict.fromkeys(_node_name(node, node["unique_id"]) for node in tested))


def _tested_models(test: Mapping[str, Any]) -> list[str]:
    attached = test.get("attached_node")
    return [attached] if attached else test.get("depends_on", {}).get("nodes", [])


def _node_name(node: Mapping[str, Any], unique_id: str) -> str:
    """A model by its asset key (``silver/stg_delitos``), any other node by its dbt name."""
    if node.get("resource_type") == "model":
        return f"{_layer(node)}/{node['name']}"
    return node.get("name") or unique_id


def _reason(message: str) -> str:
    """The first line of dbt's message that says what went wrong, not which node it was in; for a broken
    contract, with the columns that broke it."""
    lines = [ANSI_CODES.sub("", line).strip() for line in message.splitlines()]
    differences = [_contract_difference(*row.groups()) for row in map(CONTRACT_ROW.match, lines) if row]
    lines = [line for line in lines if line and not re.match(r"^\w+ Error in \w+ ", line)]
    reason = lines[0] if lines else "no message"
    if differences:
        reason = f"{reason.rstrip('.')}: {'; '.join(differences)}"
    return reason if len(reason) <= REASON_CHARACTERS else reason[: REASON_CHARACTERS - 1] + "…"


def _contract_difference(column: str, built: str, contract: str, mismatch: str) -> str:
    """One row of dbt's table of a contract's differences, as words."""
    if mismatch == "data type mismatch":
        return f"{column} is {built}, the contract says {contract}"
    if mismatch == "missing in definition":
        return f"{column} ({contract}) is missing from the model"
    if mismatch == "missing in contract":
        return f"{column} ({built}) is not in the contract"
    return f"{column}: {mismatch}"


def keep_partial_parse(invocation_target: Path, project_dir: Path) -> None:
    """Make this invocation's parse the one the next invocation starts from.

    dagster-dbt gives every invocation a target folder of its own, seeded with the project's
    ``partial_parse.msgpack``; when that one was parsed with another profile (another warehouse path), every
    run re-parses the whole project. Keeping the latest parse avoids that after the first run.
    """
    parsed = invocation_target / "partial_parse.msgpack"
    if not parsed.exists():
        return
    kept = project_dir / "target" / "partial_parse.msgpack"  # where dagster-dbt seeds each invocation from
    kept.parent.mkdir(parents=True, exist_ok=True)
    staging = kept.with_name(f".{kept.name}.{os.getpid()}")
    shutil.copyfile(parsed, staging)
    os.replace(staging, kept)  # atomic: a concurrent invocation reads the old parse or the new one
