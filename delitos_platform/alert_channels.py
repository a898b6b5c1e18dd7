"""Alerts: what went wrong, where, and a link to the run, sent to a webhook and/or Slack, never with a secret.

A library (no Dagster definitions): the sensors in ``defs/automation/alerts.py`` build an :class:`Alert` and hand it
to :class:`AlertsResource`, which fans it out to every configured channel. Every text an alert carries goes through
:func:`redact` first: credentials in URLs, ``key=value`` secrets, bearer/Slack/AWS tokens and the value of every
secret-looking environment variable are replaced by ``***``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import requests
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk.errors import SlackApiError, SlackClientError

DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"
REDACTED = "***"
MAX_MESSAGE_CHARS = 1_500

# Environment variables whose value is a secret by name; their values are scrubbed from every alert.
_SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY|WEBHOOK", re.IGNORECASE)
# Shorter values would scrub ordinary words out of messages.
_MIN_SECRET_CHARS = 6
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # https://user:password@host → https://***@host
    (re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE), rf"\g<scheme>{REDACTED}@"),
    # token=…, "password": "…", X-App-Token: …, $$app_token=…, aws_secret_access_key = …
    (
        re.compile(
            r"(?P<name>[\w$.-]*(?:token|password|passwd|pwd|secret|api[_-]?key|access[_-]?key|private[_-]?key|"
            r"credential|signature)[\w.-]*)(?P<sep>[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;)}\]]+",
            re.IGNORECASE,
        ),
        rf"\g<name>\g<sep>{REDACTED}",
    ),
    (re.compile(r"\b(?P<scheme>bearer|basic)\s+[\w.~+/=-]{8,}", re.IGNORECASE), rf"\g<scheme> {REDACTED}"),
    (re.compile(r"\bxox[a-z]-[\w-]+"), REDACTED),  # Slack tokens
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+"), REDACTED),  # JWTs
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL), REDACTED),
)


class AlertDeliveryError(Exception):
    """An alert that one or more channels could not deliver, told in one sentence without the channel's secrets."""


@dataclass(frozen=True)
class Alert:
    """One failure worth a human's attention: a failed run or a failed asset check."""

    title: str
    assets: tuple[str, ...]
    partition: str | None
    check: str | None
    message: str
    run_id: str
    job: str
    run_url: str

    def payload(self) -> dict[str, Any]:
        """The JSON a webhook receives: every field, plus ``text`` (what Slack-compatible webhooks display)."""
        return {
            "title": self.title,
            "assets": list(self.assets),
            "partition": self.partition,
            "check": self.check,
            "message": self.message,
            "run_id": self.run_id,
            "job": self.job,
            "run_url": self.run_url,
            "text": self.text(),
        }

    def text(self) -> str:
        """The alert as one Slack ``mrkdwn`` message."""
        lines = [f":rotating_light: *{self.title}*"]
        if self.assets:
            lines.append(f"*Asset:* {', '.join(self.assets)}")
        if self.partition:
            lines.append(f"*Partition:* {self.partition}")
        if self.check:
            lines.append(f"*Check:* {self.check}")
        lines += [f"*Job:* {self.job}", f"> {self.message}", f"<{self.run_url}|Open run {self.run_id[:8]}>"]
        return "\n".join(lines)


def run_url(webserver_url: str, run_id: str) -> str:
    """The run's page in the Dagster UI: ``{webserver_url}/runs/{run_id}``."""
    return f"{webserver_url.rstrip('/')}/runs/{run_id}"


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values of the secret-looking variables of ``environ`` (tokens, passwords, keys, webhook URLs)."""
    values = {value for name, value in environ.items() if _SECRET_NAME.search(name)}
    return sorted((value for value in values if len(value) >= _MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value and everything that looks like a credential replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_alert(alert: Alert, secrets: Iterable[str] | None = None) -> Alert:
    """The alert with every text field redacted and the message cut to a readable length.

    Without ``secrets``, the values of the process's secret-looking environment variables are scrubbed: they are
    read here, at send time, the way ``dg.EnvVar`` is resolved, so no secret is ever stored in configuration.
    """
    known = secret_values(os.environ) if secrets is None else list(secrets)
    changes: dict[str, Any] = {}
    for field in fields(alert):
        value = getattr(alert, field.name)
        if isinstance(value, str):
            changes[field.name] = redact(value, known)
        elif isinstance(value, tuple):
            changes[field.name] = tuple(redact(item, known) for item in value)
    message = changes["message"]
    if len(message) > MAX_MESSAGE_CHARS:
        changes["message"] = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return replace(alert, **changes)


def _origin(url: str) -> str:
    """``scheme://host[:port]`` only: a webhook's path and query are often its secret."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class WebhookAlertChannel(dg.ConfigurableResource):
    """Posts each alert as JSON to a URL (a Slack/Teams incoming webhook, an incident tool, our own receiver)."""

    url: str = Field(description="Where alerts are POSTed; a secret (its path or query is often the credential).")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Connect/read timeout of the POST.")

    def send(self, alert: Alert) -> None:
        """POST the redacted alert; raises :class:`AlertDeliveryError` naming only the webhook's host."""
        payload = redact_alert(alert).payload()
        try:
            response = requests.post(self.url, json=payload, timeout=self.timeout_seconds)
        except requests.exceptions.Timeout:
            raise AlertDeliveryError(
                f"the alert webhook at {_origin(self.url)} did not answer within {self.timeout_seconds:g} s"
            ) from None
        except requests.exceptions.RequestException as error:
            # requests' own messages quote the full URL: name only the kind of failure.
            raise AlertDeliveryError(
                f"cannot reach the alert webhook at {_origin(self.url)} ({type(error).__name__})"
            ) from None
        if not response.ok:
            raise AlertDeliveryError(f"the alert webhook at {_origin(self.url)} answered HTTP {response.status_code}")


