"""The whole platform, side by side in one run: a cold full backfill vs the raw page fetch vs dlt → DuckDB.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/backfill_platform.py [--skip-dlt]

Against one emulator subprocess serving the national-scale snapshot (≈492k rows, 2006-05 → 2026-05):

* ``raw``: every page fetched with a plain HTTP client, bytes kept and dropped (the floor);
* ``backfill``: ``delitos_main_job`` (source → lake → bronze → one ``dbt build`` of silver and gold, dbt tests
  included) over every month as ONE Dagster run on the embedded default, in a fresh data dir and warehouse
  with an ephemeral instance, with the deployment's Dagster settings (docs/operations.md); then, in the same
  process and warehouse, the re-sync of one month (``resync``), and the same re-sync again in a new interpreter
  (``resync-new``), as the sensor's runs are: nothing of dbt warmed up by an earlier invocation;
* ``dlt``: dlt's rest_api source loading the same rows into DuckDB.

The revision history's share of both runs is read from each run's dbt ``run_results.json``: the time of the
history's nodes (its models and their tests), summed — an upper bound on what they add to the run, since dbt
runs nodes four at a time. Bronze's load ledger (one small insert per month, in the load's transaction) is
inside the bronze step and not counted apart.

Each contender runs in a fresh interpreter so that its peak RSS (VmHWM) is its own. dbt runs inside the run's
own process (dbtRunner), so the contender's peak RSS includes it; a dbt subprocess, if any, is sampled with psutil
while each run lasts and its peak RSS reported apart. dbt's invocations are counted from their target folders.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_arguments, emulator, national_snapshot, peak_rss_mb, report_contender, run_contender
from extract_lake import dlt_rest_api, raw_fetch

from delitos_platform.partitions import range_tags

FIRST, LAST, RESYNC_MONTH = "2006-05-01", "2026-05-01", "2019-03-01"
NON_DBT_STEPS, DBT_STEPS = ("lake__delitos", "bronze__delitos"), ("dbt_models",)
# The revision history's dbt models: its share of a run (tests are named after the model they test; the column
# it adds to gold.tendencia_mensual is checked by that table's one column_rules test, not counted apart).
HISTORY_NODE_NAMES = ("delitos_versiones", "delitos_historial", "revisiones_por_mes", "madurez")


class DbtSampler:
    """Samples this process's children while a run lasts: the dbt commands it started and their peak RSS.

    dbt's peak is its own VmHWM (the kernel's high-water mark), read until shortly before it exits: only the
    growth in its last sampling interval can be missed. ``getrusage(RUSAGE_CHILDREN)`` is no use here: a forked
    child inherits the parent's high-water mark, so it reports the Dagster process's own peak.
    """

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._me, self._interval, self._stop = psutil.Process(), interval, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.commands: dict[int, str] = {}
        self.peak_rss: dict[int, float] = {}
        self.lifetime: dict[int, tuple[float, float]] = {}  # started, last seen alive (epoch seconds)
        self._others: set[int] = set()

    def __enter__(self) -> DbtSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            for child in self._me.children(recursive=True):
                if child.pid not in self._others:
                    self._record(child)

    def _record(self, child: Any) -> None:
        import psutil

        try:
            if child.pid not in self.commands:
                command = dbt_command(child.cmdline())
                if command is None:
                    self._others.add(child.pid)
                    return
                self.commands[child.pid] = command
            self.peak_rss[child.pid] = peak_rss_mb(child.pid)
            self.lifetime[child.pid] = (child.create_time(), time.time())
        except (psutil.Error, OSError, AttributeError):  # it ended between the listing and the reading
            pass

    def figures(self) -> dict[str, Any]:
        """dbt commands seen as processes, their largest peak RSS in MB and how long the dbt processes lived in
        all (to within the sampling interval); none when dbt runs inside the run's own process."""
        commands = list(self.commands.values())
        return {
            "dbt_commands": commands,
            "dbt_peak_rss_mb": max(self.peak_rss.values(), default=0.0),
            "dbt_process_seconds": sum(last - started for started, last in self.lifetime.values()),
        }


