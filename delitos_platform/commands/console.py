"""What ``delitos`` prints while a run goes: a line per step as it starts and ends, and nothing else unless asked.

A Dagster logger (``delitos_progress``) replaces the console logger in the runs ``delitos`` starts: each step's
start, then its end with seconds and what it materialized and checked, or its one-sentence failure. dbt's
per-node lines, library warnings and Dagster's event stream are for ``--verbose`` (and for the UI, which keeps
every event of every run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import dagster as dg

PROGRESS_LOGGER = "delitos_progress"
# The one Dagster warning a run of this platform raises: the assets' single-run backfill policy is "beta".

NOT_EXECUTED = "Dependencies for step"  # how Dagster says a step is skipped after a failure upstream

_terminal: list[TextIO] = []  # where progress goes while dbt's output (written to sys.stdout) is silenced


def terminal() -> TextIO:
    """The stream a person reads: stdout as it was before ``quiet_output`` silenced it."""
    return _terminal[-1] if _terminal else sys.stdout


def say(line: str) -> None:
    """One line for the person at the terminal, at once, its secrets masked."""
    print(masked(line), file=terminal(), flush=True)


def complain(line: str) -> None:
    """One sentence on stderr (a failure), its secrets masked."""
    print(masked(line), file=sys.stderr, flush=True)


def masked(text: str) -> str:
    """``text`` as it may be printed: credentials in URLs (``SOCRATA_URL``, ``--source``) and the value of every
    secret-looking environment variable become ``***``, as in alerts."""
    from delitos_platform.alert_channels import redact, secret_values

    return redact(text, secret_values(os.environ))


@contextlib.contextmanager
def quiet_output(verbose: bool) -> Iterator[None]:
    """While a run goes: library warnings, dbt's node lines and Dagster's events only when ``verbose``.

    A handler of our own on the root logger (warnings and worse, not Dagster's records, which its loggers
    print) means sodapy's ``logging.warning`` no longer configures the root logger itself (``basicConfig``),
    which printed every Dagster line a second time.
    """
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.addFilter(lambda record: not hasattr(record, "dagster_meta"))
    root.addHandler(handler)
    _terminal.append(sys.stdout)
    try:
        with contextlib.ExitStack() as stack:
            if not verbose:
                devnull = stack.enter_context(open(os.devnull, "w"))
                stack.enter_context(contextlib.redirect_stdout(devnull))
            yield
    finally:
        _terminal.pop()
        root.removeHandler(handler)


def run_config(verbose: bool) -> dict[str, Any]:
    """The run's loggers: progress always; Dagster's console logger, at DEBUG, only when ``verbose``."""
    loggers: dict[str, Any] = {PROGRESS_LOGGER: {}}
    if verbose:
        loggers["console"] = {"config": {"log_level": "DEBUG"}}
    return {"loggers": loggers}


def with_progress(definitions: dg.Definitions) -> dg.Definitions:
    """The definitions with the progress logger beside Dagster's console logger."""
    loggers = {"console": dg.colored_console_logger, PROGRESS_LOGGER: progress_logger}
    return dg.Definitions.merge(definitions, dg.Definitions(loggers=loggers))


@dataclass
class _Step:
    """What a step did so far."""

    started: float
    materialized: Counter[str] = field(default_factory=Counter)  # partitioned assets: months; others: 1
    partitioned: set[str] = field(default_factory=set)
    checks: Counter[str] = field(default_factory=Counter)


class ProgressHandler(logging.Handler):
    """Turns a run's Dagster events into a line per step start and end."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.steps: dict[str, _Step] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step_key = meta.get("step_key") or ""
        if event is None:
            message = _first_line(meta.get("orig_message", record.getMessage()))
            if message.startswith(NOT_EXECUTED):
                say(f"  – {step_key} not run: a step before it failed")
            elif record.levelno >= logging.WARNING:  # what a step warns about (a wait, a re-publication)
                say(f"  ! {step_key or 'run'}: {message}")
            return
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            self.steps[step_key] = _Step(started=record.created)
            say(f"  … {step_key}")
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION and step_key in self.steps:
            materialization = event.step_materialization_data.materialization
            key = materialization.asset_key.to_user_string()
            self.steps[step_key].materialized[key] += 1
            if materialization.partition is not None:
                self.steps[step_key].partitioned.add(key)
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION and step_key in self.steps:
            self.steps[step_key].checks[_verdict(event.asset_check_evaluation_data)] += 1
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            step = self.steps.get(step_key, _Step(record.created))
            seconds = event.event_specific_data.duration_ms / 1000
            say(f"  ✓ {step_key} in {seconds:.1f} s: {_figures(step)}")
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            seconds = record.created - self.steps.get(step_key, _Step(record.created)).started
            say(f"  ✗ {step_key} failed after {seconds:.1f} s: {failure_sentence(event.step_failure_data)}")


@dg.logger(description="One line per step of the run (start; end with seconds and figures) on the terminal.")
def progress_logger(_init_context: dg.InitLoggerContext) -> logging.Logger:
    """The progress logger of a run started by ``delitos``."""
    logger = logging.Logger(PROGRESS_LOGGER, level=logging.DEBUG)
    logger.addHandler(ProgressHandler())
    return logger


def failure_sentence(data: Any) -> str:
    """A step failure's one sentence: the description the platform wrote, else the error's first line."""
    if data.user_failure_data is not None and data.user_failure_data.description:
        return _first_line(data.user_failure_data.description)
    return _first_line(data.error.message) if data.error else "no reason recorded"


def _verdict(evaluation: Any) -> str:
    if evaluation.passed:
        return "passed"
    return "warned" if evaluation.severity == dg.AssetCheckSeverity.WARN else "failed"


def _figures(step: _Step) -> str:
    """``silver/stg_delitos 247 months + 5 tables; checks 52 passed``: what a step materialized, how checks went."""
    partitioned = [
        f"{key} {count} month{'s' if count > 1 else ''}"
        for key, count in sorted(step.materialized.items())
        if key in step.partitioned
    ]
    whole = sorted(key for key in step.materialized if key not in step.partitioned)
    assets = " + ".join([*partitioned, *(whole if len(whole) <= 2 else [f"{len(whole)} tables"])])
    checks = ", ".join(f"{count} {verdict}" for verdict, count in sorted(step.checks.items()))
    return "; ".join(part for part in (assets, checks and f"checks {checks}") if part) or "done"


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def elapsed(started: float) -> str:
    """Seconds since ``started`` (``time.monotonic``), as the summary says them."""
    return f"{time.monotonic() - started:.0f} s"
