"""The two query APIs of a Socrata portal, and one query said in either.

SODA2 is ``GET /resource/{id}.json`` with ``$select``, ``$where``… parameters; SODA3 is
``POST /api/v3/views/{id}/query.json`` with the whole SoQL statement in a JSON body. Both answer a JSON array of
rows whose values are strings. A query here is a mapping of clauses (``select``, ``where``, ``group``, ``order``,
``limit``, ``offset``), the same words sodapy takes, so that the platform says each query once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

AUTO, SODA3, SODA2 = "auto", "soda3", "soda2"
APIS = (AUTO, SODA3, SODA2)
API_NAMES = {SODA3: "SODA3", SODA2: "SODA2"}
# What a portal without SODA3 for a dataset answers a v3 query: only these make ``auto`` fall back to SODA2
# (a 401/403 is a token to fix, a 429/5xx a portal to wait for: neither says v3 is missing).
NO_SODA3_STATUSES = (404, 405, 410)
# The clauses of a query in SoQL's order, each with its keyword in a SODA3 statement.
_KEYWORDS = {
    "select": "SELECT",
    "where": "WHERE",
    "group": "GROUP BY",
    "having": "HAVING",
    "order": "ORDER BY",
    "limit": "LIMIT",
    "offset": "OFFSET",
}


def soda2_path(dataset_id: str) -> str:
    """Where SODA2 answers queries of ``dataset_id``."""
    return f"/resource/{dataset_id}.json"


def soda3_path(dataset_id: str) -> str:
    """Where SODA3 answers queries of ``dataset_id``."""
    return f"/api/v3/views/{dataset_id}/query.json"


def soda2_params(clauses: Mapping[str, Any]) -> dict[str, Any]:
    """A query as SODA2's ``$``-parameters."""
    unknown = set(clauses) - set(_KEYWORDS)
    if unknown:
        raise ValueError(f"not SoQL clauses: {', '.join(sorted(unknown))}")
    return {f"${name}": value for name, value in clauses.items() if value is not None}


def soql_statement(clauses: Mapping[str, Any]) -> str:
    """A query as one SoQL statement, clauses in SoQL's order (``SELECT *`` when nothing is selected)."""
    soda2_params(clauses)  # the same clauses, refused the same way
    given = {"select": "*", **{name: value for name, value in clauses.items() if value is not None}}
    return " ".join(f"{keyword} {given[name]}" for name, keyword in _KEYWORDS.items() if name in given)


def soda3_body(clauses: Mapping[str, Any]) -> dict[str, Any]:
    """A query as SODA3's request body.

    Pages stay keyset pages: the statement has its own ``ORDER BY :id`` and ``LIMIT``, and the ``page`` asked is
    always the first, as large as that limit (deep ``pageNumber``s are slow, and shift when rows change). System
    fields come only when selected by name.
    """
    body: dict[str, Any] = {"query": soql_statement(clauses), "includeSynthetic": False}
    if clauses.get("limit") is not None:
        body["page"] = {"pageNumber": 1, "pageSize": int(clauses["limit"])}
    return body
