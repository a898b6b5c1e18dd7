"""Alerts end to end: real failed runs and checks on a test instance, Dagster's sensors, a real HTTP receiver.

The receiver stands in for both a webhook and Slack's Web API (dagster-slack's client, pointed at it), so every
assertion is on the bytes a channel really received.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_slack import SlackResource

from delitos_platform.alert_channels import (
    Alert,
    AlertDeliveryError,
    AlertsResource,
    SlackAlertChannel,
    WebhookAlertChannel,
    alert_resources,
    redact,
)
from delitos_platform.alert_outbox import OUTBOX_FILE, AlertOutbox
from delitos_platform.defs.automation.alerts import failed_check_alerts, run_failure_alerts
from delitos_platform.defs.bronze.assets import BRONZE_DELITOS, RECONCILED_CHECK
from delitos_platform.defs.lake.assets import LAKE_DELITOS
from delitos_platform.emulator import EmulatorServer
from delitos_platform.lake.storage import LocalLake
from delitos_platform.partitions import range_tags
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.base import WarehouseResource
from delitos_platform_tests.platform.helpers import ASSETS, duckdb_resources
from delitos_platform_tests.receiver import Receiver, Request, receiving

TOKEN = "sentinel-token-7f3a9c"
PASSWORD = "sentinel-password-51d2e8"
WEBHOOK_SECRET = "sentinel-webhook-0b4e61"
SLACK_TOKEN = "xoxb-sentinel-slack-9d1f"
SENTINELS = (TOKEN, PASSWORD, WEBHOOK_SECRET, SLACK_TOKEN)
WEBSERVER = "http://dagster.example:3000"
MONTH = "2019-03-01"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The receiver, serving from a thread for the test's duration."""
    with receiving() as state:
        yield state


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A persistent (SQLite, run-sharded: the default of ``dagster dev``) instance of this test's own."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def alerts(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> AlertsResource:
    """Both channels on the receiver, secrets as environment variables: ``/hooks/…`` and ``/slack/…``."""
    monkeypatch.setenv("DELITOS_ALERT_WEBHOOK_URL", f"{receiver.url}/hooks/delitos?token={WEBHOOK_SECRET}")
    monkeypatch.setenv("SLACK_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SOCRATA_APP_TOKEN", TOKEN)
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", PASSWORD)
    slack = SlackResource(token=dg.EnvVar("SLACK_TOKEN"))
    return AlertsResource(
        webserver_url=WEBSERVER,
        webhook=WebhookAlertChannel(url=dg.EnvVar("DELITOS_ALERT_WEBHOOK_URL")),
        slack=SlackAlertChannel(slack=slack, channel="#delitos-alerts", api_url=f"{receiver.url}/slack/"),
    )


# The sensors live in a code location; the runs these tests start (as `delitos backfill` and `dagster job execute`
# do) have no origin in it.
REPOSITORY = "__repository__"


def evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, alerts: AlertsResource, cursor: str | None):
    """One tick of a sensor the way the daemon runs it (its cursor logic included), with Dagster's test context."""
    return evaluate_tick(sensor, instance, alerts, cursor).cursor


def evaluate_tick(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, alerts: AlertsResource, cursor: str | None
) -> Any:
    """One tick of a sensor as its code location's daemon runs it: its whole result."""
    resources = {"alerts": alerts}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, repository_name=REPOSITORY) as (
        context
    ):
        result = sensor.evaluate_tick(context)
    errors = [reaction.error for reaction in result.dagster_run_reactions or [] if reaction.error]
    assert not errors, errors
    return result


def start_sensors(instance: dg.DagsterInstance, alerts: AlertsResource) -> dict[str, str | None]:
    """The first tick of each sensor: it only places the cursor at "now"."""
    return {
        sensor.name: evaluate(sensor, instance, alerts, None) for sensor in (run_failure_alerts, failed_check_alerts)
    }


