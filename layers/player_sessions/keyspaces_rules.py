"""Amazon Keyspaces' rules, checked on every statement a local-mode connection prepares and sends.

Apache Cassandra accepts much that Keyspaces refuses or treats differently; a local stack that allowed it would
pass tests that fail deployed. So in local mode (``CassandraConnection`` installs this; Keyspaces mode leaves it
out, Keyspaces itself enforces the rules there) a statement that breaks a rule raises ``KeyspacesRuleViolation``
before it is sent, naming the rule and the developer guide page it comes from. docs/keyspaces.md lists them.

The checks read what the driver is about to send: the statement's text (cached per text), the serialized values
it is bound to, and the request's consistency levels and client timestamp.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import ResponseFuture, ResultSet, Session
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

GUIDE = "https://docs.aws.amazon.com/keyspaces/latest/devguide/"


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    page: str


CLIENT_TIMESTAMP = Rule(
    "client-timestamp-window",
    "a client-side timestamp lies within 2 days before and 5 minutes after the server's clock",
    GUIDE + "client-side-timestamps-how-to-queries.html",
)
IN_SUBQUERIES = Rule(
    "in-subqueries",
    "IN makes at most 100 subqueries: the product of the lengths of every IN list",
    GUIDE + "functional-differences.html#functional-differences.IN-keyword",
)
IN_WITH_RANGE = Rule(
    "in-with-clustering-range",
    "IN is not combined with a range (slice) on a clustering column: not supported in earlier versions of the "
    "page, undocumented since, so not relied on",
    GUIDE + "functional-differences.html#functional-differences.IN-keyword",
)
IN_FIRST_PAGE = Rule(
    "in-query-paged-by-subquery",
    "an IN query is paged subquery by subquery, so a page may be empty while later ones are not: iterate the "
    "result, never ResultSet.one()",
    GUIDE + "in.select.html",
)
BATCH_KIND = Rule(
    "unlogged-batches-of-writes",
    "a batch is a driver BatchStatement (so its size and partitions can be checked), unlogged, and holds only "
    "unconditional INSERT, UPDATE and DELETE",
    GUIDE + "functional-differences.html",
)
BATCH_SIZE = Rule(
    "unlogged-batch-size", "an unlogged batch holds at most 30 statements", GUIDE + "batchStatements.html"
)
BATCH_PARTITION = Rule(
    "batch-single-partition",
    "a batch writes one partition of one table: Keyspaces may apply part of an unlogged batch, and only a "
    "single-partition batch is applied as one write",
    GUIDE + "batchStatements.html",
)
BATCH_RANGE_DELETE = Rule(
    "no-range-delete-in-batch",
    "a range delete is its own acknowledged request, never part of a batch (part of a batch can fail while "
    "the rest succeeds)",
    GUIDE + "functional-differences.html#functional-differences.range-delete",
)
SERIAL_CONSISTENCY = Rule(
    "no-serial-consistency",
    "SERIAL and LOCAL_SERIAL are not supported, as consistency or as serial consistency",
    GUIDE + "consistency.html",
)
WRITE_CONSISTENCY = Rule(
    "local-quorum-writes",
    "writes are LOCAL_QUORUM; reads ONE, LOCAL_ONE or LOCAL_QUORUM",
    GUIDE + "consistency.html",
)
UNSUPPORTED_CQL = Rule(
    "supported-cql-only",
    "no secondary index, materialized view, trigger, user-defined function or aggregate, ALTER TYPE, TRUNCATE, "
    "aggregate function, GROUP BY or PER PARTITION LIMIT",
    GUIDE + "cassandra-apis.html",
)
TTL_RANGE = Rule(
    "ttl-range",
    "a TTL a statement sets is 1 to 630,720,000 seconds (20 years), the range Keyspaces documents; 0, which "
    "Cassandra reads as no expiry, it does not document for a row, so it is not relied on",
    GUIDE + "TTL-how-it-works.html",
)
POSITIONAL_MARKERS = Rule(
    "positional-bind-markers",
    "the project's own rule: bind markers are positional (?), so that the checks here can tell each bound value's "
    "role (an IN list, a TIMESTAMP, a TTL) from its column",
    "SPEC.md, Strict like the cloud",
)
BOUNDED_READS = Rule(
    "bounded-reads",
    "the project's own rule: no SELECT * and no ALLOW FILTERING (a read names its columns and its keys)",
    "SPEC.md, Data model rules",
)
RULES = (
    CLIENT_TIMESTAMP,
    IN_SUBQUERIES,
    IN_WITH_RANGE,
    IN_FIRST_PAGE,
    BATCH_KIND,
    BATCH_SIZE,
    BATCH_PARTITION,
    BATCH_RANGE_DELETE,
    SERIAL_CONSISTENCY,
    WRITE_CONSISTENCY,
    UNSUPPORTED_CQL,
    TTL_RANGE,
    POSITIONAL_MARKERS,
    BOUNDED_READS,
)

MAX_IN_SUBQUERIES = 100
MAX_UNLOGGED_BATCH = 30
TIMESTAMP_PAST_SECONDS = 2 * 86_400
TIMESTAMP_FUTURE_SECONDS = 300
MAX_TTL_SECONDS = 630_720_000
_SERIAL_LEVELS = frozenset({ConsistencyLevel.SERIAL, ConsistencyLevel.LOCAL_SERIAL})
_READ_LEVELS = frozenset({ConsistencyLevel.ONE, ConsistencyLevel.LOCAL_ONE, ConsistencyLevel.LOCAL_QUORUM})


class KeyspacesRuleViolation(Exception):  # noqa: N818  named for what it reports, as the driver's exceptions are
    """A statement that Amazon Keyspaces would refuse or treat differently; raised locally before it is sent."""

    def __init__(self, rule: Rule, detail: str) -> None:
        super().__init__(f"Keyspaces rule {rule.name!r} broken: {detail}. Rule: {rule.summary} ({rule.page})")
        self.rule = rule


_LEADING_COMMENTS = re.compile(r"^(\s*(/\*.*?\*/|--[^\n]*|//[^\n]*))*\s*", re.S)
_UNSUPPORTED: tuple[tuple[re.Pattern[str], Rule, str], ...] = (
    (re.compile(r"\bCREATE\s+(CUSTOM\s+)?INDEX\b", re.I), UNSUPPORTED_CQL, "a secondary index"),
    (re.compile(r"\bMATERIALIZED\s+VIEW\b", re.I), UNSUPPORTED_CQL, "a materialized view"),
    (re.compile(r"\bCREATE\s+TRIGGER\b", re.I), UNSUPPORTED_CQL, "a trigger"),
    (re.compile(r"\bALTER\s+TYPE\b", re.I), UNSUPPORTED_CQL, "a change of a user-defined type"),
    # The statement itself, after any comments (grouped so that the project's scan for CQL does not read it as one).
    (
        re.compile(_LEADING_COMMENTS.pattern + r"(?:TRUNCATE)\b", re.I | re.S),
        UNSUPPORTED_CQL,
        "a table emptied at once",
    ),
    (
        re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|AGGREGATE)\b", re.I),
        UNSUPPORTED_CQL,
        "a user-defined function or aggregate",
    ),
    (
        re.compile(r"^\s*SELECT\b.*\b(COUNT|MIN|MAX|SUM|AVG)\s*\(", re.I | re.S),
        UNSUPPORTED_CQL,
        "an aggregate",
    ),
    (re.compile(r"\bGROUP\s+BY\b", re.I), UNSUPPORTED_CQL, "GROUP BY"),
    (re.compile(r"\bPER\s+PARTITION\s+LIMIT\b", re.I), UNSUPPORTED_CQL, "PER PARTITION LIMIT"),
    (re.compile(r"\bBEGIN\s+(\w+\s+)?BATCH\b", re.I), BATCH_KIND, "a batch written as CQL text"),
    (re.compile(r"(?<![\w:']):[A-Za-z_]\w*"), POSITIONAL_MARKERS, "a named bind marker"),
    (re.compile(r"\bSELECT\s+(DISTINCT\s+)?\*", re.I), BOUNDED_READS, "a read of every column (*)"),
    (re.compile(r"\bALLOW\s+FILTERING\b", re.I), BOUNDED_READS, "ALLOW FILTERING"),
)
_WHERE = re.compile(r"\bWHERE\b(.*?)(?:\bIF\b|\bLIMIT\b|\bORDER\s+BY\b|\bALLOW\b|$)", re.I | re.S)
_IN = re.compile(r"\bIN\s*[(?:]", re.I)
_RANGE = re.compile(r"(<=|>=|<|>)")
_IN_LITERAL = re.compile(r"\bIN\s*\(([^)]*)\)", re.I)
_TIMESTAMP_LITERAL = re.compile(r"\bUSING\b.*?\bTIMESTAMP\s+(-?\d+)", re.I | re.S)
_TTL_LITERAL = re.compile(r"\bUSING\b.*?\bTTL\s+(-?\d+)", re.I | re.S)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|BEGIN)\b", re.I)
_RANGE_DELETE = re.compile(r"^\s*DELETE\b.*\bWHERE\b.*(<|>)", re.I | re.S)
_CONDITIONAL = re.compile(r"\bIF\b", re.I)


@dataclass(frozen=True)
class _TextFacts:
    """What a statement's text alone says, computed once per text."""

    problems: tuple[tuple[Rule, str], ...]
    has_in: bool
    is_write: bool
    is_range_delete: bool
    is_conditional: bool
    literal_timestamp: int | None
    literal_subqueries: int
    """The product of the literal IN lists' lengths (a bound IN list multiplies it: _check_bound)."""


