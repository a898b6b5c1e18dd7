"""No secret is ever stored: a real run of the platform with sentinel secrets, then every stored byte is searched.

The Socrata app token really is used (the emulator, behind a recording proxy, receives it as ``X-App-Token``), and
the other secrets sit in the environment the run and dbt inherit. Searched afterwards: every event of the event
log, every run's config and tags, the job and execution-plan snapshots of the run and of the code location's
jobs (``definitions.defs()``), and every file of the instance's folder (compute logs and the SQLite stores themselves).
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from delitos_platform.alert_channels import alert_resources
from delitos_platform.definitions import defs
from delitos_platform.emulator import EmulatorServer
from delitos_platform.partitions import range_tags
from delitos_platform.socrata import SocrataResource
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.platform.helpers import ASSETS, duckdb_resources

SECRETS = {
    "SOCRATA_APP_TOKEN": "sentinel-token-7f3a9c",
    "AWS_SECRET_ACCESS_KEY": "sentinel-aws-secret-2c81d4",
    "SNOWFLAKE_PASSWORD": "sentinel-snowflake-password-93be07",
    "SLACK_TOKEN": "xoxb-sentinel-slack-5a0c2e",
    "DELITOS_ALERT_WEBHOOK_URL": "https://hooks.example/sentinel-webhook-6f1d93",
}
MONTH = "2019-03-01"
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


class HeaderRecorder:
    """A forwarding proxy on loopback in front of the emulator that records every ``X-App-Token`` it sees."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.app_tokens: list[str | None] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Forward(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:  # SODA3 queries
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body: bytes | None) -> None:
                recorder.app_tokens.append(self.headers.get("X-App-Token"))
                headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
                request = urllib.request.Request(recorder.upstream + self.path, data=body, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        self._answer(response.status, response.headers.items(), response.read())
                except urllib.error.HTTPError as error:
                    self._answer(error.code, error.headers.items(), error.read())

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Forward

    def __enter__(self) -> HeaderRecorder:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The sentinel secrets, set where the platform reads them (and dbt's profile on this test's warehouse)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DELITOS_SLACK_CHANNEL", "#delitos-alerts")
    monkeypatch.setenv("DELITOS_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    return SECRETS


@pytest.fixture
def recorder(emulator: EmulatorServer) -> Iterator[HeaderRecorder]:
    """The recording proxy in front of the session's emulator."""
    with HeaderRecorder(emulator.url) as proxy:
        yield proxy


def leaks(text: str | bytes, where: str) -> list[str]:
    """``"<secret name> in <where>"`` for every sentinel found in ``text``."""
    data = text.encode() if isinstance(text, str) else text
    return [f"{name} in {where}" for name, value in SECRETS.items() if value.encode() in data]


def stored_by_instance(instance: dg.DagsterInstance) -> list[str]:
    """Leaks in what the instance stored about every run: events, config and tags, snapshots."""
    found = []
    for run in instance.get_runs():
        found += leaks(dg.serialize_value(run), f"run {run.run_id} (config, tags)")
        for entry in instance.all_logs(run.run_id):
            found += leaks(dg.serialize_value(entry), f"event {entry.dagster_event_type or entry.user_message[:40]}")
        if run.job_snapshot_id:
            found += leaks(dg.serialize_value(instance.get_job_snapshot(run.job_snapshot_id)), "run's job snapshot")
        if run.execution_plan_snapshot_id:
            plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            found += leaks(dg.serialize_value(plan), "run's execution plan snapshot")
    return found


def stored_on_disk(root: Path) -> tuple[list[str], list[Path]]:
    """Leaks in every file under the instance's folder, and the compute-log files among them."""
    files = [path for path in root.rglob("*") if path.is_file()]
    found = [leak for path in files for leak in leaks(path.read_bytes(), str(path.relative_to(root)))]
    return found, [path for path in files if "compute_logs" in path.parts]


def job_snapshots(definitions: dg.Definitions) -> str:
    """Every job snapshot of ``definitions`` (config schemas with the resources' configured values), serialized."""
    return "".join(dg.serialize_value(job.get_job_snapshot()) for job in definitions.resolve_all_job_defs())


def test_a_run_with_real_secrets_stores_none_of_them(secrets_in_environment, recorder, tmp_path):
    socrata = socrata_for(recorder, app_token=dg.EnvVar("SOCRATA_APP_TOKEN"))
    # The alert channels ride along so that their (EnvVar) settings are in the run's snapshot too.
    resources = {**duckdb_resources(recorder, tmp_path), "socrata": socrata, **alert_resources(os.environ)}
    tags = range_tags(MONTH, MONTH)

    with dg.instance_for_test() as instance:
        # helpers.run_months, on this instance (it always runs on an ephemeral one).
        result = dg.materialize(ASSETS, resources=resources, tags=tags, instance=instance, raise_on_error=False)
        assert result.success, [event.step_failure_data.error for event in result.all_events if event.is_step_failure]
        in_instance = stored_by_instance(instance)
        on_disk, compute_logs = stored_on_disk(Path(instance.root_directory))

    assert recorder.app_tokens and set(recorder.app_tokens) == {SECRETS["SOCRATA_APP_TOKEN"]}
    assert compute_logs, "no compute log was captured: the search of them would prove nothing"
    assert in_instance == []
    assert on_disk == []
    # The code location itself, its resources built by environment.py from this environment: the snapshot names
    # the variable (so the resource's configuration is in it), never its value.
    code_location = job_snapshots(defs())
    assert r"{\"env\": \"SOCRATA_APP_TOKEN\"}" in code_location
    assert leaks(code_location, "code location job snapshots") == []


def test_the_snapshot_search_does_find_a_secret_written_in_plain_config(secrets_in_environment, emulator, tmp_path):
    # The control: a token given as a plain string (not dg.EnvVar) IS in the snapshot, so the search above can see.
    plain = SocrataResource(url=emulator.url, app_token=SECRETS["SOCRATA_APP_TOKEN"])
    definitions = dg.Definitions(assets=ASSETS, resources={**duckdb_resources(emulator, tmp_path), "socrata": plain})

    assert leaks(job_snapshots(definitions), "snapshot") == ["SOCRATA_APP_TOKEN in snapshot"]