def tick_all(instance: dg.DagsterInstance, alerts: AlertsResource, cursors: dict[str, str | None]) -> None:
    """One more tick of each sensor, moving ``cursors`` on."""
    for sensor in (run_failure_alerts, failed_check_alerts):
        cursors[sensor.name] = evaluate(sensor, instance, alerts, cursors[sensor.name])


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_no_secret(*requests: Request) -> None:
    for request in requests:
        for sentinel in SENTINELS:
            assert sentinel.encode() not in request.body, f"{sentinel} leaked into an alert to {request.path}"


def test_a_failed_run_is_alerted_once_on_each_channel_with_asset_partition_reason_and_link(
    instance, alerts, receiver, tmp_path: Path
):
    cursors = start_sensors(instance, alerts)
    # The source is unreachable, and its URL carries a password: the failure's sentence quotes that URL.
    socrata = SocrataResource(
        url=f"http://alerts:{PASSWORD}@127.0.0.1:{closed_port()}",
        app_token=dg.EnvVar("SOCRATA_APP_TOKEN"),
        max_retries=1,
        backoff_seconds=0.01,
    )
    lake = LocalLake(root=str(tmp_path / "lake"))
    failed = dg.materialize(
        ASSETS[:2],
        resources={"socrata": socrata, "lake": lake, "warehouse": WarehouseResource()},
        partition_key=MONTH,
        tags={"requested_by": f"ops password={PASSWORD}"},
        instance=instance,
        raise_on_error=False,
    )
    assert not failed.success

    tick_all(instance, alerts, cursors)

    [hook], [slack] = receiver.posted_to("/hooks/"), receiver.posted_to("/slack/")
    assert hook.path == f"/hooks/delitos?token={WEBHOOK_SECRET}"  # the EnvVar was resolved at send time
    alert = hook.json()
    assert alert["title"] == "Run failed: __ephemeral_asset_job__"
    assert (alert["assets"], alert["partition"], alert["check"]) == (["lake/delitos"], MONTH, None)
    # The URL's credentials never reach the message: the resource leaves them out, the alert would redact them.
    assert alert["message"].startswith("lake__delitos: Socrata at http://127.0.0.1:")
    assert "refused the connection twice" in alert["message"]
    assert (alert["run_id"], alert["run_url"]) == (failed.run_id, f"{WEBSERVER}/runs/{failed.run_id}")
    assert slack.path == "/slack/chat.postMessage"
    assert slack.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"  # the token goes in the header only
    assert slack.json()["channel"] == "#delitos-alerts"
    assert slack.json()["text"] == alert["text"]
    assert f"<{WEBSERVER}/runs/{failed.run_id}|Open run {failed.run_id[:8]}>" in alert["text"]
    assert "*Asset:* lake/delitos\n*Partition:* 2019-03-01" in alert["text"]
    assert_no_secret(hook, slack)

    tick_all(instance, alerts, cursors)

    assert len(receiver.requests) == 2


def test_a_failed_blocking_check_is_alerted_once_and_its_failed_run_not_again(
    instance, alerts, receiver, *, fresh_emulator: EmulatorServer, snapshot_rows, tmp_path: Path
):
    resources = duckdb_resources(fresh_emulator, tmp_path)
    tags = range_tags(MONTH, MONTH)
    run = {"resources": resources, "tags": tags, "instance": instance, "raise_on_error": False}
    assert dg.materialize(ASSETS, selection=[LAKE_DELITOS], **run).success
    cursors = start_sensors(instance, alerts)
    # The source gains a row after the lake was extracted: bronze no longer reconciles with it.
    march = next(row for row in snapshot_rows if row["fecha_hecho"].startswith("2019-03"))
    fresh_emulator.dataset.add_rows([march])
    failed = dg.materialize(ASSETS, selection=[BRONZE_DELITOS], **run)
    assert not failed.success

    tick_all(instance, alerts, cursors)

    [hook] = receiver.posted_to("/hooks/")
    alert = hook.json()
    assert alert["title"] == f"Check failed: {RECONCILED_CHECK} on bronze/delitos"
    assert (alert["assets"], alert["partition"], alert["check"]) == (["bronze/delitos"], MONTH, RECONCILED_CHECK)
    assert alert["message"] == (
        "ERROR: 1 of 1 months do not reconcile: 2019-03: source 94, lake 93 + quarantined 0, bronze 93 "
        "(blocking: downstream assets were not built)"
    )
    assert alert["run_url"] == f"{WEBSERVER}/runs/{failed.run_id}"
    assert len(receiver.posted_to("/slack/")) == 1
    assert_no_secret(*receiver.requests)

    tick_all(instance, alerts, cursors)

    assert len(receiver.requests) == 2


