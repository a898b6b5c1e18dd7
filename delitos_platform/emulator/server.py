"""The HTTP side of the emulator: SODA endpoints, faults and the optional admin endpoint.

Built on the stdlib ``ThreadingHTTPServer`` because faults need raw control of the socket
(resets without a response, bodies shorter than their ``Content-Length``).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import duckdb

from delitos_platform.contract import DATASET_ID, ENTRY, metadata_type
from delitos_platform.datasets import DatasetEntry, configured
from delitos_platform.emulator.faults import Fault, Faults
from delitos_platform.emulator.snapshot import DEFAULT_SNAPSHOT, LOAD_TIME, Dataset, Snapshot, contract_types
from delitos_platform.emulator.soql import CompiledQuery, SoqlError, compile_query, compile_soda3

# The portal's own spellings, as recorded: rows say ``;charset``, the metadata and errors ``; charset``.
ROWS_TYPE = "application/json;charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
SODA2, SODA3 = "soda2", "soda3"
_RESOURCE = re.compile(r"^/resource/([^/.]+)(?:\.json)?$")
_QUERY_V3 = re.compile(r"^/api/v3/views/([^/.]+)/query\.json$")
_VIEW = re.compile(r"^/api/views/([^/.]+)(?:\.json)?$")
_NO_CACHE = {"Cache-Control": "private, no-cache, must-revalidate"}
_NOT_FOUND_HEADERS = {"X-Error-Code": "not_found", "X-Error-Message": "Not found"}
_FAULT_BODIES = {
    "429": (429, {"code": "too_many_requests", "error": True, "message": "Too many requests, slow down"}),
    "500": (500, {"code": "internal_error", "error": True, "message": "Internal error"}),
    "503": (503, {"code": "service_unavailable", "error": True, "message": "Service temporarily unavailable"}),
    "403": (403, {"code": "forbidden", "error": True, "message": "Forbidden"}),
    "object": (200, {"code": "unexpected", "error": False, "message": "Query accepted"}),
}
# A portal's maintenance page, served with a 200 as some portals do while they are being upgraded.
MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Portal en mantenimiento</title></head>"
    b"<body><h1>Estamos realizando tareas de mantenimiento</h1></body></html>"
)


def _soda2_error(code: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A SODA2 error body, as the portal sends it: ``code``, ``error``, ``message`` and ``data``."""
    return {"code": code, "error": True, "message": message, "data": data or {}}


def _missing(dataset_id: str, code: str = "dataset.missing") -> dict[str, Any]:
    """The portal's 404 body: ``dataset.missing`` from ``/resource/``, ``not_found`` from ``/api/views/``."""
    return _soda2_error(code, "Not found", {"id": dataset_id})


def _v3_error(code: str, message: str) -> dict[str, Any]:
    """A SODA3 error body (its shape is our reading of the v3 answers: ``errorCode`` rather than ``code``)."""
    return {"errorCode": code, "message": message, "data": {}}


def _v3_request(request: Any) -> tuple[str, tuple[int, int] | None, bool]:
    """The query text, the page and ``includeSynthetic`` of a SODA3 request body (a SoqlError when malformed)."""
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        raise SoqlError("The request body must be a JSON object with a query", "query.body.invalid")
    page = request.get("page")
    if page is None:
        return request["query"], None, bool(request.get("includeSynthetic", False))
    try:
        numbers = (int(page["pageNumber"]), int(page["pageSize"]))
    except (TypeError, KeyError, ValueError):
        raise SoqlError("page must be an object with pageNumber and pageSize", "query.page.invalid") from None
    return request["query"], numbers, bool(request.get("includeSynthetic", False))


def portal_json(document: Any) -> bytes:
    """A JSON document laid out as the portal writes metadata and errors (two-space indent, ``"key" : value``)."""
    return (json.dumps(document, ensure_ascii=False, indent=2, separators=(",", " : ")) + "\n").encode()


