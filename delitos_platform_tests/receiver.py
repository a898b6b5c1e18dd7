"""A real HTTP receiver on loopback standing in for a webhook and Slack's Web API: it records every POST."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on loopback that records every POST and answers ``status`` with Slack's ``{"ok": true}``."""

    url: str = ""
    status: int = 200
    requests: list[Request] = field(default_factory=list)

    def posted_to(self, prefix: str) -> list[Request]:
        return [request for request in self.requests if request.path.startswith(prefix)]


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver serving from a thread until the block ends."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(Request(self.path, dict(self.headers.items()), body))
            answer = json.dumps({"ok": state.status == 200}).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
