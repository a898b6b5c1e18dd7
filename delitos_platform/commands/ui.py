"""Where the Dagster UI of an instance runs, so that a command names the UI that is actually there, or none.

``delitos dev`` records its address in the instance folder while it serves it (on any ``--port``); another
command (``delitos backfill``, ``delitos demo``) asks that address, and Dagster's default one, whether it knows the
run just made: a UI that answers for that run id reads this instance, whatever else listens on the port.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

DEFAULT_UI_URL = "http://127.0.0.1:3000"
UI_RECORD = "delitos-dev-url"  # in the instance folder, while `delitos dev` serves it
PROBE_SECONDS = 2.0
RUN_QUERY = "query ($runId: ID!) { runOrError(runId: $runId) { __typename } }"


def local_url(host: str, port: int) -> str:
    """The address a browser on this machine opens for a UI listening on ``host:port``."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{reachable}:{port}"


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (binding as the webserver will, address reuse on)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def recording(home: Path, url: str) -> Iterator[None]:
    """Record ``url`` as the instance's UI while the block runs."""
    record = home / UI_RECORD
    record.write_text(url + "\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if record.read_text().strip() == url:  # another `delitos dev` took over the record meanwhile
                record.unlink()


def running_ui(home: Path, run_id: str) -> str | None:
    """The address of a UI on this instance (it knows ``run_id``): the one ``delitos dev`` recorded, else the
    default one; ``None`` when none answers."""
    record = home / UI_RECORD
    recorded = record.read_text().strip() if record.is_file() else None
    for url in dict.fromkeys(filter(None, (recorded, DEFAULT_UI_URL))):
        if knows_run(url, run_id):
            return url
    return None


def knows_run(url: str, run_id: str) -> bool:
    """Whether the Dagster webserver at ``url`` answers and holds the run ``run_id``."""
    import requests

    try:
        response = requests.post(
            f"{url}/graphql", json={"query": RUN_QUERY, "variables": {"runId": run_id}}, timeout=PROBE_SECONDS
        )
        return response.ok and response.json()["data"]["runOrError"]["__typename"] == "Run"
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return False