def compact_json(value: Any) -> str:
    """JSON without spaces, as in the portal's ``X-SODA2-Fields`` and ``X-SODA2-Types`` headers."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def served_entry(dataset_id: str) -> DatasetEntry:
    """The entry a dataset is served by: its own, or 4v6r-wu98's for an id no entry configures."""
    return configured().get(dataset_id, ENTRY)


def load_dataset(dataset_id: str, snapshot: Snapshot, on_disk: bool | None = None) -> Dataset:
    """One dataset to serve, its columns those of its entry (:func:`served_entry`) first."""
    entry = served_entry(dataset_id)
    options = {"name": entry.title, "contract": contract_types(entry)}
    if isinstance(snapshot, str | Path):
        return Dataset.from_file(snapshot, dataset_id, on_disk=on_disk, **options)
    return Dataset(list(snapshot), dataset_id, on_disk=bool(on_disk), **options)


class EmulatorServer:
    """A SODA-compatible server over one dataset or several, serving from a background thread."""

    def __init__(
        self,
        snapshot: Snapshot = DEFAULT_SNAPSHOT,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        dataset_id: str = DATASET_ID,
        datasets: Mapping[str, Snapshot] | None = None,
        admin: bool = False,
        seed: int = 0,
        on_disk: bool | None = None,
        apis: Iterable[str] = (SODA2, SODA3),
        app_token: str | None = None,
        require_token: bool = False,
    ):
        """Load ``snapshot`` (a .json/.json.gz file, or the rows themselves); raises ValueError if malformed.

        ``datasets``: serve these instead of ``snapshot`` as ``dataset_id`` (dataset id -> snapshot), each at its
        own ``/resource/{id}.json``; the first is :attr:`dataset`, which ``/admin/`` changes unless a request's
        body names another (``"dataset"``).
        ``on_disk``: hold the rows in a temporary database file rather than in memory; by default only a
        large snapshot file is (see :meth:`Dataset.from_file`). ``apis``: which query APIs the portal has
        (SODA2 ``GET /resource/…``, SODA3 ``POST /api/v3/views/…/query.json``); the other answers 404.
        ``app_token``: the one valid app token (any other is refused, 403); ``require_token``: SODA3 queries
        without a token are refused (401), as Socrata's documentation says v3 requests must carry one.
        """
        self.apis = frozenset(apis)
        if not self.apis or not self.apis <= {SODA2, SODA3}:
            raise ValueError(f"apis must be some of {SODA2} and {SODA3}, not {sorted(self.apis)}")
        self.app_token, self.require_token = app_token, require_token
        self.datasets: dict[str, Dataset] = {}
        try:
            for served_id, served in (datasets or {dataset_id: snapshot}).items():
                self.datasets[served_id] = load_dataset(served_id, served, on_disk)
        except BaseException:
            self._close_datasets()
            raise
        self.host, self.port = host, port
        self.admin = admin
        self.faults = Faults(seed)
        self.requests_served = 0
        self._count_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dataset(self) -> Dataset:
        """The first dataset served (the only one, unless several were asked for)."""
        return next(iter(self.datasets.values()))

    @property
    def dataset_id(self) -> str:
        """The id the first dataset is served under."""
        return self.dataset.dataset_id

    def served(self, dataset_id: str) -> Dataset:
        """The dataset served as ``dataset_id`` (a ValueError naming the ids served when none is)."""
        if dataset_id not in self.datasets:
            raise ValueError(f"no dataset {dataset_id!r} is served (served: {', '.join(self.datasets)})")
        return self.datasets[dataset_id]

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Bind and serve in a daemon thread; returns ``self``."""
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="soda-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Block until :meth:`stop` is called (from a signal handler or another thread)."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.2)

    def stop(self) -> None:
        """Stop serving, release the port, and close the datasets (their temporary folders are removed)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self._close_datasets()

    def _close_datasets(self) -> None:
        for dataset in self.datasets.values():
            dataset.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def count_request(self) -> None:
        """Count one /resource or /api/views request."""
        with self._count_lock:
            self.requests_served += 1

    def metadata(self, dataset_id: str | None = None) -> dict[str, Any]:
        """The ``/api/views/{id}.json`` document of a dataset served (by default the first), shaped as the portal's.

        Its columns are the dataset's, typed as the portal's metadata names them: its entry's, unless the data
        drifted. The portal's column statistics (``cachedContents``, ``width``) are left out: no client of ours
        reads them.
        """
        dataset = self.dataset if dataset_id is None else self.served(dataset_id)
        entry = served_entry(dataset.dataset_id)
        columns = [
            {
                "id": 1000 + position,
                "name": column.field_name,
                "dataTypeName": metadata_type(column.data_type),
                "description": "",
                "fieldName": column.field_name,
                "position": position,
                "renderTypeName": metadata_type(column.data_type),
                "tableColumnId": 2000 + position,
                "format": {},
            }
            for position, column in enumerate(dataset.columns, start=1)
        ]
        return {
            "id": dataset.dataset_id,
            "name": dataset.name,
            "assetType": "dataset",
            "attribution": entry.attribution,
            "attributionLink": f"https://www.datos.gov.co/d/{dataset.dataset_id}",
            "averageRating": 0,
            "category": "Seguridad y Defensa",
            "createdAt": int(LOAD_TIME.timestamp()),
            "description": f"{entry.title} reportados por la Policía Nacional (emulated)",
            "displayType": "table",
            "downloadCount": 0,
            "hideFromCatalog": False,
            "hideFromDataJson": False,
            "licenseId": "CC_BY_SA_40",
            "locale": "",
            "newBackend": True,
            "numberOfComments": 0,
            "provenance": "official",
            "publicationAppendEnabled": False,
            "publicationDate": int(LOAD_TIME.timestamp()),
            "publicationStage": "published",
            "rowsUpdatedAt": dataset.rows_updated_at,
            "totalTimesRated": 0,
            "viewCount": 0,
            "viewLastModified": dataset.rows_updated_at,
            "viewType": "tabular",
            "columns": columns,
            "license": {"name": "Creative Commons Attribution | Share Alike 4.0 International"},
            "rights": ["read"],
            "tags": [],
            "flags": ["default"],
        }


