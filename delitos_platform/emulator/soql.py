"""SoQL → DuckDB SQL.

SoQL is untrusted input, so it is parsed with a real grammar (lark, LALR) into a tree and translated
node by node: identifiers come only from the dataset's column mapping (``c0``, ``_id``, …), functions
only from :data:`FUNCTIONS`, and every literal becomes a bound ``?`` parameter.  Output names are kept
in Python and bound as parameters too; no user text is ever pasted into SQL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from delitos_platform.emulator.snapshot import FLOATING, NUMBER, TEXT, Column

BOOLEAN, ROW_ID, FIXED = "boolean", "row_identifier", "fixed_timestamp"
DEFAULT_LIMIT = 1000
MAX_LIMIT = 50_000
# The system fields: SoQL name -> (SQL column, Socrata type).
SYSTEM_FIELDS = {":id": ("_id", ROW_ID), ":created_at": ("_created_at", FIXED), ":updated_at": ("_updated_at", FIXED)}

GRAMMAR = r"""
start_select: select_item ("," select_item)*
start_where: expr
start_group: expr ("," expr)*
start_order: order_item ("," order_item)*
start_query: _SELECT select_list query_where? query_group? query_having? query_order? query_limit? query_offset?
query_where: _WHERE expr
query_group: _GROUP _BY group_list
query_having: _HAVING expr
query_order: _ORDER _BY order_list
query_limit: _LIMIT NUMBER
query_offset: _OFFSET NUMBER
select_list: select_item ("," select_item)*
group_list: expr ("," expr)*
order_list: order_item ("," order_item)*

select_item: STAR                 -> star
           | SYS_STAR             -> sys_star
           | expr (_AS alias)?    -> item
alias: NAME
order_item: expr (ASC | DESC)?

?expr: or_expr
?or_expr: and_expr | or_expr _OR and_expr          -> or_op
?and_expr: not_expr | and_expr _AND not_expr       -> and_op
?not_expr: comparison | _NOT not_expr              -> not_op
?comparison: sum
    | sum COMP sum                                 -> compare
    | sum _IS _NULL                                -> is_null
    | sum _IS _NOT _NULL                           -> is_not_null
    | sum _BETWEEN sum _AND sum                    -> between
    | sum _NOT _BETWEEN sum _AND sum               -> not_between
    | sum _IN "(" expr_list ")"                    -> in_list
    | sum _NOT _IN "(" expr_list ")"               -> not_in_list
    | sum _LIKE sum                                -> like
    | sum _NOT _LIKE sum                           -> not_like
expr_list: expr ("," expr)*
?sum: product | sum (PLUS | MINUS | CONCAT) product -> arith
?product: unary | product (STAR | SLASH | PERCENT) unary -> arith
?unary: atom | MINUS unary                         -> neg
?atom: STRING                                      -> string
     | NUMBER                                      -> number
     | _TRUE                                       -> true
     | _FALSE                                      -> false
     | _NULL                                       -> null
     | NAME "(" STAR ")"                           -> count_star
     | NAME "(" [expr_list] ")"                    -> call
     | NAME                                        -> column
     | SYSNAME                                     -> column
     | QUOTED_NAME                                 -> column
     | "(" expr ")"