def dbt_command(cmdline: list[str]) -> str | None:
    """``build``, ``--version``…: the first argument after the ``dbt`` executable, or None for another program."""
    for position, part in enumerate(cmdline):
        if Path(part).name == "dbt":
            return cmdline[position + 1] if position + 1 < len(cmdline) else ""
    return None


def use_embedded_platform(url: str, data_dir: Path) -> None:
    """Point the platform's settings (read by ``environment.build_resources`` and dbt's profile) at ``data_dir``."""
    os.environ.update(
        {
            "DELITOS_ENV": "local",
            "SOCRATA_URL": url,
            "DELITOS_DATA_DIR": str(data_dir),
            "DELITOS_WAREHOUSE_PATH": str(data_dir / "warehouse.duckdb"),
            "DO_NOT_TRACK": "1",
            # The deployment's setting (docs/operations.md): one "planned" event per asset for a range run.
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        }
    )


def run_main_job(instance: Any, first: str, last: str) -> dict[str, Any]:
    """``delitos_main_job`` over ``first`` → ``last`` as one run: seconds, per-step seconds, dbt processes."""
    from delitos_platform.transform import prepare_dbt

    prepare_dbt()  # the definitions are built from dbt's manifest and never parse dbt themselves
    from delitos_platform.definitions import defs

    job = defs().resolve_job_def("delitos_main_job")
    tags = range_tags(first, last)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    with DbtSampler() as sampler:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, tags=tags, run_config=quiet, raise_on_error=False)
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"the run {first} → {last} failed: {failed_steps(result)}")
    steps = step_seconds(instance, result.run_id)
    figures = {"seconds": seconds, "steps": steps, "history_seconds": history_seconds(result.run_id)}
    return figures | sampler.figures() | dbt_invocations(result.run_id)


def dbt_invocations(run_id: str) -> dict[str, Any]:
    """How many times the run invoked dbt (in a subprocess or in its own process: dagster-dbt gives every
    invocation a target folder named after the step and the run id's first 7 characters) and the seconds dbt's
    own clock gave them (``run_results.json``'s elapsed time: parse and nodes, without a process start)."""
    from delitos_platform.transform import DBT_PROJECT_DIR

    results = list((DBT_PROJECT_DIR / "target").glob(f"*-{run_id[:7]}-*/run_results.json"))
    elapsed = sum(json.loads(path.read_text())["elapsed_time"] for path in results)
    return {"dbt_invocations": len(results), "dbt_run_seconds": elapsed}


def history_seconds(run_id: str) -> dict[str, float]:
    """What the revision history's dbt nodes took in the run's one dbt invocation: their times summed (an upper
    bound on what they add: dbt runs four nodes at once) and the time during which only they were running."""
    from delitos_platform.transform import DBT_PROJECT_DIR

    # dagster-dbt gives each invocation a target folder named after the step and the run id's first 7 characters.
    [results] = (DBT_PROJECT_DIR / "target").glob(f"dbt_models-{run_id[:7]}-*/run_results.json")
    nodes = json.loads(results.read_text())["results"]
    history = [node for node in nodes if is_history_node(node["unique_id"])]
    others = [node for node in nodes if not is_history_node(node["unique_id"])]
    alone = covered(spans(history)) - covered(spans(history), within=spans(others))
    return {"summed": sum(node["execution_time"] for node in history), "alone": alone}


def spans(nodes: list[dict]) -> list[tuple[float, float]]:
    """The (start, end) epoch seconds of each node's execution."""
    from datetime import datetime

    found = []
    for node in nodes:
        for timing in node["timing"]:
            if timing["name"] == "execute" and timing.get("started_at") and timing.get("completed_at"):
                start, end = (datetime.fromisoformat(timing[key]).timestamp() for key in ("started_at", "completed_at"))
                found.append((start, end))
    return found


def covered(intervals: list[tuple[float, float]], within: list[tuple[float, float]] | None = None) -> float:
    """Seconds covered by the union of ``intervals`` (only the part inside the union of ``within``, if given)."""
    mine = union(intervals)
    if within is None:
        return sum(end - start for start, end in mine)
    return sum(max(0.0, min(end, e) - max(start, s)) for start, end in mine for s, e in union(within))


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping intervals merged, in order."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def is_history_node(unique_id: str) -> bool:
    """A model of the revision history, or a test of one (dbt names tests after the model they test)."""
    _, _, name = unique_id.partition(".delitos.")
    return any(model in name for model in HISTORY_NODE_NAMES)


