"""``SocrataResource``: the real ``sodapy`` client, with retries on the adapter and readable failures."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import requests
from pydantic import Field
from requests.adapters import HTTPAdapter
from sodapy import Socrata
from sodapy import utils as sodapy_utils
from urllib3.util.retry import Retry

from delitos_platform.contract import DATASET_ID

T = TypeVar("T")

# Socrata's ceiling for one page; the row key ``:id`` is the only stable order.
MAX_PAGE_SIZE = 50_000
RETRIED_STATUSES = (429, 500, 502, 503, 504)


class SocrataError(Exception):
    """A Socrata failure told in one sentence (no traceback needed, never a secret)."""


class SocrataResource(dg.ConfigurableResource):
    """Reads dataset ``4v6r-wu98`` (or another) through ``sodapy``, paging by ``:id`` with retries."""

    url: str = Field(default="https://www.datos.gov.co", description="Base URL of the Socrata domain.")
    dataset_id: str = Field(default=DATASET_ID, description="The dataset's four-by-four id.")
    app_token: str | None = Field(default=None, description="Socrata app token, sent as X-App-Token.")
    page_size: int = Field(default=MAX_PAGE_SIZE, gt=0, le=MAX_PAGE_SIZE, description="Rows per page.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Connect/read timeout per request.")
    max_retries: int = Field(default=5, ge=0, description="Retries per request on 429, 5xx and resets.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="Backoff factor between retries.")
    concurrent_requests: int = Field(
        default=2, ge=1, le=8, description="Sub-windows of a window paged at once (each by keyset, in order)."
    )

    @property
    def shown_url(self) -> str:
        """The URL as messages may show it: credentials written into it are never repeated."""
        parts = urlsplit(self.url)
        if parts.username is None and parts.password is None:
            return self.url
        return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()

    @contextmanager
    def client(self) -> Iterator[Socrata]:
        """A ``sodapy`` client whose session retries 429/5xx/timeouts/resets with backoff."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SocrataError(f"SOCRATA_URL must look like https://www.datos.gov.co, not {self.shown_url!r}")
        adapter = HTTPAdapter(max_retries=self._retry())
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

    def _retry(self) -> Retry:
        return Retry(
            total=self.max_retries,
            connect=self.max_retries,
            read=self.max_retries,
            status=self.max_retries,
            backoff_factor=self.backoff_seconds,
            status_forcelist=RETRIED_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=True,
        )

    def metadata(self) -> dict[str, Any]:
        """The dataset's metadata (``/api/views/{id}.json``): name, ``rowsUpdatedAt``, columns."""
        with self.client() as client:
            return self.call(lambda: client.get_metadata(self.dataset_id))

    def query(self, **soql: Any) -> list[dict[str, str]]:
        """One SoQL request (``select=``, ``where=``, ``group=``, ``order=``, ``limit=``, ...)."""
        with self.client() as client:
            return self.call(lambda: client.get(self.dataset_id, **soql))

    def count(self, where: str) -> int:
        """``count(*)`` of the rows matching ``where``, asked of the source."""
        rows = self.query(select="count(*) AS n", where=where)
        return int(rows[0]["n"]) if rows else 0

    def pages(self, select: Sequence[str], where: str) -> Iterator[pa.Table]:
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
            url = (
                client.uri_prefix
                + client.domain
                + sodapy_utils.format_new_api_request(dataid=self.dataset_id, content_type="json")
            )
            last_id: str | None = None
            while True:
                params = {"$select": ", ".join(select), "$where": _after(where, last_id), "$order": ":id"}
                params["$limit"] = self.page_size
                page = self.call(lambda params=params: decoder.decode(_get_json_bytes(client, url, params)))
                yield page
                if page.num_rows < self.page_size:
                    return
                last_id = pc.max(page["row_id"]).as_py()

    def call(self, request: Callable[[], T]) -> T:
        """Run one request, retrying bodies cut short, and turn every failure into a ``SocrataError``."""
        for attempt in range(self.max_retries + 1):
            try:
                return request()
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
                # urllib3's Retry cannot see a body cut short after the headers arrived.
                if attempt == self.max_retries:
                    raise SocrataError(
                        f"Socrata at {self.shown_url} kept cutting responses short after {self.max_retries} retries"
                    ) from None
                time.sleep(self.backoff_seconds * 2**attempt)
            except requests.exceptions.RequestException as error:
                raise SocrataError(self.explain(error)) from None
        raise AssertionError("unreachable")

    def explain(self, error: requests.exceptions.RequestException) -> str:
        """One sentence for a failed request; never quotes headers, so the token cannot leak."""
        where = f"Socrata at {self.shown_url}"
        if isinstance(error, requests.exceptions.RetryError):
            reason = str(getattr(error.args[0], "reason", error)) if error.args else str(error)
            if "429" in reason:
                return f"{where} kept throttling requests (HTTP 429) after {self.max_retries} retries"
            return f"{where} kept failing after {self.max_retries} retries ({_short(reason)})"
        if isinstance(error, requests.exceptions.Timeout):
            return f"{where} did not answer within {self.timeout_seconds:g} s ({self.max_retries} retries)"
        if isinstance(error, requests.exceptions.ConnectionError):
            return f"cannot reach {where}: {_connection_reason(str(error))}"
        if isinstance(error, requests.exceptions.HTTPError) and error.response is not None:
            return self._explain_status(error.response)
        return f"{where} failed: {_short(str(error))}"

    def _explain_status(self, response: requests.Response) -> str:
        status = response.status_code
        message = _message_of(response)
        if status == 404:
            return f"dataset {self.dataset_id!r} does not exist at {self.shown_url} ({message or 'not found'})"
        if status in (401, 403):
            return f"Socrata at {self.shown_url} refused the request (HTTP {status}): check SOCRATA_APP_TOKEN" + (
                f" ({message})" if message else ""
            )
        if status == 400:
            return f"Socrata rejected the query: {message or response.reason}"
        return f"Socrata at {self.shown_url} answered HTTP {status}: {message or response.reason}"


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
        """The page's rows (in no particular order), or a ``SocrataError`` if it is not a JSON array.

        Safe to call from several threads at once: each call reads through a cursor of its own.
        """
        # DuckDB reads a file far more frugally than a Python file object.
        with tempfile.NamedTemporaryFile(suffix=".json") as page, self._duckdb.cursor() as reader:
            page.write(body)
            page.flush()
            try:
                relation = reader.read_json(page.name, format="array", columns=self._columns)
                table = relation.to_arrow_table()
            except duckdb.Error as error:
                reason = _short(str(error))
                raise SocrataError(f"Socrata sent a page that is not a JSON array of rows: {reason}") from None
        return table.rename_columns(self.names)


def _after(where: str, last_id: str | None) -> str:
    """``where`` narrowed to the rows past ``last_id`` in ``:id`` order (the keyset of the next page)."""
    if last_id is None:
        return where
    quoted = last_id.replace("'", "''")
    return f"({where}) AND :id > '{quoted}'"


def _get_json_bytes(client: Socrata, url: str, params: dict[str, Any]) -> bytes:
    """One GET through sodapy's session (token, adapter) with sodapy's own error reporting."""
    response = client.session.get(url, params=params, timeout=client.timeout)
    if response.status_code not in (200, 202):
        sodapy_utils.raise_for_status(response)
    content_type = response.headers.get("content-type", "")
    if not content_type.lower().startswith("application/json"):
        raise SocrataError(f"Socrata answered {content_type or 'no content type'} instead of JSON")
    return response.content


def _message_of(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("message") if isinstance(body, dict) else None


def _connection_reason(text: str) -> str:
    """The useful end of urllib3's long connection-error chain."""
    for needle, reason in (
        ("refused", "connection refused"),
        ("resolve", "host name not found"),
        ("Name or service not known", "host name not found"),
        ("reset", "connection reset"),
        ("aborted", "connection aborted"),
    ):
        if needle in text:
            return reason
    return _short(text)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