class SlackAlertChannel(dg.ConfigurableResource):
    """Posts each alert to a Slack channel through dagster-slack's ``SlackResource``."""

    slack: SlackResource
    channel: str = Field(description="The channel to post to, e.g. #delitos-alerts.")
    api_url: str | None = Field(default=None, description="Another Slack Web API base URL (a proxy, or tests).")
    timeout_seconds: int = Field(default=10, gt=0, description="Timeout of the Slack API call.")

    def send(self, alert: Alert) -> None:
        """Post the redacted alert with ``chat.postMessage``; raises :class:`AlertDeliveryError` on any failure."""
        client = self.slack.get_client()
        client.timeout = self.timeout_seconds
        if self.api_url:
            client.base_url = self.api_url.rstrip("/") + "/"
        try:
            client.chat_postMessage(channel=self.channel, text=redact_alert(alert).text(), unfurl_links=False)
        except SlackApiError as error:
            raise AlertDeliveryError(
                f"Slack refused the alert for {self.channel}: "
                f"{error.response.get('error') or f'HTTP {error.response.status_code}'}"
            ) from None
        except (SlackClientError, OSError) as error:
            raise AlertDeliveryError(f"cannot reach Slack to alert {self.channel} ({type(error).__name__})") from None


class AlertsResource(dg.ConfigurableResource):
    """Every configured alert channel, and where the Dagster UI is (for the links to runs)."""

    webserver_url: str = Field(default=DEFAULT_WEBSERVER_URL, description="Base URL of the Dagster UI.")
    webhook: WebhookAlertChannel | None = None
    slack: SlackAlertChannel | None = None

    def channels(self) -> dict[str, WebhookAlertChannel | SlackAlertChannel]:
        """The configured channels by name (none: alerts are only logged by the sensors)."""
        configured = {"webhook": self.webhook, "slack": self.slack}
        return {name: channel for name, channel in configured.items() if channel is not None}

    def run_url(self, run_id: str) -> str:
        """The run's page in the Dagster UI."""
        return run_url(self.webserver_url, run_id)

    def send(self, alert: Alert) -> list[str]:
        """Send to every channel; a failing channel does not stop the others. Returns the channels that delivered.

        Raises :class:`AlertDeliveryError` after trying them all if any failed.
        """
        delivered, failures = [], []
        for name, channel in self.channels().items():
            try:
                channel.send(alert)
            except AlertDeliveryError as error:
                failures.append(str(error))
            else:
                delivered.append(name)
        if failures:
            raise AlertDeliveryError("; ".join(failures))
        return delivered


def alert_resources(environ: Mapping[str, str]) -> dict[str, AlertsResource]:
    """The ``alerts`` resource from the settings (``environment.py`` passes its environment).

    ``DELITOS_ALERT_WEBHOOK_URL`` enables the webhook; ``SLACK_TOKEN`` and ``DELITOS_SLACK_CHANNEL`` together
    enable Slack; ``DAGSTER_WEBSERVER_URL`` (default ``http://127.0.0.1:3000``) is where links to runs point.
    Secrets (the webhook URL, the Slack token) stay ``dg.EnvVar``: resolved when an alert is sent, never stored.
    """
    alerts = AlertsResource(
        webserver_url=environ.get("DAGSTER_WEBSERVER_URL") or DEFAULT_WEBSERVER_URL,
        webhook=WebhookAlertChannel(url=dg.EnvVar("DELITOS_ALERT_WEBHOOK_URL"))
        if environ.get("DELITOS_ALERT_WEBHOOK_URL")
        else None,
        slack=_slack_channel(environ),
    )
    return {"alerts": alerts}


def _slack_channel(environ: Mapping[str, str]) -> SlackAlertChannel | None:
    """Slack only when both its token and its channel are set: one without the other cannot post."""
    if not (environ.get("SLACK_TOKEN") and environ.get("DELITOS_SLACK_CHANNEL")):
        return None
    return SlackAlertChannel(
        slack=SlackResource(token=dg.EnvVar("SLACK_TOKEN")), channel=environ["DELITOS_SLACK_CHANNEL"]
    )