COMP: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
PLUS: "+"
MINUS: "-"
CONCAT: "||"
STAR: "*"
SLASH: "/"
PERCENT: "%"
SYS_STAR: ":*"
NAME: /[a-z_][a-z0-9_]*/i
SYSNAME: /:[a-z_][a-z0-9_]*/i
QUOTED_NAME: /`[^`]+`/
STRING: /'(?:[^']|'')*'/ | /"(?:[^"]|"")*"/
NUMBER: /(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?/i
ASC: "asc"i
DESC: "desc"i
_AS: "as"i
_AND: "and"i
_OR: "or"i
_NOT: "not"i
_IS: "is"i
_NULL: "null"i
_BETWEEN: "between"i
_IN: "in"i
_LIKE: "like"i
_TRUE: "true"i
_FALSE: "false"i
_SELECT: "select"i
_WHERE: "where"i
_GROUP: "group"i
_BY: "by"i
_HAVING: "having"i
_ORDER: "order"i
_LIMIT: "limit"i
_OFFSET: "offset"i
%ignore /[ \t\r\n]+/
"""

PARSER = Lark(
    GRAMMAR,
    parser="lalr",
    start=["start_select", "start_where", "start_group", "start_order", "start_query"],
    maybe_placeholders=False,
)

# Whitelisted scalar functions: name -> (argument types, result type, SQL template).
TIMES = (FLOATING, FIXED)
FUNCTIONS: dict[str, tuple[tuple[tuple[str, ...], ...], str, str]] = {
    "upper": (((TEXT,),), TEXT, "upper({0})"),
    "lower": (((TEXT,),), TEXT, "lower({0})"),
    "length": (((TEXT,),), NUMBER, "CAST(length({0}) AS DOUBLE)"),
    "starts_with": (((TEXT,), (TEXT,)), BOOLEAN, "starts_with({0}, {1})"),
    "abs": (((NUMBER,),), NUMBER, "abs({0})"),
    "date_trunc_y": ((TIMES,), FLOATING, "date_trunc('year', {0})"),
    "date_trunc_ym": ((TIMES,), FLOATING, "date_trunc('month', {0})"),
    "date_trunc_ymd": ((TIMES,), FLOATING, "date_trunc('day', {0})"),
    "date_extract_y": ((TIMES,), NUMBER, "CAST(year({0}) AS DOUBLE)"),
    "date_extract_m": ((TIMES,), NUMBER, "CAST(month({0}) AS DOUBLE)"),
    "date_extract_d": ((TIMES,), NUMBER, "CAST(day({0}) AS DOUBLE)"),
}
# Whitelisted aggregates: name -> (accepted argument types or None for any, result type or None for same).
AGGREGATES: dict[str, tuple[tuple[str, ...] | None, str | None, str]] = {
    "count": (None, NUMBER, "CAST(count({0}) AS DOUBLE)"),
    "sum": ((NUMBER,), NUMBER, "sum({0})"),
    "avg": ((NUMBER,), NUMBER, "avg({0})"),
    "min": (None, None, "min({0})"),
    "max": (None, None, "max({0})"),
}
_COMPARE_SQL = {"=": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITH = {"+": "+", "-": "-", "*": "*", "/": "/", "%": "%"}


class SoqlError(Exception):
    """A query the emulator refuses, rendered as Socrata's HTTP 400 error body."""

    def __init__(self, message: str, code: str = "query.compiler.malformed", **data: Any):
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data

    def body(self) -> dict[str, Any]:
        """The JSON error body Socrata sends with a 400."""
        return {
            "message": f"Query coordinator error: {self.code}; {self.message}",
            "errorCode": self.code,
            "data": self.data,
        }


@dataclass
class Expr:
    """A translated expression: SQL text (only trusted fragments), its parameters and its SoQL type."""

    sql: str
    params: list[Any]
    type: str
    aggregate: bool = False
    literal: str | None = None  # the text of a string literal, which may be coerced to other types
    name: str = "_expr"


@dataclass
class CompiledQuery:
    """A query ready to run: SQL returning one JSON object text per row, its parameters, and headers."""

    sql: str
    params: list[Any]
    fields: list[str]
    types: list[str]
    notes: dict[str, Any] = field(default_factory=dict)


def parse(text: str, start: str, param: str) -> Tree:
    """Parse one SoQL parameter; malformed input raises :class:`SoqlError` quoting the bad part."""
    try:
        return PARSER.parse(text, start=start)
    except UnexpectedInput as error:
        raise _syntax_error(text, error, param) from None


def _syntax_error(text: str, error: UnexpectedInput, param: str) -> SoqlError:
    column = getattr(error, "column", 0) or 0
    position = {"line": 1, "column": column}
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        return SoqlError(f"Unexpected end of input in {param} {text!r}", param=param, position=position)
    if isinstance(error, UnexpectedCharacters):
        bad = text[error.pos_in_stream : error.pos_in_stream + 20]
    elif isinstance(error, UnexpectedToken):
        bad = str(error.token)
    else:  # pragma: no cover - lark has no other kinds today
        bad = text
    return SoqlError(f"Unexpected {bad!r} at column {column} of {param} {text!r}", param=param, position=position)


def _token_text(tree: Tree | Token) -> str:
    return str(tree)


class Compiler:
    """Translates parsed SoQL trees for one dataset (its columns) into SQL fragments."""

    def __init__(self, columns: Sequence[Column]):
        self.fields: dict[str, tuple[str, str]] = {c.field_name: (c.sql, c.data_type) for c in columns}
        self.fields.update(SYSTEM_FIELDS)
        self.columns = list(columns)
        # Set while compiling grouped queries: group expression tree -> its CTE column (``_g0``…).
        self.groups: list[tuple[Tree | Token, str, str]] = []
        self.grouped = False

    # --------------------------------------------------------------- entry
    def expr(self, node: Tree | Token, in_aggregate: bool = False) -> Expr:
        """Translate one expression tree."""
        for tree, sql, kind in self.groups:
            if node == tree and not in_aggregate:
                return Expr(sql, [], kind, name=self._name_of(node))
        if isinstance(node, Token):  # an expression reduced to a single token is a column in "?" rules
            return self._column(node, in_aggregate)
        method = getattr(self, f"_{node.data}", None)
        if method is None:  # pragma: no cover - every grammar rule has a method
            raise SoqlError(f"Unsupported expression {node.data}")
        return method(node, in_aggregate)

    def boolean(self, node: Tree | Token, what: str) -> Expr:
        """Translate a condition; it must be boolean."""
        result = self.expr(node)
        if result.type != BOOLEAN:
            raise SoqlError(f"{what} must be a boolean expression, not {result.type}", "query.soql.type-mismatch")
        return result

    # ----------------------------------------------------------- leaves
    def _column(self, node: Tree | Token, in_aggregate: bool) -> Expr:
        token = node.children[0] if isinstance(node, Tree) else node
        name = str(token)
        if token.type == "QUOTED_NAME":
            name = name[1:-1]
        if name not in self.fields:
            raise SoqlError(f"No such column: {name}", "query.soql.no-such-column", column=name)
        if self.grouped and not in_aggregate:
            raise SoqlError(
                f"Column {name} must appear in $group or be used in an aggregate function",
                "query.soql.not-grouped",
                column=name,
            )
        sql, kind = self.fields[name]
        return Expr(sql, [], kind, name=name)

    def _string(self, node: Tree, _agg: bool) -> Expr:
        raw = str(node.children[0])
        value = raw[1:-1].replace(raw[0] * 2, raw[0])
        return Expr("?", [value], TEXT, literal=value)

    def _number(self, node: Tree, _agg: bool) -> Expr:
        value = float(str(node.children[0]))
        if not math.isfinite(value):
            raise SoqlError(f"Number out of range: {node.children[0]}", "query.soql.type-mismatch")
        return Expr("CAST(? AS DOUBLE)", [value], NUMBER, name=str(node.children[0]))

    def _true(self, _node: Tree, _agg: bool) -> Expr:
        return Expr("TRUE", [], BOOLEAN)

    def _false(self, _node: Tree, _agg: bool) -> Expr:
        return Expr("FALSE", [], BOOLEAN)

    def _null(self, _node: Tree, _agg: bool) -> Expr:
        return Expr("NULL", [], "null")

    # --------------------------------------------------------- functions
    def _count_star(self, node: Tree, in_aggregate: bool) -> Expr:
        name = str(node.children[0]).lower()
        if name != "count":
            raise SoqlError(f"Function {name}(*) does not exist", "query.soql.no-such-function", function=name)
        if in_aggregate:
            raise SoqlError("Aggregate functions cannot be nested", "query.soql.aggregate-in-aggregate")
        return Expr("CAST(count(*) AS DOUBLE)", [], NUMBER, aggregate=True, name="count")

    def _call(self, node: Tree, in_aggregate: bool) -> Expr:
        name = str(node.children[0]).lower()
        arg_nodes = node.children[1].children if len(node.children) > 1 else []
        if name in AGGREGATES:
            return self._aggregate(name, arg_nodes, in_aggregate)
        if name not in FUNCTIONS:
            raise SoqlError(f"Function {name} does not exist", "query.soql.no-such-function", function=name)
        arg_types, result, template = FUNCTIONS[name]
        if len(arg_nodes) != len(arg_types):
            raise SoqlError(
                f"Function {name} takes {len(arg_types)} argument(s), got {len(arg_nodes)}",
                "query.soql.no-such-function",
                function=name,
            )
        args = [self._coerce(self.expr(a, in_aggregate), t, name) for a, t in zip(arg_nodes, arg_types, strict=True)]
        return Expr(
            template.format(*(a.sql for a in args)),
            [p for a in args for p in a.params],
            result,
            aggregate=any(a.aggregate for a in args),
            name=f"{name}_{'_'.join(a.name for a in args)}",
        )

    def _aggregate(self, name: str, arg_nodes: Sequence[Tree | Token], in_aggregate: bool) -> Expr:
        if in_aggregate:
            raise SoqlError("Aggregate functions cannot be nested", "query.soql.aggregate-in-aggregate")
        if len(arg_nodes) != 1:
            raise SoqlError(
                f"Function {name} takes 1 argument, got {len(arg_nodes)}", "query.soql.no-such-function", function=name
            )
        accepted, result, template = AGGREGATES[name]
        arg = self.expr(arg_nodes[0], in_aggregate=True)
        if accepted is not None:
            arg = self._coerce(arg, accepted, name)
        return Expr(template.format(arg.sql), arg.params, result or arg.type, aggregate=True, name=f"{name}_{arg.name}")

    def _coerce(self, value: Expr, accepted: str | tuple[str, ...], where: str) -> Expr:
        """Check ``value`` has an accepted type, turning string literals into numbers or timestamps."""
        accepted = (accepted,) if isinstance(accepted, str) else accepted
        kind = TEXT if value.type == ROW_ID else value.type
        if kind in accepted or value.type in accepted or value.type == "null":
            return value
        if value.literal is not None:
            target = accepted[0]
            if target == NUMBER:
                try:
                    number = float(value.literal)
                except ValueError:
                    number = math.nan
                if math.isfinite(number):
                    return Expr("CAST(? AS DOUBLE)", [number], NUMBER)
            if target in TIMES:
                stamp = parse_timestamp(value.literal)
                if stamp is not None:
                    return Expr("CAST(? AS TIMESTAMP)", [stamp], target)
        raise SoqlError(
            f"Type mismatch in {where}: expected {' or '.join(accepted)}, got {value.type}"
            + (f" {value.literal!r}" if value.literal is not None else f" {value.name}"),
            "query.soql.type-mismatch",
        )

    # -------------------------------------------------------- operators
    def _pair(self, left_node: Tree | Token, right_node: Tree | Token, where: str, agg: bool) -> tuple[Expr, Expr]:
        """Translate two operands, coercing a string literal to the other side's type."""
        left, right = self.expr(left_node, agg), self.expr(right_node, agg)
        if left.literal is not None and right.literal is None:
            left = self._coerce(left, self._family(right.type), where)
        else:
            right = self._coerce(right, self._family(left.type), where)
        return left, right

    @staticmethod
    def _family(kind: str) -> tuple[str, ...]:
        if kind in TIMES:
            return TIMES
        if kind in (TEXT, ROW_ID):
            return (TEXT, ROW_ID)
        return (kind,)

    def _compare(self, node: Tree, agg: bool) -> Expr:
        left_node, op, right_node = node.children
        left, right = self._pair(left_node, right_node, f"operator {op}", agg)
        return self._binary(left, right, f"({left.sql} {_COMPARE_SQL[str(op)]} {right.sql})", BOOLEAN)

    @staticmethod
    def _binary(left: Expr, right: Expr, sql: str, kind: str) -> Expr:
        return Expr(sql, left.params + right.params, kind, aggregate=left.aggregate or right.aggregate)

    def _arith(self, node: Tree, agg: bool) -> Expr:
        left_node, op, right_node = node.children
        if str(op) == "||":
            left = self._coerce(self.expr(left_node, agg), (TEXT, ROW_ID), "operator ||")
            right = self._coerce(self.expr(right_node, agg), (TEXT, ROW_ID), "operator ||")
            return self._binary(left, right, f"({left.sql} || {right.sql})", TEXT)
        left = self._coerce(self.expr(left_node, agg), NUMBER, f"operator {op}")
        right = self._coerce(self.expr(right_node, agg), NUMBER, f"operator {op}")
        return self._binary(left, right, f"({left.sql} {_ARITH[str(op)]} {right.sql})", NUMBER)

    def _neg(self, node: Tree, agg: bool) -> Expr:
        value = self._coerce(self.expr(node.children[1], agg), NUMBER, "unary -")
        return Expr(f"(-{value.sql})", value.params, NUMBER, aggregate=value.aggregate)

    def _logical(self, node: Tree, agg: bool, op: str) -> Expr:
        left = self._coerce(self.expr(node.children[0], agg), BOOLEAN, op)
        right = self._coerce(self.expr(node.children[1], agg), BOOLEAN, op)
        return self._binary(left, right, f"({left.sql} {op} {right.sql})", BOOLEAN)

    def _and_op(self, node: Tree, agg: bool) -> Expr:
        return self._logical(node, agg, "AND")

    def _or_op(self, node: Tree, agg: bool) -> Expr:
        return self._logical(node, agg, "OR")

    def _not_op(self, node: Tree, agg: bool) -> Expr:
        value = self._coerce(self.expr(node.children[0], agg), BOOLEAN, "NOT")
        return Expr(f"(NOT {value.sql})", value.params, BOOLEAN, aggregate=value.aggregate)

    def _is_null(self, node: Tree, agg: bool, negate: bool = False) -> Expr:
        value = self.expr(node.children[0], agg)
        return Expr(
            f"({value.sql} IS {'NOT ' if negate else ''}NULL)", value.params, BOOLEAN, aggregate=value.aggregate
        )

    def _is_not_null(self, node: Tree, agg: bool) -> Expr:
        return self._is_null(node, agg, negate=True)

    def _between(self, node: Tree, agg: bool, negate: bool = False) -> Expr:
        value_node, low_node, high_node = node.children
        value, low = self._pair(value_node, low_node, "between", agg)
        _, high = self._pair(value_node, high_node, "between", agg)
        sql = f"({value.sql} {'NOT ' if negate else ''}BETWEEN {low.sql} AND {high.sql})"
        return Expr(
            sql,
            value.params + low.params + high.params,
            BOOLEAN,
            aggregate=value.aggregate or low.aggregate or high.aggregate,
        )

    def _not_between(self, node: Tree, agg: bool) -> Expr:
        return self._between(node, agg, negate=True)

    def _in_list(self, node: Tree, agg: bool, negate: bool = False) -> Expr:
        value_node, items = node.children
        value = self.expr(value_node, agg)
        options = [self._pair(value_node, item, "in", agg)[1] for item in items.children]
        sql = f"({value.sql} {'NOT ' if negate else ''}IN ({', '.join(o.sql for o in options)}))"
        return Expr(sql, value.params + [p for o in options for p in o.params], BOOLEAN, aggregate=value.aggregate)

    def _not_in_list(self, node: Tree, agg: bool) -> Expr:
        return self._in_list(node, agg, negate=True)

    def _like(self, node: Tree, agg: bool, negate: bool = False) -> Expr:
        value = self._coerce(self.expr(node.children[0], agg), (TEXT, ROW_ID), "like")
        pattern = self._coerce(self.expr(node.children[1], agg), (TEXT, ROW_ID), "like")
        return self._binary(value, pattern, f"({value.sql} {'NOT ' if negate else ''}LIKE {pattern.sql})", BOOLEAN)

    def _not_like(self, node: Tree, agg: bool) -> Expr:
        return self._like(node, agg, negate=True)

    def _name_of(self, node: Tree | Token) -> str:
        """The output name Socrata gives an unaliased expression (computed without group substitution)."""
        groups, grouped = self.groups, self.grouped
        self.groups, self.grouped = [], False
        try:
            return self.expr(node).name
        finally:
            self.groups, self.grouped = groups, grouped


def parse_timestamp(text: str) -> datetime | None:
    """A SoQL floating (or fixed, with ``Z``) timestamp literal as a naive datetime, or ``None``."""
    text = text.strip().removesuffix("Z")
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


# ----------------------------------------------------------------- rendering
def render_sql(column: str, kind: str) -> str:
    """SQL turning a value into its JSON text as Socrata writes it (every scalar as a string).

    ``concat`` is used rather than ``||`` chains: DuckDB builds the result in one allocation.
    """
    if kind == NUMBER:
        # Integral numbers print without ".0"; others use DuckDB's shortest round-trip form.
        value = f"CAST({column} AS DOUBLE)"
        return (
            f"concat('\"', CASE WHEN {value} = trunc({value}) AND abs({value}) < 1e15 "
            f"THEN CAST(CAST({value} AS BIGINT) AS VARCHAR) ELSE CAST({value} AS VARCHAR) END, '\"')"
        )
    if kind == FLOATING:
        return f"concat('\"', strftime({column}, '%Y-%m-%dT%H:%M:%S.%g'), '\"')"
    if kind == FIXED:
        return f"concat('\"', strftime({column}, '%Y-%m-%dT%H:%M:%S.%gZ'), '\"')"
    if kind == BOOLEAN:
        return f"CASE WHEN {column} THEN 'true' ELSE 'false' END"
    return f"to_json(CAST({column} AS VARCHAR))"


def socrata_type(kind: str) -> str:
    """The Socrata type name for the X-SODA2-Types header."""
    return "text" if kind == "null" else kind


# ------------------------------------------------------------------ queries
@dataclass
class Clauses:
    """The SoQL clauses of one request, as trees (``None`` when absent)."""

    select: list[Tree | Token] | None = None
    where: list[Tree | Token] = field(default_factory=list)
    group: list[Tree | Token] | None = None
    having: Tree | Token | None = None
    order: list[Tree] | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    exclude_system: bool = True
    limited: bool = False  # the request said how many rows (else DEFAULT_LIMIT)


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SoqlError(f"{name} must be a non-negative integer, got {raw!r}", param=name) from None
    if value < 0:
        raise SoqlError(f"{name} must be a non-negative integer, got {raw!r}", param=name)
    return value


def read_clauses(params: Mapping[str, str], columns: Sequence[Column]) -> Clauses:
    """Parse the ``$``-parameters (and ``field=value`` filters) of a request."""
    clauses = Clauses()
    known = {
        "$select",
        "$where",
        "$group",
        "$having",
        "$order",
        "$limit",
        "$offset",
        "$query",
        "$$exclude_system_fields",
        "$$app_token",
        "$$version",
    }
    unknown = [name for name in params if name.startswith("$") and name not in known]
    if unknown:
        raise SoqlError(f"Unrecognized arguments [{', '.join(unknown)}]", "query.soql.unknown-parameter")
    if "$query" in params:
        if any(name in params for name in ("$select", "$where", "$group", "$having", "$order", "$limit", "$offset")):
            raise SoqlError("$query cannot be combined with other SoQL parameters")
        _read_query(params["$query"], clauses)
    else:
        _read_parameters(params, clauses)
    if clauses.limit > MAX_LIMIT:
        raise SoqlError(
            f"$limit {clauses.limit} exceeds the maximum of {MAX_LIMIT}",
            "query.execution.limit-exceeded",
            limit=clauses.limit,
            maximum=MAX_LIMIT,
        )
    clauses.exclude_system = params.get("$$exclude_system_fields", "true").strip().lower() != "false"
    names = {c.field_name for c in columns}
    for name, value in params.items():
        if name.startswith("$"):
            continue
        if name not in names and name not in SYSTEM_FIELDS:
            raise SoqlError(f"No such column: {name}", "query.soql.no-such-column", column=name)
        clauses.where.append(_equals(name, value))
    return clauses


def _read_parameters(params: Mapping[str, str], clauses: Clauses) -> None:
    """Parse the separate ``$select``, ``$where``… parameters."""
    if "$select" in params:
        clauses.select = list(parse(params["$select"], "start_select", "$select").children)
    if "$where" in params:
        clauses.where.append(parse(params["$where"], "start_where", "$where").children[0])
    if "$group" in params:
        clauses.group = list(parse(params["$group"], "start_group", "$group").children)
    if "$having" in params:
        clauses.having = parse(params["$having"], "start_where", "$having").children[0]
    if "$order" in params:
        clauses.order = list(parse(params["$order"], "start_order", "$order").children)
    clauses.limit = _int_param(params, "$limit", DEFAULT_LIMIT)
    clauses.offset = _int_param(params, "$offset", 0)
    clauses.limited = "$limit" in params


def _equals(name: str, value: str) -> Tree:
    """The tree of ``name = 'value'`` for a simple ``field=value`` filter (no text is re-parsed)."""
    kind = "SYSNAME" if name.startswith(":") else "NAME"
    quoted = "'" + value.replace("'", "''") + "'"
    return Tree(
        "compare", [Tree("column", [Token(kind, name)]), Token("COMP", "="), Tree("string", [Token("STRING", quoted)])]
    )


def _read_query(text: str, clauses: Clauses) -> None:
    tree = parse(text, "start_query", "$query")
    for child in tree.children:
        value = child.children[0]
        if child.data == "select_list":
            clauses.select = list(child.children)
        elif child.data == "query_where":
            clauses.where.append(value)
        elif child.data == "query_group":
            clauses.group = list(value.children)
        elif child.data == "query_having":
            clauses.having = value
        elif child.data == "query_order":
            clauses.order = list(value.children)
        else:
            number = _int_param({"$query": str(value)}, "$query", 0)
            setattr(clauses, "limit" if child.data == "query_limit" else "offset", number)
            clauses.limited = clauses.limited or child.data == "query_limit"


def compile_query(params: Mapping[str, str], columns: Sequence[Column]) -> CompiledQuery:
    """Compile a request's SoQL parameters into one SQL statement over table ``data``."""
    clauses = read_clauses(params, columns)
    return _Planner(clauses, columns).plan()


def compile_soda3(
    query: str, columns: Sequence[Column], page: tuple[int, int] | None = None, include_synthetic: bool = False
) -> CompiledQuery:
    """Compile a SODA3 query (the body of ``POST /api/v3/views/{id}/query.json``) into one SQL statement.

    ``page`` is ``(pageNumber, pageSize)``, ``pageNumber`` counted from 1: the page of the query's own answer (its
    ``ORDER BY``, its ``LIMIT`` and ``OFFSET``) that those numbers name. ``include_synthetic`` puts the system
    fields in ``*``.
    """
    clauses = read_clauses({"$query": query}, columns)
    clauses.exclude_system = not include_synthetic
    if page is not None:
        number, size = page
        if number < 1 or not 1 <= size <= MAX_LIMIT:
            raise SoqlError(
                f"page must have pageNumber >= 1 and pageSize from 1 to {MAX_LIMIT}, not {number} and {size}",
                "query.page.invalid",
            )
        skipped = (number - 1) * size
        remaining = max(0, clauses.limit - skipped) if clauses.limited else size
        clauses.offset, clauses.limit = clauses.offset + skipped, min(size, remaining)
    return _Planner(clauses, columns).plan()


class _Planner:
    """Builds the SQL statement of one request from its clauses."""

    def __init__(self, clauses: Clauses, columns: Sequence[Column]):
        self.clauses = clauses
        self.columns = list(columns)
        self.compiler = Compiler(columns)

    def _items(self) -> list[tuple[str | None, Tree | Token]]:
        """The select list as (alias or None, expression tree), with ``*`` and ``:*`` expanded."""

        def column(name: str) -> Tree:
            return Tree("column", [Token("SYSNAME" if name.startswith(":") else "NAME", name)])

        data = [(None, column(c.field_name)) for c in self.columns]
        system = [(None, column(name)) for name in SYSTEM_FIELDS]
        if self.clauses.select is None:
            return data if self.clauses.exclude_system else system + data
        items: list[tuple[str | None, Tree | Token]] = []
        for item in self.clauses.select:
            if item.data == "star":
                items.extend(data)
            elif item.data == "sys_star":
                items.extend(system)
            else:
                alias = str(item.children[1].children[0]) if len(item.children) > 1 else None
                items.append((alias, item.children[0]))
        return items

    def _resolve(self, node: Tree | Token, aliases: dict[str, Tree | Token]) -> Tree | Token:
        """A bare name that is a select alias stands for the aliased expression."""
        if isinstance(node, Tree) and node.data == "column":
            name = str(node.children[0])
            if name in aliases:
                return aliases[name]
        return node

    def plan(self) -> CompiledQuery:
        items = self._items()
        aliases = {alias: tree for alias, tree in items if alias is not None}
        comp = self.compiler
        where = [comp.boolean(w, "$where") for w in self.clauses.where]
        if any(w.aggregate for w in where):
            raise SoqlError(
                "Aggregate functions are not allowed in $where; use $having", "query.soql.aggregate-in-where"
            )
        group_trees = [self._resolve(g, aliases) for g in self.clauses.group or []]
        group_exprs = [comp.expr(g) for g in group_trees]
        if any(g.aggregate for g in group_exprs):
            raise SoqlError("Aggregate functions are not allowed in $group", "query.soql.aggregate-in-group")
        outputs = self._outputs(items, group_trees, group_exprs)
        aggregated = self.clauses.group is not None or any(o[1].aggregate for o in outputs)
        if not aggregated and self.clauses.having is not None:
            raise SoqlError("$having requires $group or an aggregate", "query.compiler.malformed")
        having = comp.boolean(self.clauses.having, "$having") if self.clauses.having is not None else None
        orders = self._orders(aliases, aggregated, group_exprs)
        return self._statement(outputs, where, group_exprs, having=having, orders=orders, aggregated=aggregated)

    def _outputs(
        self, items: list[tuple[str | None, Tree | Token]], group_trees: list[Tree | Token], group_exprs: list[Expr]
    ) -> list[tuple[str, Expr]]:
        comp = self.compiler
        plain = [(alias, comp.expr(tree)) for alias, tree in items]
        if self.clauses.group is not None or any(e.aggregate for _, e in plain):
            comp.groups = [(t, f"_g{i}", e.type) for i, (t, e) in enumerate(zip(group_trees, group_exprs, strict=True))]
            comp.grouped = True
            plain = [(alias, comp.expr(tree)) for alias, tree in items]
        outputs: list[tuple[str, Expr]] = []
        seen: set[str] = set()
        for alias, value in plain:
            name = alias or value.name
            if name in seen:
                raise SoqlError(f"Duplicate output name {name!r} in $select", "query.soql.duplicate-alias", name=name)
            seen.add(name)
            outputs.append((name, value))
        return outputs

    def _orders(self, aliases: dict[str, Tree | Token], aggregated: bool, group_exprs: list[Expr]) -> list[Expr]:
        keys: list[Expr] = []
        for item in self.clauses.order or []:
            value = self.compiler.expr(self._resolve(item.children[0], aliases))
            descending = len(item.children) > 1 and str(item.children[1]).lower() == "desc"
            keys.append(
                Expr(
                    f"{value.sql} {'DESC' if descending else 'ASC'} NULLS LAST"
                    if not descending
                    else f"{value.sql} DESC NULLS FIRST",
                    value.params,
                    value.type,
                )
            )
        # Ties are broken the same way every time so that offset paging never repeats or skips a row.
        if not aggregated:
            keys.append(Expr("_pos", [], NUMBER))
        else:
            keys.extend(Expr(f"_g{i}", [], g.type) for i, g in enumerate(group_exprs))
        return keys

    def _statement(
        self,
        outputs: list[tuple[str, Expr]],
        where: list[Expr],
        group_exprs: list[Expr],
        *,
        having: Expr | None,
        orders: list[Expr],
        aggregated: bool,
    ) -> CompiledQuery:
        params: list[Any] = []
        # Outer query: render each output value (v0, v1…) as a JSON member; keys are bound parameters.
        # Each member starts with a comma; the first one present is cut off with substr(…, 2).
        members = [
            f"CASE WHEN v{i} IS NOT NULL THEN concat(?, {render_sql(f'v{i}', value.type)}) END"
            for i, (_, value) in enumerate(outputs)
        ]
        params.extend("," + json.dumps(name, ensure_ascii=False) + ":" for name, _ in outputs)
        joined = f"concat({', '.join(members)})" if members else "','"
        outer = f"SELECT concat('{{', substr({joined}, 2), '}}') AS row FROM ("
        # Inner query: the values, filtered, grouped, ordered and paged.
        source = "data"
        if group_exprs:
            cte = ", ".join(f"{g.sql} AS _g{i}" for i, g in enumerate(group_exprs))
            where_sql = " AND ".join(w.sql for w in where) or "TRUE"
            source = f"(SELECT *, {cte} FROM data WHERE {where_sql}) AS base"
            params.extend(p for g in group_exprs for p in g.params)
            params.extend(p for w in where for p in w.params)
            where = []
        select = ", ".join(f"{value.sql} AS v{i}" for i, (_, value) in enumerate(outputs))
        params.extend(p for _, value in outputs for p in value.params)
        sql = f"{outer}SELECT {select} FROM {source}"
        if where:
            sql += " WHERE " + " AND ".join(w.sql for w in where)
            params.extend(p for w in where for p in w.params)
        if group_exprs:
            sql += " GROUP BY " + ", ".join(f"_g{i}" for i in range(len(group_exprs)))
        if having is not None:
            sql += f" HAVING {having.sql}"
            params.extend(having.params)
        if orders and (not aggregated or group_exprs):
            sql += " ORDER BY " + ", ".join(o.sql for o in orders)
            params.extend(p for o in orders for p in o.params)
        sql += " LIMIT ? OFFSET ?)"
        params.extend([self.clauses.limit, self.clauses.offset])
        return CompiledQuery(
            sql, params, [name for name, _ in outputs], [socrata_type(value.type) for _, value in outputs]
        )
