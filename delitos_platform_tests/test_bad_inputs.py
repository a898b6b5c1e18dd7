"""Bad input a user can really give: each is one sentence (one line, no traceback, no query, no secret) and
writes nothing (the lake folder, the warehouse, the working folder and the instance folder stay as they were).

The CLI cases call ``delitos``'s own ``main`` in this process: the console script's code path, without a new
interpreter importing Dagster for each case. (A missing S3 bucket is told in lake/test_lake_s3.py, beside
moto's server.)
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from delitos_platform import commands as cli
from delitos_platform.contract import DATASET_ID
from delitos_platform.defs.bronze.assets import bronze_delitos
from delitos_platform.defs.dbt.assets import extra_environment
from delitos_platform.defs.lake.assets import lake_delitos
from delitos_platform.defs.source.assets import socrata_delitos
from delitos_platform.emulator import EmulatorServer
from delitos_platform.environment import build_resources
from delitos_platform.lake.provenance import record_source
from delitos_platform.lake.storage import LakeResource, LocalLake, data_key, quarantine_key
from delitos_platform.socrata import SocrataResource
from delitos_platform.warehouse.duckdb import DuckDBWarehouse
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake

MONTH = "2019-03-01"
TOKEN = "app-token-that-must-not-leak"
ASSETS = [socrata_delitos, lake_delitos, bronze_delitos]


@dataclass
class World:
    """A working folder holding a lake with March 2019 published (and room for a warehouse)."""

    root: Path
    emulator: EmulatorServer
    capsys: pytest.CaptureFixture[str]

    @property
    def lake(self) -> LocalLake:
        return LocalLake(root=str(self.root / "lake"))

    @property
    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(duckdb=DuckDBResource(database=str(self.root / "warehouse.duckdb")))

    def bronze(self) -> str:
        """The failure of a bronze run over March."""
        resources = {"socrata": socrata_for(self.emulator), "lake": self.lake, "warehouse": self.warehouse}
        selected = {"selection": [bronze_delitos], "partition_key": MONTH, "raise_on_error": False}
        return failure_message(dg.materialize(ASSETS, resources=resources, **selected))

    def lake_run(
        self,
        socrata: SocrataResource | None = None,
        lake: LakeResource | None = None,
        months: tuple[str, ...] = (MONTH,),
    ) -> str:
        """The failure of a lake run over March (or ``months``: first and last)."""
        return failure_message(materialize_lake(socrata or socrata_for(self.emulator), lake or self.lake, *months))

    def delitos(self, *argv: str) -> str:
        """``delitos argv…`` in this process: its exit code must say failure, its stderr is the sentence."""
        self.capsys.readouterr()
        code = _exit_code(lambda: cli.main(list(argv)))
        out, err = self.capsys.readouterr()
        assert code == 2 and out == "", (code, out, err)
        return err


def _with_env(world: World, settings: dict[str, str], *argv: str) -> str:
    """``delitos argv…`` with environment variables set (as a shell's ``NAME=value delitos …``)."""
    with extra_environment(settings):
        return world.delitos(*argv)


# The demo's own folders in the working folder (and a malformed snapshot: old code that ignored a setting
# failed on it, after writing nothing, instead of running a whole demo).
DEMO_FLAGS = ("--snapshot", "malformed.json", "--data-dir", "data", "--dagster-home", "home")
ON_THE_WORLD = ("--data-dir", ".", "--dagster-home", "home")  # the world's lake, as the demo left it


def _demo_lake(world: World) -> None:
    record_source(world.lake, world.emulator.url, DATASET_ID)


def _warehouse_with_gold(world: World) -> None:
    import duckdb

    with duckdb.connect(str(world.root / "warehouse.duckdb")) as warehouse:
        warehouse.execute("CREATE SCHEMA gold; CREATE TABLE gold.resumen_general AS SELECT 1 AS casos")


def _exit_code(run: Callable[[], int]) -> int:
    try:
        return run()
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not parquet")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _busy_port(world: World) -> str:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        return world.delitos("emulator", "--snapshot", "snapshot.json", "--port", str(taken.getsockname()[1]))


def _malformed_snapshot(world: World) -> None:
    (world.root / "malformed.json").write_text('[{"fecha_hecho": "2019-03-01"')


class _Refusing(BaseHTTPRequestHandler):
    """Socrata refusing a bad app token, as it does: HTTP 403 with its JSON error body."""

    def do_GET(self) -> None:
        body = json.dumps({"code": "permission_denied", "error": True, "message": "Invalid app_token specified"})
        self.send_response(403)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def _bad_token(world: World) -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        return world.lake_run(SocrataResource(url=url, app_token=TOKEN, max_retries=0))
    finally:
        server.shutdown()
        server.server_close()


def _raised(action: Callable[[], object]) -> str:
    with pytest.raises(ValueError) as failure:
        action()
    return str(failure.value)


# case → (what the user gives, the part of the one sentence that says what is wrong)
CASES: dict[str, tuple[Callable[[World], str], str]] = {
    "reversed partition range": (
        lambda w: w.lake_run(months=("2020-01-01", "2019-01-01")),
        "the range of months 2020-01-01...2019-01-01 is reversed (the first month comes first): the valid months "
        "are 2006-05-01...",
    ),
    "range before the first month": (
        lambda w: w.lake_run(months=("2005-01-01", "2005-06-01")),
        "the range of months 2005-01-01...2005-06-01 reaches outside the calendar: the valid months are 2006-05-01...",
    ),
    "corrupt lake object": (
        lambda w: w.bronze(),
        "delitos-2019-03.parquet is not readable Parquet (Parquet magic bytes not found in footer): "
        "materialize lake/delitos for 2019-03 again to rewrite it",
    ),
    "truncated quarantine object": (
        lambda w: w.bronze(),
        "quarantine-2019-03.parquet is not readable Parquet (",
    ),
    "lake path that is a file": (
        lambda w: w.lake_run(lake=LocalLake(root=str(w.root / "snapshot.json"))),
        "snapshot.json is a file, not a folder",
    ),
    "SOCRATA_URL without a scheme": (
        lambda w: w.lake_run(SocrataResource(url="datos.gov.co")),
        "SOCRATA_URL must look like https://www.datos.gov.co, not 'datos.gov.co'",
    ),
    "SOCRATA_URL where nothing listens": (
        lambda w: w.lake_run(SocrataResource(url=f"http://127.0.0.1:{_closed_port()}", max_retries=1)),
        "refused the connection twice while reading the dataset's metadata (dataset 4v6r-wu98); gave up after",
    ),
    "unknown dataset id": (
        lambda w: w.lake_run(socrata_for(w.emulator, dataset_id="zzzz-9999"), LocalLake(root=str(w.root / "new"))),
        "dataset 'zzzz-9999' does not exist at http://127.0.0.1:",
    ),
    "another dataset on the lake": (
        lambda w: w.lake_run(socrata_for(w.emulator, dataset_id="zzzz-9999")),
        "holds Socrata dataset 4v6r-wu98, not zzzz-9999 (SOCRATA_DATASET): give another dataset a lake of its own",
    ),
    "bad app token (HTTP 403)": (
        _bad_token,
        "refused the request for dataset 4v6r-wu98 (HTTP 403) while reading the dataset's metadata (Invalid app_token "
        "specified): SOCRATA_APP_TOKEN is not a valid app token here (or the portal throttles it); set a valid one",
    ),
    "unknown SOCRATA_API": (
        lambda w: _raised(lambda: build_resources({"SOCRATA_API": "soda4"})),
        "SOCRATA_API must be one of auto, soda3, soda2, not 'soda4'",
    ),
    "unknown DELITOS_ENV": (
        lambda w: _raised(lambda: build_resources({"DELITOS_ENV": "staging"})),
        "DELITOS_ENV must be one of local, prod, not 'staging'",
    ),
    "production without its settings": (
        lambda w: _raised(lambda: build_resources({"DELITOS_ENV": "prod", "SNOWFLAKE_USER": "loader"})),
        "DELITOS_ENV=prod needs settings that are unset: DELITOS_LAKE_BUCKET, SNOWFLAKE_ACCOUNT, SNOWFLAKE_ROLE, "
        "SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE, DELITOS_SNOWFLAKE_STAGE, SNOWFLAKE_PASSWORD or "
        "SNOWFLAKE_PRIVATE_KEY_PATH",
    ),
    "delitos emulator --port 70000": (
        lambda w: w.delitos("emulator", "--port", "70000"),
        "delitos emulator: argument --port: 70000 is not a port number (0-65535) (see delitos emulator --help)",
    ),
    "delitos emulator --port abc": (
        lambda w: w.delitos("emulator", "--port", "abc"),
        "delitos emulator: argument --port: 'abc' is not a port number (0-65535)",
    ),
    "delitos emulator on a busy port": (_busy_port, "cannot listen on 127.0.0.1:"),
    "delitos emulator --snapshot malformed": (
        lambda w: w.delitos("emulator", "--snapshot", "malformed.json"),
        "delitos emulator: malformed.json: not a JSON array of rows",
    ),
    "delitos emulator --snapshot missing": (
        lambda w: w.delitos("emulator", "--snapshot", str(w.root / "nowhere.json.gz")),
        "nowhere.json.gz: no such snapshot file",
    ),
    "delitos emulator --fault of no kind": (
        lambda w: w.delitos("emulator", "--snapshot", "snapshot.json", "--fault", "418:count=1"),
        "unknown fault kind '418' (expected one of 429, 500, 503, slow, reset, truncate, html, object, 202, 403)",
    ),
    "delitos emulator --fault count=x": (
        lambda w: w.delitos("emulator", "--fault", "429:count=x"),
        "bad fault option 'count=x' in '429:count=x' (expected a number)",
    ),
    "delitos demo --snapshot malformed": (
        lambda w: w.delitos("demo", "--snapshot", "malformed.json", "--data-dir", "data", "--dagster-home", "home"),
        "delitos demo: malformed.json: not a JSON array of rows",
    ),
    "delitos demo --data-dir that is a file": (
        lambda w: w.delitos("demo", "--data-dir", str(w.root / "snapshot.json")),
        "snapshot.json is a file, not a folder",
    ),
    "DELITOS_ENV=staging delitos demo": (
        lambda w: _with_env(w, {"DELITOS_ENV": "staging"}, "demo", *DEMO_FLAGS),
        "delitos demo: DELITOS_ENV must be one of local, prod, not 'staging'",
    ),
    "DELITOS_ENV=prod delitos demo": (
        lambda w: _with_env(w, {"DELITOS_ENV": "prod"}, "demo", *DEMO_FLAGS),
        "delitos demo runs the embedded platform (a lake folder and DuckDB), but DELITOS_ENV=prod is set",
    ),
    "DELITOS_DATA_DIR that is a file, delitos demo": (
        lambda w: _with_env(w, {"DELITOS_DATA_DIR": str(w.root / "snapshot.json")}, "demo", "--snapshot", "x.json"),
        "snapshot.json is a file, not a folder",
    ),
    "DELITOS_ENV=prod delitos backfill": (
        lambda w: _with_env(w, {"DELITOS_ENV": "prod"}, "backfill", "--from", "2019-01", "--to", "2019-02"),
        "delitos backfill runs the embedded platform (a lake folder and DuckDB), but DELITOS_ENV=prod is set",
    ),
    "delitos backfill before the first month": (
        lambda w: w.delitos("backfill", "--from", "2005-01", "--to", "2005-06", *ON_THE_WORLD),
        "the range of months 2005-01-01...2005-06-01 reaches outside the calendar: the valid months are 2006-05-01...",
    ),
    "delitos backfill reversed": (
        lambda w: w.delitos("backfill", "--from", "2020-03", "--to", "2020-01", *ON_THE_WORLD),
        "the range of months 2020-03-01...2020-01-01 is reversed (the first month comes first)",
    ),
    "delitos backfill --from 2024-13": (
        lambda w: w.delitos("backfill", "--from", "2024-13", "--to", "2024-12"),
        "argument --from: '2024-13' is not a month like 2024-01",
    ),
    "delitos backfill --source real on the demo's lake": (
        lambda w: w.delitos("backfill", "--from", "2019-03", "--to", "2019-03", "--source", "real", *ON_THE_WORLD),
        "was built from our SODA emulator (delitos demo), not from https://www.datos.gov.co: open it with `delitos "
        "dev`",
    ),
    "delitos dev --source real on the demo's lake": (
        lambda w: w.delitos("dev", "--source", "real", *ON_THE_WORLD),
        "was built from our SODA emulator (delitos demo), not from https://www.datos.gov.co: open it with `delitos "
        "dev`",
    ),
    "delitos dev --source of no kind": (
        lambda w: w.delitos("dev", "--source", "ftp://example.org", *ON_THE_WORLD),
        "--source must be emulator, real or a URL like https://www.datos.gov.co, not 'ftp://example.org'",
    ),
    "delitos dev --port 99999": (
        lambda w: w.delitos("dev", "--port", "99999"),
        "delitos dev: argument --port: 99999 is not a port number (0-65535)",
    ),
    "delitos sql of a column that is not there": (
        lambda w: w.delitos("sql", "select nope from gold.resumen_general", "--data-dir", "."),
        'delitos sql: DuckDB refused the query: Binder Error: Referenced column "nope" not found',
    ),
    "delitos sql without a warehouse": (
        lambda w: w.delitos("sql", "select 1", "--data-dir", "data"),
        "there is no warehouse at",
    ),
    "delitos synthesize --rows 0": (
        lambda w: w.delitos("synthesize", "--rows", "0", "--output", str(w.root / "out.json.gz")),
        "--rows must be at least 1",
    ),
    "delitos with no such command": (
        lambda w: w.delitos("frobnicate"),
        "argument command: invalid choice: 'frobnicate'",
    ),
}


# What a case puts in place before it runs (the bad file is the input; from there nothing may change).
PREPARE: dict[str, Callable[[World], None]] = {
    "corrupt lake object": lambda w: _garbage(w.lake.path(data_key(MONTH))),
    "truncated quarantine object": lambda w: _truncated(w.lake.path(quarantine_key(MONTH))),
    "delitos emulator --snapshot malformed": _malformed_snapshot,
    "delitos demo --snapshot malformed": _malformed_snapshot,
    "DELITOS_ENV=staging delitos demo": _malformed_snapshot,
    "DELITOS_ENV=prod delitos demo": _malformed_snapshot,
    "delitos backfill --source real on the demo's lake": _demo_lake,
    "delitos dev --source real on the demo's lake": _demo_lake,
    "delitos sql of a column that is not there": _warehouse_with_gold,
}


@pytest.fixture(scope="module")
def loaded(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with March 2019 published, built once; each test gets a copy (and bronze reads the lake first)."""
    root = tmp_path_factory.mktemp("loaded")
    assert materialize_lake(socrata_for(emulator), LocalLake(root=str(root / "lake")), MONTH).success
    (root / "snapshot.json").write_text("[]")  # a file where a folder belongs; a snapshot that loads at once
    return root


@pytest.fixture
def world(loaded: Path, emulator: EmulatorServer, tmp_path: Path, capsys, monkeypatch) -> Iterator[World]:
    root = tmp_path / "world"
    shutil.copytree(loaded, root)
    monkeypatch.chdir(root)
    yield World(root, emulator, capsys)


def _files(root: Path) -> dict[str, bytes]:
    # Lock files hold no data: a run that would write the warehouse takes its lock before it reads any input.
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix != ".lock"
    }


def assert_one_sentence(message: str) -> None:
    """One line, no traceback, no query string, no secret."""
    message = message.strip()
    assert message and "\n" not in message, message
    assert "Traceback" not in message and not re.search(r"\w(Error|Exception|Invalid): ", message), message
    for leak in ("$select", "$where", "/resource/", TOKEN):
        assert leak not in message, message


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_one_sentence_and_writes_nothing(world: World, case: str):
    give, says = CASES[case]
    PREPARE.get(case, lambda _: None)(world)
    before = _files(world.root)
    message = give(world)

    assert_one_sentence(message)
    assert says in message, message
    assert _files(world.root) == before