class _Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive with Content-Length on every response."""

    protocol_version = "HTTP/1.1"
    server_version = "soda-emulator/1.0"
    timeout = 60  # drop idle keep-alive connections so their threads end
    emulator: EmulatorServer
    _body: bytes = b""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and benchmarks make thousands of requests."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------ routing
    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        try:
            # Read first, whatever answers: a body left unread would be taken for the connection's next request.
            self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path.startswith("/admin/"):
                self._admin(method, path)
                return
            resource, view, query_v3 = _RESOURCE.match(path), _VIEW.match(path), _QUERY_V3.match(path)
            if not (resource or view or query_v3) or method != ("POST" if query_v3 else "GET"):
                self._json(404, {"code": "not_found", "error": True, "message": f"Not found: {path}"})
                return
            self.emulator.count_request()
            fault = self.emulator.faults.pick(path)
            if fault is not None and self._fault_answers(fault):
                return
            params = parse_qsl(parts.query, keep_blank_values=True)
            if view:
                self._view(view.group(1), fault)
            elif self._refused(SODA3 if query_v3 else SODA2, dict(params)):
                return
            elif resource:
                self._resource(resource.group(1), params, fault)
            else:
                self._query_v3(query_v3.group(1), fault)  # type: ignore[union-attr]
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _fault_answers(self, fault: Fault) -> bool:
        """Apply a fault; True when it replaced the response (``slow`` and ``truncate`` do not)."""
        if fault.kind in _FAULT_BODIES:
            status, body = _FAULT_BODIES[fault.kind]
            headers = {"Retry-After": str(fault.retry_after)} if fault.announces_retry_after else {}
            self._json(status, body, headers)
            return True
        if fault.kind == "html":
            self._send(200, MAINTENANCE_PAGE, {}, None, "text/html; charset=utf-8")
            return True
        if fault.kind == "202":
            self._send(202, b"[]\n", {}, None, ROWS_TYPE)
            return True
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return False
        if fault.kind == "reset":
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN: a connection reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return True
        return False  # truncate: answered by _send

    # ---------------------------------------------------------- endpoints
    def _resource(self, dataset_id: str, query: list[tuple[str, str]], fault: Fault | None) -> None:
        dataset = self.emulator.datasets.get(dataset_id)
        if dataset is None:
            self._json(404, _missing(dataset_id), _NO_CACHE)
            return
        params = dict(query)
        version, updated = dataset.version, dataset.rows_updated_at
        etag = '"' + hashlib.md5(f"{version}|{sorted(params.items())}".encode()).hexdigest() + '"'
        modified = formatdate(updated, usegmt=True)
        headers = {
            "Last-Modified": modified,
            "ETag": etag,
            "X-SODA2-Truth-Last-Modified": modified,
            "X-SODA2-Secondary-Last-Modified": modified,
            "X-SODA2-Data-Out-Of-Date": "false",
        }
        if self.headers.get("If-None-Match") == etag and fault is None:
            self._send(304, b"", headers, None)
            return
        try:
            compiled = compile_query(params, list(dataset.columns))
        except SoqlError as error:
            self._json(400, error.body())
            return
        headers["X-SODA2-Fields"] = compact_json(compiled.fields)
        headers["X-SODA2-Types"] = compact_json(compiled.types)
        self._rows(dataset, compiled, headers, fault)

    def _refused(self, api: str, params: Mapping[str, str]) -> bool:
        """Answer for a portal without this API, or a request without a valid token; True when it answered."""
        emulator = self.emulator
        error = _v3_error if api == SODA3 else _soda2_error
        if api not in emulator.apis:
            self._json(404, error("not_found", "Not found"))
            return True
        token = self.headers.get("X-App-Token") or params.get("$$app_token")
        if token and emulator.app_token is not None and token != emulator.app_token:
            self._json(403, error("authentication_required", "Invalid app_token specified"))
            return True
        if api == SODA3 and emulator.require_token and not token:
            self._json(401, error("authentication_required", "You must be logged in or provide an app token"))
            return True
        return False

    def _query_v3(self, dataset_id: str, fault: Fault | None) -> None:
        """``POST /api/v3/views/{id}/query.json``: ``{"query": …, "page": {…}, "includeSynthetic": …}``."""
        dataset = self.emulator.datasets.get(dataset_id)
        if dataset is None:
            self._json(404, _v3_error("not_found", f"Not found: view {dataset_id}"), _NO_CACHE)
            return
        try:
            request = json.loads(self._body or b"null")
            query, page, synthetic = _v3_request(request)
            compiled = compile_soda3(query, list(dataset.columns), page, synthetic)
        except SoqlError as error:
            self._json(400, error.body())
            return
        self._rows(dataset, compiled, {"Last-Modified": formatdate(dataset.rows_updated_at, usegmt=True)}, fault)

    def _rows(self, dataset: Dataset, compiled: CompiledQuery, headers: dict[str, str], fault: Fault | None) -> None:
        """Run a compiled query and send its rows as the portal frames them (a query error is a 400)."""
        try:
            rows = dataset.cursor().execute(compiled.sql, compiled.params).fetchall()
        except duckdb.Error as error:
            # A query that compiles but fails in the engine (e.g. an overflow) is still the client's fault.
            first = str(error).splitlines()[0]
            self._json(400, SoqlError(f"Query failed: {first}", "query.execution.failed").body())
            return
        # The portal starts every row but the first on a new line with its comma: ``[{…}\n,{…}]\n``.
        body = ("[" + "\n,".join(row[0] for row in rows) + "]\n").encode()
        self._send(200, body, headers, fault, ROWS_TYPE)

    def _view(self, dataset_id: str, fault: Fault | None) -> None:
        if dataset_id not in self.emulator.datasets:
            self._json(404, _missing(dataset_id, "not_found"), {**_NO_CACHE, **_NOT_FOUND_HEADERS})
            return
        self._send(200, portal_json(self.emulator.metadata(dataset_id)), {}, fault)

    def _admin(self, method: str, path: str) -> None:
        if not self.emulator.admin:
            self._json(404, {"code": "not_found", "error": True, "message": f"Not found: {path}"})
            return
        try:
            payload = json.loads(self._body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            # A body may name the dataset it changes ("dataset"); by default the first served.
            dataset = self.emulator.served(str(payload.get("dataset", self.emulator.dataset_id)))
            result = _admin_action(self.emulator, dataset, method, path, payload)
        except (ValueError, TypeError, KeyError) as error:
            self._json(400, {"code": "bad_request", "error": True, "message": str(error)})
            return
        if result is None:
            self._json(404, {"code": "not_found", "error": True, "message": f"Not found: {method} {path}"})
            return
        result["rowsUpdatedAt"] = dataset.rows_updated_at
        self._json(200, result)

    # ------------------------------------------------------------ output
    def _json(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self._send(status, portal_json(body), headers or {}, None)

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str], fault: Fault | None, content_type: str = JSON_TYPE
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("X-Socrata-RequestId", uuid.uuid4().hex)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if fault is not None and fault.kind == "truncate":
            # Promise the whole body, send half of it, then close: the client sees an incomplete read.
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        if status != 304:
            self.wfile.write(body)


def _admin_faults(emulator: EmulatorServer, dataset: Dataset, payload: dict[str, Any]) -> dict[str, Any]:
    kind = str(payload.pop("kind"))
    if payload.pop("dataset", None) is not None and "paths" not in payload:
        # A fault on a dataset named strikes its endpoints only; unnamed, every dataset's queries.
        payload["paths"] = fault_paths(dataset.dataset_id)
    emulator.faults.inject(kind, **payload)
    return {"ok": True}


def fault_paths(dataset_id: str) -> tuple[str, ...]:
    """The query endpoints of one dataset, SODA2 and SODA3: where a fault on that dataset strikes."""
    return (f"/resource/{dataset_id}", f"/api/v3/views/{dataset_id}/")


def _admin_delete(_emulator: EmulatorServer, dataset: Dataset, payload: dict[str, Any]) -> dict[str, Any]:
    if "month" in payload:
        return {"deleted": dataset.delete_month(str(payload["month"]))}
    return {"deleted": dataset.delete_rows(list(payload["ids"]))}


def _admin_replace_ids(_emulator: EmulatorServer, dataset: Dataset, _payload: dict[str, Any]) -> dict[str, Any]:
    dataset.replace_ids()
    return {"ok": True}


def _admin_touch(_emulator: EmulatorServer, dataset: Dataset, _payload: dict[str, Any]) -> dict[str, Any]:
    dataset.touch()
    return {"ok": True}


def _admin_clear(emulator: EmulatorServer, _dataset: Dataset, _payload: dict[str, Any]) -> dict[str, Any]:
    emulator.faults.clear()
    return {"ok": True}


AdminAction = Callable[[EmulatorServer, Dataset, dict[str, Any]], dict[str, Any]]
# (method, action) -> handler(emulator, the dataset the body names, JSON body) returning the JSON answer.
_ADMIN_ACTIONS: dict[tuple[str, str], AdminAction] = {
    ("POST", "faults"): _admin_faults,
    ("DELETE", "faults"): _admin_clear,
    ("POST", "revise"): lambda _e, d, p: {"ids": d.revise_month(str(p["month"]), int(p.get("rows", 5)))},
    ("POST", "add"): lambda _e, d, p: {"ids": d.add_rows(p["rows"])},
    ("POST", "delete"): _admin_delete,
    ("POST", "replace-ids"): _admin_replace_ids,
    ("POST", "touch"): _admin_touch,
}


def _admin_action(
    emulator: EmulatorServer, dataset: Dataset, method: str, path: str, payload: dict[str, Any]
) -> dict | None:
    """Run one admin request on ``dataset``; ``None`` when no such action exists."""
    handler = _ADMIN_ACTIONS.get((method, path.removeprefix("/admin/").strip("/")))
    return None if handler is None else handler(emulator, dataset, payload)