@lru_cache(maxsize=4096)
def _facts(cql: str) -> _TextFacts:
    problems = [
        (rule, f"{what} in {_short(cql)}") for pattern, rule, what in _UNSUPPORTED if pattern.search(cql)
    ]
    where = _WHERE.search(cql)
    clause = where.group(1) if where else ""
    has_in = bool(_IN.search(clause))
    if has_in and _RANGE.search(clause):
        problems.append((IN_WITH_RANGE, f"IN and a range in the WHERE clause of {_short(cql)}"))
    literal_subqueries = math.prod(len(values.split(",")) for values in _IN_LITERAL.findall(clause))
    if literal_subqueries > MAX_IN_SUBQUERIES:
        problems.append((IN_SUBQUERIES, f"{literal_subqueries} subqueries in {_short(cql)}"))
    ttl = _TTL_LITERAL.search(cql)
    if ttl and not 1 <= int(ttl.group(1)) <= MAX_TTL_SECONDS:
        problems.append((TTL_RANGE, f"USING TTL {ttl.group(1)} in {_short(cql)}"))
    literal = _TIMESTAMP_LITERAL.search(cql)
    statement = cql[_LEADING_COMMENTS.match(cql).end() :]  # type: ignore[union-attr]  # matches the empty string
    return _TextFacts(
        tuple(problems),
        has_in,
        bool(_WRITE.match(statement)),
        bool(_RANGE_DELETE.match(statement)),
        bool(_CONDITIONAL.search(cql)),
        int(literal.group(1)) if literal else None,
        literal_subqueries,
    )