def test_failures_from_before_the_first_tick_are_not_replayed(instance, alerts, receiver):
    @dg.asset(check_specs=[dg.AssetCheckSpec("never", asset="broken")])
    def broken() -> dg.MaterializeResult:
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="never", passed=False)])

    @dg.asset
    def crashing() -> None:
        raise ValueError("boom")

    dg.materialize([broken], instance=instance)
    dg.materialize([crashing], instance=instance, raise_on_error=False)
    cursors = start_sensors(instance, alerts)

    tick_all(instance, alerts, cursors)

    assert receiver.requests == []


def test_a_channel_that_fails_names_only_its_host_and_the_others_still_deliver(receiver):
    alert = Alert("Run failed: job", ("lake/delitos",), MONTH, None, "why", "run-1", "job", f"{WEBSERVER}/runs/run-1")
    receiver.status = 500
    slack = SlackAlertChannel(slack=SlackResource(token=SLACK_TOKEN), channel="#c", api_url=f"{receiver.url}/slack/")
    failing = AlertsResource(
        webhook=WebhookAlertChannel(url=f"{receiver.url}/hooks/x?token={WEBHOOK_SECRET}"), slack=slack
    )
    unreachable = WebhookAlertChannel(url=f"http://127.0.0.1:{closed_port()}/hooks/x?token={WEBHOOK_SECRET}")

    with pytest.raises(AlertDeliveryError) as failure:
        failing.send(alert)
    with pytest.raises(AlertDeliveryError) as unreachable_failure:
        unreachable.send(alert)

    assert str(failure.value) == (
        f"the alert webhook at {receiver.url} answered HTTP 500; Slack refused the alert for #c: HTTP 500"
    )
    assert len(receiver.requests) == 2  # the webhook's failure did not stop Slack
    assert str(unreachable_failure.value).startswith("cannot reach the alert webhook at http://127.0.0.1:")
    assert WEBHOOK_SECRET not in str(unreachable_failure.value)


def test_channels_are_configured_only_when_their_settings_are_complete():
    def channels(environ: dict[str, str]) -> list[str]:
        return list(alert_resources(environ)["alerts"].channels())

    assert channels({}) == []
    assert channels({"SLACK_TOKEN": "x"}) == []
    assert channels({"DELITOS_SLACK_CHANNEL": "#c"}) == []
    assert channels({"DELITOS_ALERT_WEBHOOK_URL": "https://hooks.example/x"}) == ["webhook"]
    assert channels({"SLACK_TOKEN": "x", "DELITOS_SLACK_CHANNEL": "#c", "DELITOS_ALERT_WEBHOOK_URL": "h"}) == [
        "webhook",
        "slack",
    ]
    configured = alert_resources({"DELITOS_ALERT_WEBHOOK_URL": "h", "DAGSTER_WEBSERVER_URL": "https://dagster.x/"})
    assert configured["alerts"].run_url("abc") == "https://dagster.x/runs/abc"
    assert alert_resources({})["alerts"].run_url("abc") == "http://127.0.0.1:3000/runs/abc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot reach Socrata at https://u:p4ss@host/x: refused",
            "cannot reach Socrata at https://***@host/x: refused",
        ),
        ("sent X-App-Token: abc123 to /resource", "sent X-App-Token: *** to /resource"),
        ('{"password": "hunter2", "rows": 3}', '{"password": "***", "rows": 3}'),
        ("GET /resource/x.json?$$app_token=abc&$limit=5", "GET /resource/x.json?$$app_token=***&$limit=5"),
        ("Authorization: Bearer abcdefghijkl", "Authorization: Bearer ***"),
        ("slack xoxb-123-456-abc, aws AKIAABCDEFGHIJKLMNOP", "slack ***, aws ***"),
        (f"the value {TOKEN} anywhere", "the value *** anywhere"),
        (
            "2019-03: source 94, lake 93 + quarantined 0, bronze 93",
            "2019-03: source 94, lake 93 + quarantined 0, bronze 93",
        ),
        ("check SOCRATA_APP_TOKEN", "check SOCRATA_APP_TOKEN"),
    ],
)
def test_anything_that_looks_like_a_secret_is_redacted(text, expected):
    assert redact(text, [TOKEN]) == expected


