"""The alert outbox: every alert is kept until each of its channels has delivered it, re-sent with backoff.

A small SQLite file in the Dagster instance's folder (``$DAGSTER_HOME/alert_outbox.sqlite``), one row per alert
and channel. An alert is added once (its key: what it is about, e.g. the run and the event), redacted before it is
stored, so no secret lands on disk. Delivery claims a row in a transaction before sending it, so two sensors
flushing at once never send it twice; a failed attempt is put off for 30 s, then 1, 2, 4 … minutes (at most an
hour), and tried again until the channel takes it. A webhook answering 500 or nothing loses no alert.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from delitos_platform.alert_channels import Alert, AlertDeliveryError, AlertsResource, redact_alert

OUTBOX_FILE = "alert_outbox.sqlite"
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3_600.0
# How long a claimed row is held by the process sending it (longer than any channel's timeout).
CLAIM_SECONDS = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    alert TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT,
    PRIMARY KEY (key, channel)
)
"""


@dataclass(frozen=True)
class Flushed:
    """What one flush of the outbox did."""

    delivered: list[str]
    failed: list[str]
    waiting: int

    def describe(self) -> str:
        """One line for a sensor's tick."""
        return (
            f"{len(self.delivered)} alert deliveries made, {len(self.failed)} failed and will be retried; "
            f"{self.waiting} waiting in the outbox"
        )


class AlertOutbox:
    """Alerts waiting for their channels, in a SQLite file that outlives every process."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as connection:
            connection.execute(_SCHEMA)

    @classmethod
    def in_folder(cls, folder: str | Path) -> AlertOutbox:
        """The outbox of a Dagster instance's folder."""
        return cls(Path(folder) / OUTBOX_FILE)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as connection:
            connection.execute("BEGIN IMMEDIATE")  # one writer at a time: a claim is never taken twice
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def add(self, key: str, alert: Alert, channels: list[str]) -> None:
        """Keep ``alert`` for each of ``channels`` (once: adding the same key again changes nothing)."""
        stored = json.dumps(asdict(redact_alert(alert)))
        with self._transaction() as connection:
            connection.executemany(
                "INSERT OR IGNORE INTO outbox (key, channel, alert, next_attempt) VALUES (?, ?, ?, ?)",
                [(key, channel, stored, self.clock()) for channel in channels],
            )

    def waiting(self) -> int:
        """How many deliveries are still to be made."""
        with self._transaction() as connection:
            return connection.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def flush(self, alerts: AlertsResource, log: Callable[[str], None]) -> Flushed:
        """Try every delivery that is due; say in ``log`` each one that failed and when it is tried again."""
        delivered, failed = [], []
        channels = alerts.channels()
        for key, channel, alert, attempts in self._claim_due():
            if channel not in channels:
                self._done(key, channel)
                log(f"alert {alert.title!r} dropped: the {channel} channel is no longer configured")
                continue
            try:
                channels[channel].send(alert)
            except AlertDeliveryError as error:
                wait = min(FIRST_RETRY_SECONDS * 2**attempts, MAX_RETRY_SECONDS)
                self._put_off(key, channel, wait, str(error))
                failed.append(f"{key} → {channel}")
                log(
                    f"alert {alert.title!r} not delivered by the {channel} channel (attempt {attempts + 1}): {error}; "
                    f"kept in the outbox, tried again in {wait:g} s"
                )
            else:
                self._done(key, channel)
                delivered.append(f"{key} → {channel}")
        return Flushed(delivered, failed, self.waiting())

    def _claim_due(self) -> list[tuple[str, str, Alert, int]]:
        now = self.clock()
        with self._transaction() as connection:
            rows = connection.execute(
                "SELECT key, channel, alert, attempts FROM outbox WHERE next_attempt <= ? ORDER BY next_attempt",
                [now],
            ).fetchall()
            connection.executemany(
                "UPDATE outbox SET next_attempt = ? WHERE key = ? AND channel = ?",
                [(now + CLAIM_SECONDS, key, channel) for key, channel, _, _ in rows],
            )
        return [(key, channel, _alert(stored), attempts) for key, channel, stored, attempts in rows]

    def _put_off(self, key: str, channel: str, wait: float, error: str) -> None:
        with self._transaction() as connection:
            connection.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
                "WHERE key = ? AND channel = ?",
                [self.clock() + wait, error, key, channel],
            )

    def _done(self, key: str, channel: str) -> None:
        with self._transaction() as connection:
            connection.execute("DELETE FROM outbox WHERE key = ? AND channel = ?", [key, channel])


def _alert(stored: str) -> Alert:
    fields = json.loads(stored)
    return Alert(**{**fields, "assets": tuple(fields["assets"])})