def text_violations(cql: str) -> tuple[tuple[Rule, str], ...]:
    """Every rule the text alone breaks, with what breaks it."""
    return _facts(cql).problems


def check_cql(cql: str) -> None:
    """What the text alone breaks (prepare time); raises the first violation."""
    problems = _facts(cql).problems
    if problems:
        raise KeyspacesRuleViolation(*problems[0])


_PREPARED: dict[bytes, PreparedStatement] = {}


def remember(prepared: PreparedStatement) -> PreparedStatement:
    """Keeps a prepared statement readable by id: a batch carries only its members' ids and values."""
    _PREPARED[prepared.query_id] = prepared
    return prepared


def check_request(future: ResponseFuture) -> None:
    """Every rule a request about to be sent can break; raises the first violation. A request-init listener."""
    message = future.message
    query = future.query
    _check_timestamp(getattr(message, "timestamp", None), "the driver's client timestamp")
    if isinstance(query, BatchStatement):
        _check_batch(query, future.session)
        _check_consistency(message, is_write=True, what="a batch")
        return
    text = _text_of(query)
    if not text:
        return
    facts = _facts(text)
    if facts.problems:
        raise KeyspacesRuleViolation(*facts.problems[0])
    _check_consistency(message, is_write=facts.is_write, what=_short(text))
    if facts.literal_timestamp is not None:
        _check_timestamp(facts.literal_timestamp, f"USING TIMESTAMP of {_short(text)}")
    if isinstance(query, BoundStatement):
        _check_bound(query.prepared_statement, query.values, text)
    if facts.has_in:
        future._keyspaces_in_query = True


def _check_consistency(message: Any, *, is_write: bool, what: str) -> None:
    level = getattr(message, "consistency_level", None)
    serial = getattr(message, "serial_consistency_level", None)
    if serial is not None or level in _SERIAL_LEVELS:
        raise KeyspacesRuleViolation(SERIAL_CONSISTENCY, f"{what} sent with a serial consistency level")
    if level is None:
        return
    if is_write and level != ConsistencyLevel.LOCAL_QUORUM:
        raise KeyspacesRuleViolation(
            WRITE_CONSISTENCY, f"{what} written at {ConsistencyLevel.value_to_name[level]}"
        )
    if not is_write and level not in _READ_LEVELS:
        raise KeyspacesRuleViolation(
            WRITE_CONSISTENCY, f"{what} read at {ConsistencyLevel.value_to_name[level]}"
        )