def _failed_lake_run(instance: dg.DagsterInstance, tmp_path: Path) -> dg.ExecuteInProcessResult:
    """A lake run that fails (the source is unreachable), started in this process as the CLI starts one."""
    socrata = SocrataResource(url=f"http://127.0.0.1:{closed_port()}", max_retries=0)
    resources = {"socrata": socrata, "lake": LocalLake(root=str(tmp_path / "lake")), "warehouse": WarehouseResource()}
    failed = dg.materialize(
        ASSETS[:2], resources=resources, partition_key=MONTH, instance=instance, raise_on_error=False
    )
    assert not failed.success
    return failed


def test_an_alert_the_webhook_refuses_is_kept_and_sent_again_with_backoff_until_delivered(
    instance, alerts, receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("delitos_platform.alert_outbox.FIRST_RETRY_SECONDS", 1.0)  # 30 s in production
    cursors = start_sensors(instance, alerts)
    receiver.status = 500
    failed = _failed_lake_run(instance, tmp_path)

    tick_all(instance, alerts, cursors)
    assert len(receiver.posted_to("/hooks/")) == len(receiver.posted_to("/slack/")) == 1  # refused, both
    checks = evaluate_tick(failed_check_alerts, instance, alerts, cursors["failed_check_alerts"])
    assert checks.skip_message.endswith(
        "0 alert deliveries made, 0 failed and will be retried; 2 waiting in the outbox"
    )  # not due yet: the next try waits for its backoff
    assert len(receiver.requests) == 2

    receiver.status = 200
    time.sleep(1.1)
    checks = evaluate_tick(failed_check_alerts, instance, alerts, cursors["failed_check_alerts"])

    assert checks.skip_message.endswith(
        "2 alert deliveries made, 0 failed and will be retried; 0 waiting in the outbox"
    )
    [_, hook], [_, slack] = receiver.posted_to("/hooks/"), receiver.posted_to("/slack/")
    assert hook.json()["run_id"] == failed.run_id and hook.json()["title"] == "Run failed: __ephemeral_asset_job__"
    assert slack.json()["text"] == hook.json()["text"]
    assert_no_secret(hook, slack)

    tick_all(instance, alerts, cursors)
    assert len(receiver.requests) == 4  # delivered once each: never again


def test_an_unreachable_webhook_loses_no_alert_and_the_outbox_outlives_the_process(instance, receiver, tmp_path: Path):
    unreachable = AlertsResource(
        webserver_url=WEBSERVER, webhook=WebhookAlertChannel(url=f"http://127.0.0.1:{closed_port()}/hooks/x")
    )
    cursors = start_sensors(instance, unreachable)
    failed = _failed_lake_run(instance, tmp_path)

    tick_all(instance, unreachable, cursors)

    outbox = Path(instance.root_directory) / OUTBOX_FILE
    with sqlite3.connect(outbox) as connection:
        [(key, channel, attempts, error)] = connection.execute(
            "SELECT key, channel, attempts, last_error FROM outbox"
        ).fetchall()
    assert (key, channel, attempts) == (f"run-failure:{failed.run_id}", "webhook", 1)
    assert error.startswith("cannot reach the alert webhook at http://127.0.0.1:")
    assert AlertOutbox(outbox).waiting() == 1  # another process (the next daemon) finds it there
