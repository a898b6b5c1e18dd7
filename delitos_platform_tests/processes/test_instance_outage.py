"""The instance's PostgreSQL lost in the middle of a command-line run: one sentence, and no run left STARTED.

The outage is real: the CLI reaches PostgreSQL through a TCP relay on loopback that the test cuts (every
connection closed, new ones refused) while the run goes, for longer than Dagster's own retries, then restores.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from delitos_platform.locations import REPO_ROOT
from delitos_platform_tests.processes.helpers import wait_until
from delitos_platform_tests.processes.postgres import PostgresServer

MONTH = "2019-03"


class Relay:
    """A TCP relay from a loopback port to PostgreSQL that can be cut (an outage) and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """The database is gone: open connections drop, new ones are refused."""
        self.up = False
        with self.lock:
            for open_socket in self.sockets:
                with contextlib.suppress(OSError):
                    open_socket.shutdown(socket.SHUT_RDWR)
                open_socket.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def relay(postgres: PostgresServer) -> Iterator[Relay]:
    relay = Relay(postgres.port)
    yield relay
    relay.close()


def _run_statuses(postgres: PostgresServer) -> dict[str, str]:
    with contextlib.closing(postgres.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('runs')")
        if cursor.fetchone()[0] is None:
            return {}
        cursor.execute("SELECT run_id, status FROM runs")
        return dict(cursor.fetchall())


def _delitos(home: Path, *argv: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``delitos argv…`` as its own process (as a person runs it), with the instance at ``home``."""
    command = [str(Path(sys.executable).parent / "delitos"), *argv]
    environ = {**os.environ, **environment, "DAGSTER_HOME": str(home)}
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600, check=False)


def test_a_lost_instance_database_is_one_sentence_and_no_run_is_left_started_once_it_is_back(
    postgres: PostgresServer, relay: Relay, tmp_path: Path
):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with contextlib.closing(postgres.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")  # this test's own instance
    settings = {**postgres.environment(), "DAGSTER_PG_PORT": str(relay.port)}
    backfill = ["backfill", "--from", MONTH, "--to", MONTH, "--data-dir", str(tmp_path / "data")]

    def cut_once_started() -> None:  # the run goes on for seconds more (lake, bronze, dbt): cut mid-run
        wait_until(lambda: "STARTED" in _run_statuses(postgres).values(), 300.0, "the run to start", interval=0.1)
        relay.cut()

    cutter = threading.Thread(target=cut_once_started, daemon=True)
    cutter.start()
    lost = _delitos(home, *backfill, environment=settings)
    cutter.join(timeout=10)
    [run_id] = _run_statuses(postgres)

    assert lost.returncode == 1, (lost.stdout, lost.stderr)
    assert "Traceback" not in lost.stdout + lost.stderr
    sentence = lost.stderr.strip().splitlines()[-1]  # after Dagster's own warnings of its retries
    assert sentence.startswith("delitos backfill: the Dagster instance's database cannot be reached"), sentence
    assert f"run {run_id} stopped where it was" in sentence
    assert _run_statuses(postgres) == {run_id: "STARTED"}  # the database went before the run could say so

    relay.restore()
    again = _delitos(home, *backfill, environment=settings)

    statuses = _run_statuses(postgres)
    assert statuses.pop(run_id) == "FAILURE"  # the next command marked the orphan failed
    assert list(statuses.values()) == ["SUCCESS"] and again.returncode == 0, (again.stdout, again.stderr)
    assert f"Marked run {run_id} failed" in again.stdout