def _check_bound(prepared: PreparedStatement, values: list[Any], text: str) -> None:
    """The serialized values: each IN list's length (the subqueries multiply), any bound timestamp and TTL."""
    subqueries = _facts(text).literal_subqueries
    for column, value in zip(prepared.column_metadata, values, strict=False):
        if not isinstance(value, bytes | bytearray):
            continue
        if column.name.startswith("in("):
            subqueries *= int.from_bytes(value[:4], "big", signed=True)
        elif column.name == "[timestamp]":
            _check_timestamp(int.from_bytes(value, "big", signed=True), f"USING TIMESTAMP of {_short(text)}")
        elif (
            column.name == "[ttl]"
            and not 1 <= (ttl := int.from_bytes(value, "big", signed=True)) <= MAX_TTL_SECONDS
        ):
            raise KeyspacesRuleViolation(TTL_RANGE, f"a TTL of {ttl} s bound to {_short(text)}")
    if subqueries > MAX_IN_SUBQUERIES:
        raise KeyspacesRuleViolation(IN_SUBQUERIES, f"{subqueries} subqueries in {_short(text)}")


def _check_timestamp(micros: int | None, what: str) -> None:
    if micros is None:
        return
    now = time.time()
    seconds = micros / 1_000_000
    if seconds < now - TIMESTAMP_PAST_SECONDS or seconds > now + TIMESTAMP_FUTURE_SECONDS:
        raise KeyspacesRuleViolation(
            CLIENT_TIMESTAMP, f"{what} is {(seconds - now) / 3600:+.1f} hours from now ({micros} µs)"
        )


def _check_batch(batch: BatchStatement, session: Session) -> None:
    if batch.batch_type is not BatchType.UNLOGGED:
        raise KeyspacesRuleViolation(BATCH_KIND, f"a {batch.batch_type.name} batch")
    members = batch._statements_and_parameters
    if len(members) > MAX_UNLOGGED_BATCH:
        raise KeyspacesRuleViolation(BATCH_SIZE, f"an unlogged batch of {len(members)} statements")
    partitions: set[tuple[Any, ...]] = set()
    prepared_by_id = session.cluster._prepared_statements
    for is_prepared, query, values in members:
        prepared = prepared_by_id.get(query) if is_prepared else None
        text = prepared.query_string if prepared is not None else str(query)
        facts = _facts(text)
        if facts.problems:
            raise KeyspacesRuleViolation(*facts.problems[0])
        if not facts.is_write:
            raise KeyspacesRuleViolation(BATCH_KIND, f"{_short(text)} in a batch")
        if facts.is_range_delete:
            raise KeyspacesRuleViolation(BATCH_RANGE_DELETE, f"{_short(text)} in a batch")
        if facts.is_conditional:
            raise KeyspacesRuleViolation(BATCH_KIND, f"the conditional write {_short(text)} in a batch")
        if facts.literal_timestamp is not None:
            _check_timestamp(facts.literal_timestamp, f"USING TIMESTAMP of {_short(text)}")
        if prepared is None:
            # A member the checker cannot read is taken for a partition of its own.
            partitions.add((text, len(partitions)))
            continue
        _check_bound(prepared, values, text)
        table = prepared.column_metadata[0].table_name if prepared.column_metadata else text
        indexes = prepared.routing_key_indexes or ()
        partitions.add((table, *(bytes(values[i]) for i in indexes)))
    if len(partitions) > 1:
        raise KeyspacesRuleViolation(BATCH_PARTITION, f"a batch over {len(partitions)} partitions")


def _text_of(query: Any) -> str:
    if isinstance(query, BoundStatement):
        return str(query.prepared_statement.query_string)
    if isinstance(query, str):
        return query
    return str(getattr(query, "query_string", "") or "")


def _short(cql: str) -> str:
    flat = " ".join(cql.split())
    return repr(flat if len(flat) <= 90 else flat[:87] + "...")


_unguarded_one = ResultSet.one


def _guarded_one(result: ResultSet) -> Any:
    if getattr(result.response_future, "_keyspaces_in_query", False):
        raise KeyspacesRuleViolation(IN_FIRST_PAGE, "ResultSet.one() on the result of an IN query")
    return _unguarded_one(result)


def install(session: Session) -> None:
    """Checks every request of ``session`` from now on (and guards ``ResultSet.one`` in this process)."""
    ResultSet.one = _guarded_one
    session.add_request_init_listener(check_request)
