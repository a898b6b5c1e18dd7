"""A real PostgreSQL server for the tests: initialized in a temporary folder, listening on a free loopback port.

The binaries are the machine's own when it has them (``initdb`` on PATH, Debian's ``/usr/lib/postgresql/*/bin``),
else those bundled in the ``pgserver`` wheel (the ``test`` extra), so a fresh machine needs nothing but pip.
PostgreSQL refuses to run as root: as root, ``initdb`` and ``postgres`` run as the system user ``postgres``
(created when missing), in a folder of their own under the system's temporary folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from delitos_platform_tests.processes.helpers import free_port, wait_until

SYSTEM_USER = "postgres"
DATABASE = "dagster"
STARTUP_TIMEOUT = 60.0
# A throw-away server: durability settings off, which PostgreSQL's own test suites do too.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def postgres_bin_dir() -> Path:
    """Where ``initdb`` and ``postgres`` are: PATH, then Debian's packages (newest first), then pgserver's wheel."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]), reverse=True)
    if debian:
        return debian[0].parent
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError("no PostgreSQL found: install the test extra (pip install -e '.[test]', brings pgserver)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def unprivileged_user() -> str | None:
    """The system user to run PostgreSQL as when we are root (created when missing); ``None`` otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


@dataclass
class PostgresServer:
    """One PostgreSQL server on ``127.0.0.1:port`` with trust authentication and a database ``dagster``."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        """The server's own log."""
        return self.folder / "postgres.log"

    def environment(self) -> dict[str, str]:
        """The settings ``deploy/dagster.yaml`` reads, pointing at this server."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": "postgres",
            "DAGSTER_PG_PASSWORD": "unused-trust-auth",
            "DAGSTER_PG_DB": DATABASE,
        }

    def connect(self, database: str = DATABASE) -> psycopg2.extensions.connection:
        """A connection (autocommit), for set-up and inspection."""
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        connection.autocommit = True
        return connection

    def stop(self, grace: float = 20.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, disconnect clients), then SIGKILL; folder removed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb in a new temporary folder, then ``postgres`` on a free loopback port; returns once it accepts."""
    binaries, user = postgres_bin_dir(), unprivileged_user()
    folder = Path(tempfile.mkdtemp(prefix="delitos-postgres-"))
    as_user: dict[str, object] = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    if user:
        shutil.chown(folder, user)
    data = folder / "data"
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8"]
    done = subprocess.run([*initdb, "--no-sync"], capture_output=True, text=True, check=False, **as_user)  # type: ignore[call-overload]
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    port = free_port()
    settings = [f"--{key}={value}" for key, value in {**SERVER_SETTINGS, "port": port}.items()]
    with (folder / "postgres.log").open("wb") as log:
        process = subprocess.Popen(  # type: ignore[call-overload]
            [str(binaries / "postgres"), "-D", str(data), *settings],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **as_user,
        )
    server = PostgresServer(folder, port, process)
    try:
        wait_until(lambda: _accepts(server), STARTUP_TIMEOUT, f"PostgreSQL on 127.0.0.1:{port}", interval=0.2)
        with contextlib.closing(server.connect("postgres")) as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    except BaseException:
        server.stop()
        raise
    return server


def _accepts(server: PostgresServer) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError(f"postgres exited with {server.process.returncode}: {server.log.read_text()[-2000:]}")
    try:
        psycopg2.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres").close()
    except psycopg2.OperationalError:
        return False
    return True


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server, stopped and removed on exit."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