def failed_steps(result: Any) -> str:
    """The failed steps of a run and their reasons, on one line."""
    failures = [event for event in result.all_events if event.is_step_failure]
    return "; ".join(f"{event.step_key}: {event.step_failure_data.error}" for event in failures) or "no step failed"


def step_seconds(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS of every step, read from the run's events."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    started, seconds = {}, {}
    for entry in instance.all_logs(run_id, of_type=kinds):
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            started[entry.step_key] = entry.timestamp
        else:
            seconds[entry.step_key] = entry.timestamp - started[entry.step_key]
    return seconds


def warehouse_rows(data_dir: Path) -> dict[str, int]:
    """Rows of bronze and silver in the warehouse, to show the backfill loaded everything."""
    import duckdb

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as warehouse:
        tables = {"bronze": "bronze.delitos", "silver": "silver.stg_delitos"}
        return {
            layer: warehouse.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for layer, table in tables.items()
        }


def backfill(url: str) -> dict:
    """A cold full backfill as one run, then the re-sync of one month over the same data dir and warehouse."""
    import dagster as dg

    with tempfile.TemporaryDirectory() as work, dg.DagsterInstance.ephemeral() as instance:
        data_dir = Path(work)
        use_embedded_platform(url, data_dir)
        figures = run_main_job(instance, FIRST, LAST)
        rows = warehouse_rows(data_dir)
        figures |= {
            "dagster_runs": instance.get_runs_count(),
            "run_peak_rss_mb": peak_rss_mb(),
            "rows": rows["bronze"],
            "silver_rows": rows["silver"],
        }
        figures["resync"] = run_main_job(instance, RESYNC_MONTH, RESYNC_MONTH)
        # As the sensor's runs are: in a new process, where no dbt ran before (nothing of it warmed up).
        figures["resync_new_process"] = run_contender(Path(__file__), "resync", ["--url", url], {DATA_DIR: work})
    return figures


def resync_in_a_new_process(url: str) -> dict:
    """The re-sync of one month over the backfill's data dir (``DATA_DIR``), in this fresh interpreter: the
    definitions loaded before the clock starts, as for the backfill, and an instance of its own (so every chart
    is drawn: none has an earlier materialization to carry over)."""
    import dagster as dg

    use_embedded_platform(url, Path(os.environ[DATA_DIR]))
    with dg.DagsterInstance.ephemeral() as instance:
        return {**run_main_job(instance, RESYNC_MONTH, RESYNC_MONTH), "rows": "1 month"}


# The backfill's data dir, for the re-sync it runs in a new process.
DATA_DIR = "DELITOS_BENCHMARK_DATA_DIR"
CONTENDERS = {"raw": raw_fetch, "backfill": backfill, "resync": resync_in_a_new_process, "dlt": dlt_rest_api}


def main() -> None:
    """Run the contenders one after the other against one emulator and print the figures side by side."""
    args = benchmark_arguments(__doc__, CONTENDERS)
    if args.contender:
        report_contender(CONTENDERS[args.contender], args.url)
        return
    names = ["raw", "backfill"] + ([] if args.skip_dlt else ["dlt"])
    missing = [module for module in ("psutil", *(["dlt"] if "dlt" in names else [])) if not find_module(module)]
    if missing:
        print(
            f"missing: {', '.join(missing)}; pip install -e '.[bench]' (or --skip-dlt for dlt alone)", file=sys.stderr
        )
        sys.exit(2)
    snapshot = national_snapshot()
    with emulator(snapshot) as url:
        run_contender(Path(__file__), "raw", ["--url", url])  # warm the server's caches once
        results = {name: run_contender(Path(__file__), name, ["--url", url]) for name in names}
    print_table(results)
    print_targets(results)


def find_module(name: str) -> bool:
    """Whether a module can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None


def print_table(results: dict[str, dict]) -> None:
    """One line per contender, the re-sync as a fourth, then the steps of both runs and a few notes."""
    run = results["backfill"]
    rows = {
        **results,
        "backfill": {**run, "peak_rss_mb": run["run_peak_rss_mb"]},
        "resync": {**run["resync"], "rows": "1 month", "peak_rss_mb": None},
        "resync-new": run["resync_new_process"],
    }
    print(f"{'contender':<10}{'rows':>10}{'seconds':>10}{'peak RSS MB':>14}{'dbt peak RSS MB':>18}")
    for name, figures in rows.items():
        count = f"{figures['rows']:,}" if isinstance(figures["rows"], int) else figures["rows"]
        rss, dbt = figures["peak_rss_mb"], figures.get("dbt_peak_rss_mb")
        print(f"{name:<10}{count:>10}{figures['seconds']:>10.2f}{mb(rss):>14}{mb(dbt):>18}")
    print(f"\n{'step':<22}{'backfill s':>12}{'resync s':>10}")
    for step in (*NON_DBT_STEPS, *DBT_STEPS):
        print(f"{step:<22}{run['steps'][step]:>12.2f}{run['resync']['steps'][step]:>10.2f}")
    dbt_itself = [figures["dbt_process_seconds"] for figures in (run, run["resync"])]
    print(f"{'  of it the dbt process':<22}{dbt_itself[0]:>12.2f}{dbt_itself[1]:>10.2f}")
    dbt_run = [figures["dbt_run_seconds"] for figures in (run, run["resync"])]
    print(f"{'  of it dbt, own clock':<22}{dbt_run[0]:>12.2f}{dbt_run[1]:>10.2f}")
    history = [figures["history_seconds"] for figures in (run, run["resync"])]
    print(f"{'  history, summed':<22}{history[0]['summed']:>12.2f}{history[1]['summed']:>10.2f}")
    print(f"{'  history, alone':<22}{history[0]['alone']:>12.2f}{history[1]['alone']:>10.2f}")
    overhead = [figures["seconds"] - sum(figures["steps"].values()) for figures in (run, run["resync"])]
    print(f"{'(outside the steps)':<22}{overhead[0]:>12.2f}{overhead[1]:>10.2f}")
    print_notes(run)


def mb(value: float | None) -> str:
    """A size in MB, or a dash when it does not apply."""
    return "—" if value is None else f"{value:.0f}"


def print_notes(run: dict) -> None:
    """What the backfill left behind and which dbt commands each run started."""
    print(
        f"\nbackfill: {run['dagster_runs']} Dagster run in the instance after it; "
        f"bronze {run['rows']:,} / silver {run['silver_rows']:,} rows; run process peak RSS excludes dbt's "
        f"subprocesses, if any (peak RSS of the contender incl. the re-sync: {run['peak_rss_mb']:.0f} MB)"
    )
    for name, figures in (("backfill", run), ("resync", run["resync"])):
        processes = ", ".join(f"dbt {command}" for command in figures["dbt_commands"]) or "none (dbt in-process)"
        print(f"dbt invocations of the {name}: {figures['dbt_invocations']}; dbt subprocesses: {processes}")


def print_targets(results: dict[str, dict]) -> None:
    """The targets, each PASS or MISS with the figures it is decided on: issue 21's first, then the earlier ones."""
    run = results["backfill"]
    print()
    print(target("re-sync one month ≤ 1.5x the raw fetch of everything", raw_ratio_target(run["resync"], results, 1.5)))
    fresh = run["resync_new_process"]
    print(target("  the same in a new process (resync-new)", raw_ratio_target(fresh, results, 1.5)))
    print(target("cold full backfill ≤ 7x the raw fetch", raw_ratio_target(run, results, 7)))
    print(target("Dagster's time outside the steps ≤ 1 s", outside_target(run)))
    print(target("whole backfill ≤ raw fetch + 15 s", backfill_target(run, results["raw"])))
    to_bronze = sum(run["steps"][step] for step in NON_DBT_STEPS)
    if "dlt" in results:
        print(target("source → bronze ≥ 10x faster than dlt", speed_target(to_bronze, results["dlt"])))
        print(target("peak RSS of the run below dlt's", memory_target(run, results["dlt"])))
    else:
        print(f"source → bronze and peak RSS vs dlt: not measured (--skip-dlt); lake + bronze {to_bronze:.2f} s")
    print(target("re-sync one month ≤ 5 s + one dbt invocation", resync_target(run["resync"])))
    print(target("revision history ≤ 10% of the backfill", history_share_target(run)))
    print(target("revision history adds ≤ 1 s to the re-sync", history_resync_target(run["resync"])))


def target(name: str, decided: tuple[bool, str]) -> str:
    """One target line: its name, the figures, PASS or MISS."""
    passed, figures = decided
    return f"{name}: {figures}  {'PASS' if passed else 'MISS'}"


def raw_ratio_target(run: dict, results: dict[str, dict], most: float) -> tuple[bool, str]:
    """A run's seconds as a multiple of the raw fetch of the whole dataset, in the same benchmark run."""
    ratio = run["seconds"] / results["raw"]["seconds"]
    return ratio <= most, f"{run['seconds']:.2f} s / {results['raw']['seconds']:.2f} s = {ratio:.2f}x"


def outside_target(run: dict) -> tuple[bool, str]:
    """The seconds of each run spent outside its steps (creating the run, planning, between and after steps)."""
    outside = [figures["seconds"] - sum(figures["steps"].values()) for figures in (run, run["resync"])]
    return max(outside) <= 1.0, f"backfill {outside[0]:.2f} s, re-sync {outside[1]:.2f} s"


def backfill_target(run: dict, raw: dict) -> tuple[bool, str]:
    """The whole cold backfill against the raw page fetch plus 15 s, and the part of it that is the steps' own
    work: the lake and bronze steps plus the dbt process, without Dagster's bookkeeping around dbt."""
    dbt = max(run["dbt_process_seconds"], run["dbt_run_seconds"])  # the process when dbt has one, else its clock
    own_work = sum(run["steps"][step] for step in NON_DBT_STEPS) + dbt
    figures = f"{run['seconds']:.2f} s vs {raw['seconds']:.2f} + 15 s (lake + bronze + dbt: {own_work:.2f} s)"
    return run["seconds"] <= raw["seconds"] + 15, figures


def speed_target(to_bronze: float, dlt: dict) -> tuple[bool, str]:
    """dlt's rest_api → DuckDB load against our lake + bronze steps."""
    figures = f"dlt {dlt['seconds']:.2f} s / lake + bronze {to_bronze:.2f} s = {dlt['seconds'] / to_bronze:.2f}x"
    return dlt["seconds"] >= 10 * to_bronze, figures


def memory_target(run: dict, dlt: dict) -> tuple[bool, str]:
    """The run process's peak RSS (dbt's subprocesses apart) against dlt's process."""
    ours, dbt = run["run_peak_rss_mb"], run["dbt_peak_rss_mb"]
    figures = f"{ours:.0f} MB (dbt subprocesses apart: {dbt:.0f} MB) vs {dlt['peak_rss_mb']:.0f} MB"
    return ours < dlt["peak_rss_mb"], figures


def history_share_target(run: dict) -> tuple[bool, str]:
    """The history's dbt nodes (summed: the upper bound decides) against the whole cold backfill."""
    summed, alone = run["history_seconds"]["summed"], run["history_seconds"]["alone"]
    share = summed / run["seconds"]
    figures = f"{summed:.2f} s summed of {run['seconds']:.2f} s = {100 * share:.1f}% (running alone: {alone:.2f} s)"
    return share <= 0.10, figures


def history_resync_target(resync: dict) -> tuple[bool, str]:
    """The history's dbt nodes in the one-month re-sync (summed: the upper bound decides)."""
    summed, alone = resync["history_seconds"]["summed"], resync["history_seconds"]["alone"]
    figures = f"{summed:.2f} s summed of {resync['seconds']:.2f} s (running alone: {alone:.2f} s)"
    return summed <= 1.0, figures


def resync_target(resync: dict) -> tuple[bool, str]:
    """The re-sync's non-dbt part against 5 s, and how many times it invoked dbt."""
    dbt = sum(resync["steps"][step] for step in DBT_STEPS)
    non_dbt, invocations = resync["seconds"] - dbt, resync["dbt_invocations"]
    figures = f"{resync['seconds']:.2f} s = {non_dbt:.2f} s non-dbt + {dbt:.2f} s in {invocations} dbt invocation(s)"
    return non_dbt <= 5 and invocations == 1, figures


if __name__ == "__main__":
    main()
