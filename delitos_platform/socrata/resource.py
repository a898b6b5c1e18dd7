"""``SocrataResource``: the real ``sodapy`` client, with retries within a time budget and readable failures."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html import unescape
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import requests
from pydantic import Field, PrivateAttr
from requests.adapters import HTTPAdapter
from sodapy import Socrata
from sodapy import utils as sodapy_utils

from delitos_platform.contract import DATASET_ID, SOCRATA_DOMAIN
from delitos_platform.socrata.apis import (
    API_NAMES,
    APIS,
    AUTO,
    NO_SODA3_STATUSES,
    SODA2,
    SODA3,
    soda2_params,
    soda2_path,
    soda3_body,
    soda3_path,
)

T = TypeVar("T")

# Socrata's ceiling for one page; the row key ``:id`` is the only stable order.
MAX_PAGE_SIZE = 50_000
# Answers worth another attempt (a 403 only with Retry-After: some portals throttle with it), and their words.
RETRIED_STATUSES = (202, 429, 500, 502, 503, 504)
_RETRIED_AS = {
    202: "was still computing the answer (HTTP 202)",
    403: "throttled requests (HTTP 403 with Retry-After)",
    429: "throttled requests (HTTP 429)",
}
AGAIN = "run again later"
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (``localhost``, ``127.0.0.0/8``, ``::1``): our emulator."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _AppTokenNotice(logging.Filter):
    """sodapy's advice to use an app token, once per process and never for our emulator on loopback.

    sodapy logs it on the root logger each time a client is built without a token (several times a run); it
    is good advice against the real API, where Socrata throttles anonymous requests, and noise on loopback.
    It logs with ``logging.warning``, which configures the root logger (``basicConfig``) when it has no
    handler: from then on every library's records, Dagster's too, were printed a second time. While a client
    is built, a handler of the moment stands in, so that the root logger stays as the process configured it.
    """

    MESSAGE = "Requests made without an app_token"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()  # clients are built from several threads (sub-windows paged at once)
        self._loopback = False
        self._told = False

    @contextmanager
    def building(self, url: str) -> Iterator[None]:
        """Around the building of a client for ``url``."""
        with self._lock:
            root = logging.getLogger()
            stand_in = None if root.handlers else logging.StreamHandler()
            if stand_in is not None:
                stand_in.setLevel(logging.WARNING)
                root.addHandler(stand_in)
            self._loopback = is_loopback(url)
            try:
                yield
            finally:
                self._loopback = False
                if stand_in is not None:
                    root.removeHandler(stand_in)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(self.MESSAGE):
            return True
        if self._loopback or self._told:
            return False
        self._told = True
        return True


_APP_TOKEN_NOTICE = _AppTokenNotice()
logging.getLogger().addFilter(_APP_TOKEN_NOTICE)  # sodapy calls ``logging.warning``: the root logger's filters apply


class SocrataError(Exception):
    """A Socrata failure told in one sentence (no traceback needed, never a secret)."""


@dataclass(frozen=True)
class Transient:
    """A failure worth another attempt: what the source did, and how long it asked us to wait (if it did)."""

    what: str  # e.g. "throttled requests (HTTP 429)", "answered HTTP 503", "reset the connection"
    retry_after: float | None = None


class SocrataResource(dg.ConfigurableResource):
    """Reads dataset ``4v6r-wu98`` (or another) through ``sodapy``, paging by ``:id`` with retries.

    Every request has a time budget: its attempts, their timeouts and the waits between them together never
    take longer than ``request_budget_seconds``. Throttling (429), server errors (5xx), timeouts, refused or
    reset connections and bodies cut short are tried again, up to ``max_retries`` times, waiting what the source
    asks in ``Retry-After`` (at most ``max_retry_after_seconds``) or else an exponential backoff; each wait is
    logged with its reason. Anything else fails at once. Every failure is one sentence naming what was asked.
    """

    url: str = Field(default=SOCRATA_DOMAIN, description="Base URL of the Socrata domain.")
    dataset_id: str = Field(default=DATASET_ID, description="The dataset's four-by-four id.")
    app_token: str | None = Field(default=None, description="Socrata app token, sent as X-App-Token.")
    page_size: int = Field(default=MAX_PAGE_SIZE, gt=0, le=MAX_PAGE_SIZE, description="Rows per page.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Connect and read timeout of one attempt.")
    request_budget_seconds: float = Field(
        default=180.0, gt=0, description="Most seconds one request may take: its attempts, timeouts and waits."
    )
    max_retries: int = Field(default=5, ge=0, description="Retries per request on 429, 5xx, timeouts and resets.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First wait between retries, doubled each time.")
    max_retry_after_seconds: float = Field(
        default=60.0, ge=0, description="Longest Retry-After honoured; a source asking for more fails at once."
    )
    concurrent_requests: int = Field(
        default=2, ge=1, le=8, description="Sub-windows of a window paged at once (each by keyset, in order)."
    )
    api: str = Field(
        default=AUTO,
        pattern=f"^({'|'.join(APIS)})$",
        description="The query API: auto (SODA3, or SODA2 where the portal has no SODA3), soda3 or soda2.",
    )
    # Under ``auto``, the API the first query found; one choice per resource (a run), shared by its threads.
    _chosen_api: str | None = PrivateAttr(default=None)
    _choosing: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def for_dataset(self, dataset_id: str) -> SocrataResource:
        """The same portal, settings and app token, reading dataset ``dataset_id`` (another of the family)."""
        return self if dataset_id == self.dataset_id else self.model_copy(update={"dataset_id": dataset_id})

    @property
    def shown_url(self) -> str:
        """The URL as messages may show it: credentials written into it are never repeated."""
        parts = urlsplit(self.url)
        if parts.username is None and parts.password is None:
            return self.url
        return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()

    @contextmanager
    def client(self) -> Iterator[Socrata]:
        """A ``sodapy`` client; retries are ``call``'s, not the session's (it sees every failure the same way)."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SocrataError(f"SOCRATA_URL must look like https://www.datos.gov.co, not {self.shown_url!r}")
        # A plain adapter: it never retries, so every failure reaches ``call`` (one mechanism, one budget).
        adapter = HTTPAdapter(max_retries=0)
        with _APP_TOKEN_NOTICE.building(self.url):
            client = Socrata(
                parts.netloc,
                self.app_token or None,
                session_adapter={"prefix": f"{parts.scheme}://", "adapter": adapter},
                timeout=self.timeout_seconds,
            )
        try:
            yield client
        finally:
            client.close()

    def metadata(self, purpose: str = "reading the dataset's metadata") -> dict[str, Any]:
        """The dataset's metadata (``/api/views/{id}.json``): name, ``rowsUpdatedAt``, columns.

        Anything else the portal may send with a 200 (an HTML page, an array, an object without columns) is one
        sentence saying what came, never taken for a dataset whose columns all vanished.
        """
        path = sodapy_utils.format_old_api_request(dataid=self.dataset_id, content_type="json")
        with self.client() as client:
            url = client.uri_prefix + client.domain + path

            def read(timeout: float) -> dict[str, Any]:
                return _metadata_of(_decoded(_checked(client.session.get(url, timeout=timeout))))

            return self.call(read, purpose)

    def query(self, purpose: str = "querying rows", **soql: Any) -> list[dict[str, str]]:
        """One SoQL request (``select=``, ``where=``, ``group=``, ``order=``, ``limit=``, ...).

        ``purpose`` says in a few words what the request is for ("counting rows of 2019-03"); failures name it.
        """
        with self.client() as client:
            return self.call(lambda timeout: _rows_of(_decoded(self._ask(client, soql, timeout))), purpose)

    def count(self, where: str, purpose: str = "counting rows") -> int:
        """``count(*)`` of the rows matching ``where``, asked of the source."""
        rows = self.query(purpose, select="count(*) AS n", where=where)
        return int(rows[0]["n"]) if rows else 0

    def pages(self, select: Sequence[str], where: str, purpose: str = "paging rows") -> Iterator[pa.Table]:
        """Every row matching ``where``, ordered by ``:id``, as Arrow tables of strings, one per page, in order.

        Paged by identity (keyset), never by ``$offset``: each page asks for the rows whose ``:id`` is past the
        last one already here. A row deleted or added while paging can then shift no other row into or out
        of a page: every row is fetched at most once, and every row that lives through the paging is fetched.
        Columns are named as in ``select`` (``:id`` becomes ``row_id``); absent values are nulls. Paging ends
        on the first short page. Pages skip sodapy's decoding into dicts: DuckDB reads the JSON bytes straight
        into columns, an order of magnitude faster.
        """
        if ":id" not in select:
            raise ValueError("keyset paging needs :id among the selected fields")
        decoder = PageDecoder(select)
        with self.client() as client:
            last_id: str | None = None
            while True:
                soql = {"select": ", ".join(select), "where": _after(where, last_id), "order": ":id"}
                soql["limit"] = self.page_size

                def page_of(timeout: float, soql: dict[str, Any] = soql) -> pa.Table:
                    return decoder.decode(self._ask(client, soql, timeout).content)

                page = self.call(page_of, purpose)
                yield page
                if page.num_rows < self.page_size:
                    return
                last_id = pc.max(page["row_id"]).as_py()

    @property
    def api_in_use(self) -> str | None:
        """``soda3`` or ``soda2``: the API queries go through (under ``auto``, None until the first query)."""
        return self._chosen_api if self.api == AUTO else self.api

    def _ask(self, client: Socrata, soql: Mapping[str, Any], timeout: float) -> requests.Response:
        """One query in the API in use, its answer checked; under ``auto`` the first query finds which API.

        ``auto`` asks SODA3 first and falls back to SODA2 only when the portal has no SODA3 for the dataset.
        """
        base = client.uri_prefix + client.domain
        if self.api_in_use == SODA2:
            url = base + soda2_path(self.dataset_id)
            return _checked(client.session.get(url, params=soda2_params(soql), timeout=timeout))
        url = base + soda3_path(self.dataset_id)
        try:
            answer = _checked(client.session.post(url, json=soda3_body(soql), timeout=timeout))
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if self.api != AUTO or self._chosen_api is not None or status not in NO_SODA3_STATUSES:
                raise
            self._choose(SODA2, f"has no SODA3 endpoint for dataset {self.dataset_id} (HTTP {status})")
            return self._ask(client, soql, timeout)
        self._choose(SODA3, f"answers SODA3 queries of dataset {self.dataset_id}")
        return answer

    def _choose(self, api: str, reason: str) -> None:
        """Settle ``auto`` on ``api``, saying so once."""
        if self.api != AUTO or self._chosen_api is not None:
            return
        with self._choosing:
            if self._chosen_api is None:
                self._chosen_api = api
                dg.get_dagster_logger().info(
                    f"Socrata at {self.shown_url} {reason}: queries go through {API_NAMES[api]}"
                )

    def call(self, attempt: Callable[[float], T], purpose: str) -> T:
        """Run one request (``attempt`` takes its timeout in seconds) within its budget, retrying what may pass.

        Raises a ``SocrataError`` in one sentence: what the source did, how often, while doing what.
        """
        started = time.monotonic()
        deadline = started + self.request_budget_seconds
        attempts = self.max_retries + 1
        happened: Counter[str] = Counter()
        for number in range(1, attempts + 1):
            try:
                return attempt(min(self.timeout_seconds, deadline - time.monotonic()))
            except requests.exceptions.RequestException as error:
                failure = self.transient(error, purpose)
            except UnexpectedAnswerError as odd:
                raise SocrataError(
                    f"Socrata at {self.shown_url} answered {odd.what} while {purpose} (dataset {self.dataset_id})"
                    + (f": {odd.advice}" if odd.advice else "")
                ) from None
            happened[failure.what] += 1
            if number == attempts:
                break
            wait = self._wait(failure, number, purpose)
            if time.monotonic() + wait >= deadline:
                raise SocrataError(
                    self._gave_up(happened, purpose, number, started)
                    + f": the request's time budget is {self.request_budget_seconds:g} s"
                )
            dg.get_dagster_logger().warning(
                f"Socrata at {self.shown_url} {failure.what} while {purpose}: attempt {number} of {attempts}, "
                f"waiting {wait:g} s"
            )
            time.sleep(wait)
        raise SocrataError(self._gave_up(happened, purpose, attempts, started))

    def transient(self, error: requests.exceptions.RequestException, purpose: str) -> Transient:
        """What a failed attempt tells: a ``Transient`` worth retrying, or a ``SocrataError`` raised at once."""
        response = getattr(error, "response", None)
        if isinstance(error, requests.exceptions.HTTPError) and response is not None:
            status, retry_after = response.status_code, _retry_after(response)
            if status in RETRIED_STATUSES or (status == 403 and retry_after is not None):
                return Transient(_RETRIED_AS.get(status, f"answered HTTP {status}"), retry_after)
            raise SocrataError(self._explain_status(response, purpose)) from None
        if isinstance(error, requests.exceptions.Timeout):
            return Transient(f"timed out after {self.timeout_seconds:g} s")
        if isinstance(error, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
            return Transient("cut a response short")
        if isinstance(error, requests.exceptions.ConnectionError):
            reason = _connection_reason(str(error))
            if reason == "host name not found":
                raise SocrataError(f"cannot reach Socrata at {self.shown_url}: host name not found") from None
            return Transient(reason)
        raise SocrataError(f"Socrata at {self.shown_url} failed while {purpose}: {_short(str(error))}") from None

    def _wait(self, failure: Transient, number: int, purpose: str) -> float:
        """Seconds to wait before attempt ``number + 1``: what the source asked (within the cap), else backoff."""
        if failure.retry_after is None:
            return self.backoff_seconds * 2 ** (number - 1)
        if failure.retry_after > self.max_retry_after_seconds:
            raise SocrataError(
                f"Socrata at {self.shown_url} {failure.what} while {purpose} and asked to wait "
                f"{failure.retry_after:g} s, more than the {self.max_retry_after_seconds:g} s this platform waits: "
                "run again later"
            )
        return failure.retry_after

    def _gave_up(self, happened: Counter[str], purpose: str, attempts: int, started: float) -> str:
        what = " and ".join(f"{what} {_times(count)}" for what, count in happened.items())
        elapsed = time.monotonic() - started
        return (
            f"Socrata at {self.shown_url} {what} while {purpose} (dataset {self.dataset_id}); gave up after "
            f"{_times(attempts, 'attempt')} in {elapsed:.1f} s"
        )

    def _explain_status(self, response: requests.Response, purpose: str) -> str:
        status = response.status_code
        message = _message_of(response)
        said = f" ({message})" if message else ""
        api = _api_of(response)
        request = f"the {api} request" if api else "the request"
        if status == 404 and api == API_NAMES[SODA3]:
            return (
                f"Socrata at {self.shown_url} answered HTTP 404 to the SODA3 query of dataset {self.dataset_id}"
                f"{said}: the portal has no SODA3 for it, or no such dataset; SOCRATA_API=auto falls back to SODA2"
            )
        if status == 404:
            return f"dataset {self.dataset_id!r} does not exist at {self.shown_url} ({message or 'not found'})"
        if status == 401:
            return (
                f"Socrata at {self.shown_url} refused {request} for dataset {self.dataset_id} (HTTP 401) while "
                f"{purpose}{said}: the portal wants an app token; set SOCRATA_APP_TOKEN (docs/operations.md says how)"
            )
        if status == 403:
            cause = (
                "SOCRATA_APP_TOKEN is not a valid app token here (or the portal throttles it); set a valid one"
                if self.app_token
                else "the portal refuses or throttles anonymous requests; set SOCRATA_APP_TOKEN"
            )
            return (
                f"Socrata at {self.shown_url} refused {request} for dataset {self.dataset_id} (HTTP 403) while "
                f"{purpose}{said}: {cause}"
            )
        if status == 400:
            query = f"the {api} query" if api else "the query"
            return f"Socrata rejected {query}: {message or response.reason} (while {purpose})"
        return f"Socrata at {self.shown_url} answered HTTP {status} while {purpose}: {message or response.reason}"


def _api_of(response: requests.Response) -> str | None:
    """Which query API a response answered (None for the metadata endpoint)."""
    path = urlsplit(response.url or "").path
    if path.startswith("/api/v3/"):
        return API_NAMES[SODA3]
    return API_NAMES[SODA2] if path.startswith("/resource/") else None


class PageDecoder:
    """Turns a SODA JSON page (an array of flat objects of strings) into an Arrow table of strings."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = list(fields)
        self.names = ["row_id" if field == ":id" else field for field in self.fields]
        self._columns = dict.fromkeys(self.fields, "VARCHAR")
        # One DuckDB thread per reader: pages are decoded while others download, and small readers keep
        # DuckDB's buffers (and so the run's peak memory) small.
        self._duckdb = duckdb.connect(config={"threads": 1})

    def decode(self, body: bytes) -> pa.Table:
        """The page's rows (in no particular order), or an ``UnexpectedAnswerError`` if it is not a JSON array.

        Safe to call from several threads at once: each call reads through a cursor of its own.
        """
        if not body.lstrip().startswith(b"["):  # an object or a scalar: say which, as for any other answer
            try:
                _rows_of(json.loads(body))
            except ValueError:
                raise UnexpectedAnswerError("a page that is not JSON (HTTP 200)", AGAIN) from None
        # DuckDB reads a file far more frugally than a Python file object.
        with tempfile.NamedTemporaryFile(suffix=".json") as page, self._duckdb.cursor() as reader:
            page.write(body)
            page.flush()
            try:
                relation = reader.read_json(page.name, format="array", columns=self._columns)
                table = relation.to_arrow_table()
            except duckdb.Error as error:
                reason = _short(str(error))
                raise UnexpectedAnswerError(f"a page that is not a JSON array of rows ({reason})", AGAIN) from None
        return table.rename_columns(self.names)


def _after(where: str, last_id: str | None) -> str:
    """``where`` narrowed to the rows past ``last_id`` in ``:id`` order (the keyset of the next page)."""
    if last_id is None:
        return where
    quoted = last_id.replace("'", "''")
    return f"({where}) AND :id > '{quoted}'"


class UnexpectedAnswerError(Exception):
    """A 200 answer that is not what was asked for: ``what`` came instead, and what to do about it."""

    def __init__(self, what: str, advice: str = "") -> None:
        super().__init__(what)
        self.what, self.advice = what, advice


def _checked(response: requests.Response) -> requests.Response:
    """A JSON answer; failures raised as sodapy raises them, a 202 as one to retry, anything else odd as odd.

    Socrata answers 202 while it is still computing a query: its body (often ``[]``) is not the answer.
    """
    if response.status_code == 202:
        raise requests.exceptions.HTTPError("202 Accepted: still computing", response=response)
    if response.status_code != 200:
        sodapy_utils.raise_for_status(response)
        raise UnexpectedAnswerError(f"HTTP {response.status_code} {response.reason}")
    content_type = response.headers.get("content-type", "")
    if not content_type.lower().startswith("application/json"):
        raise UnexpectedAnswerError(*_not_json(response, content_type))
    return response


def _decoded(response: requests.Response) -> Any:
    """The decoded JSON of a checked answer (``UnexpectedAnswerError`` when it is not JSON at all)."""
    try:
        return response.json()
    except ValueError:
        raise UnexpectedAnswerError("a body that is not JSON although it said so (HTTP 200)", AGAIN) from None


def _not_json(response: requests.Response, content_type: str) -> tuple[str, str]:
    """What a non-JSON 200 was, in words (an HTML page by its title), and what to do."""
    kind = content_type.split(";", maxsplit=1)[0].strip() or "no content type"
    if "html" not in kind:
        return f"{kind} instead of JSON (HTTP 200)", AGAIN
    title = _TITLE.search(response.text[:20_000])
    titled = f" titled {_short(unescape(title.group(1)), 80)!r}" if title else ""
    return f"an HTML page{titled} instead of JSON (HTTP 200)", "the portal may be down for maintenance; run again later"


def _rows_of(answer: Any) -> list[dict[str, str]]:
    """A SODA answer of rows: a JSON array of objects."""
    if isinstance(answer, list) and all(isinstance(row, dict) for row in answer):
        return answer
    return _odd_json(answer, "an array of rows")


def _metadata_of(answer: Any) -> dict[str, Any]:
    """A dataset's metadata: a JSON object with its columns and ``rowsUpdatedAt``."""
    if (
        isinstance(answer, dict)
        and isinstance(answer.get("columns"), list)
        and isinstance(answer.get("rowsUpdatedAt"), int)
    ):
        return answer
    return _odd_json(answer, "the dataset's metadata (an object with columns and rowsUpdatedAt)")


def _odd_json(answer: Any, expected: str) -> Any:
    kind = {dict: "a JSON object", list: "a JSON array"}.get(type(answer), f"a JSON {type(answer).__name__}")
    message = answer.get("message") if isinstance(answer, dict) else None
    said = f" saying {_short(str(message), 120)!r}" if message else ""
    raise UnexpectedAnswerError(f"{kind}{said} instead of {expected} (HTTP 200)", AGAIN)


def _message_of(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("message") if isinstance(body, dict) else None


def _retry_after(response: requests.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number or an HTTP date), or None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _connection_reason(text: str) -> str:
    """What a connection failure was, from urllib3's long chain (never its URL: it holds the query)."""
    for needles, reason in (
        (("refused",), "refused the connection"),
        (("resolve", "Name or service not known", "nodename nor servname"), "host name not found"),
        (("reset", "aborted", "RemoteDisconnected"), "reset the connection"),
    ):
        if any(needle in text for needle in needles):
            return reason
    return "failed to connect"


def _times(count: int, noun: str = "") -> str:
    """``once``, ``twice``, ``3 times`` (or ``1 attempt``, ``3 attempts`` with a noun)."""
    if noun:
        return f"{count} {noun}{'' if count == 1 else 's'}"
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
