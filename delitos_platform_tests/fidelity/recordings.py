"""Real Socrata answers, recorded from a production portal, served again on loopback byte for byte.

The recordings (``shared/data/socrata/recorded/``, VCR cassettes of the sodapy project's test suite, MIT licence)
hold each request a client made of data.cityofnewyork.us in 2025 and the portal's exact answer: status, headers
and body. :class:`ReplayServer` answers a request only when a recording holds the same method, path and query
parameters, so a test also proves that our client asks what a real client asked.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "socrata" / "recorded"
# Hop-by-hop and transport headers: the replay sets its own (the body's length, one connection).
TRANSPORT_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "content-encoding"})


@dataclass(frozen=True)
class Interaction:
    """One recorded request and the portal's answer to it."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        """A response header by name, case-insensitively ('' when absent)."""
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), "")

    @property
    def gzipped(self) -> bool:
        """Whether the portal sent the body gzip-encoded (the recording holds it decoded)."""
        return self.header("Content-Encoding") == "gzip"


@cache
def cassette(name: str) -> tuple[Interaction, ...]:
    """The interactions of one recording, e.g. ``cassette("test_get")``."""
    path = RECORDED / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the fidelity tests need shared/ beside the repository")
    recorded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(_interaction(entry) for entry in recorded["interactions"])


def _interaction(entry: dict[str, Any]) -> Interaction:
    request, response = entry["request"], entry["response"]
    url = urlsplit(request["uri"])
    body = response["body"]["string"]
    return Interaction(
        method=request["method"],
        path=url.path,
        query=tuple(sorted(parse_qsl(url.query, keep_blank_values=True))),
        status=int(response["status"]["code"]),
        headers={
            name: values[0] if isinstance(values, list) else values for name, values in response["headers"].items()
        },
        body=body if isinstance(body, bytes) else body.encode("utf-8"),
    )


class ReplayServer:
    """Answers on loopback exactly as the recorded portal did; an unrecorded request gets a 599 that says so."""

    def __init__(self, *names: str) -> None:
        self.interactions = [interaction for name in names for interaction in cassette(name)]
        self.requests: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
        handler = type("Handler", (_ReplayHandler,), {"server_of": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, method: str, path: str, query: tuple[tuple[str, str], ...]) -> Interaction | None:
        """The recorded answer to this request, if one was recorded."""
        self.requests.append((method, path, query))
        return next(
            (i for i in self.interactions if (i.method, i.path, i.query) == (method, path, query)),
            None,
        )

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _ReplayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_of: ReplayServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what was asked from ``ReplayServer.requests``."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = tuple(sorted(parse_qsl(url.query, keep_blank_values=True)))
        recorded = self.server_of.answer("GET", url.path, query)
        if recorded is None:
            body = f"no recorded answer to GET {self.path}".encode()
            self._send(599, {"Content-Type": "text/plain"}, body)
            return
        headers = {k: v for k, v in recorded.headers.items() if k.lower() not in TRANSPORT_HEADERS}
        body = recorded.body
        if recorded.gzipped:  # as the portal sent it on the wire
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body, mtime=0)
        self._send(recorded.status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response_only(status)  # the recorded Date and Server headers, not ours
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def rows_answers() -> Iterator[Interaction]:
    """Every recorded answer holding rows (``/resource/…``, HTTP 200)."""
    for name in ("test_get", "test_get_all"):
        for interaction in cassette(name):
            if interaction.path.startswith("/resource/") and interaction.status == 200:
                yield interaction
