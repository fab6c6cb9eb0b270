"""What Amazon Keyspaces would bill for a row written or read: the row's encoded size, and the request units.

The rules are AWS's (docs.aws.amazon.com/keyspaces/latest/devguide/calculating-row-size.html, consistency.html,
lightweight_transactions.html, batchStatements.html), as AWS's own sample calculator applies them
(aws-samples/sample-pricing-calculator-for-keyspaces, row_size_calculator.py):

- a partition key column: its value stored twice, 3 bytes of metadata, and the column's identifier;
- a clustering column: its value stored twice, 1 byte of metadata per 5 bytes of value, and the identifier;
- a regular column: its value and the identifier (1 byte while a table has at most 62 columns);
- values: text as its UTF-8 bytes; integers 1 byte per two significant digits plus 1; a boolean or a null
  1 byte; a blob its bytes; other types (uuid, timestamp) their serialized bytes;
- billed size leaves out the 100 bytes of row metadata and the TTL metadata, which storage counts.

A write is billed 1 WRU per KB of each row, rounded up per row; a read 1 RRU per 4 KB at LOCAL_QUORUM (0.5 at
LOCAL_ONE), rounded up per request. A lightweight transaction is billed as the write (a failed condition too);
an unlogged batch as its rows; a logged batch (this service sends none) twice.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
ROW_METADATA_BYTES = 100
"""Counted in storage, not in request units."""
TTL_ROW_BYTES = 8
TTL_COLUMN_BYTES = 8
"""TTL metadata in storage: per row and per column of a row written with a TTL."""
PARTITION_KEY_METADATA_BYTES = 3
CLUSTERING_METADATA_EVERY = 5
"""One byte of clustering column metadata per this many bytes of its value."""
MAX_COLUMNS_PER_ID_BYTE = 62

_INTEGER_TYPES = frozenset({"int", "bigint", "smallint", "tinyint", "varint", "counter"})
_TEXT_TYPES = frozenset({"text", "varchar", "ascii"})


class Role:
    PARTITION = "partition"
    CLUSTERING = "clustering"
    REGULAR = "regular"


@dataclass(frozen=True)
class Cell:
    """One column's value in a row: its role in the table, its CQL type and its size as Keyspaces stores it."""

    role: str
    data_bytes: int


def column_id_bytes(columns_in_table: int) -> int:
    return max(1, math.ceil(columns_in_table / MAX_COLUMNS_PER_ID_BYTE))


def integer_bytes(value: int) -> int:
    """Variable length: leading and trailing zeros trimmed, 1 byte per two significant digits, plus 1."""
    digits = str(abs(value)).strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def value_bytes(cql_type: str, serialized: bytes | None) -> int:
    """The stored size of one value, from the bytes the driver serialized for it (None: a null)."""
    if serialized is None:
        return 1
    if cql_type in _INTEGER_TYPES:
        return integer_bytes(int.from_bytes(serialized, "big", signed=True))
    if cql_type == "boolean":
        return 1
    return len(serialized)


def python_value_bytes(value: object) -> int:
    """The stored size of a value the driver decoded (a read): the same rules from the Python value."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return integer_bytes(value)
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    # uuid (16 bytes) and timestamp (8 bytes) as the protocol carries them; nothing else is stored here.
    return 16 if hasattr(value, "bytes") else 8


def cell_bytes(cell: Cell, id_bytes: int) -> int:
    if cell.role == Role.PARTITION:
        return 2 * cell.data_bytes + PARTITION_KEY_METADATA_BYTES + id_bytes
    if cell.role == Role.CLUSTERING:
        return 2 * cell.data_bytes + math.ceil(cell.data_bytes / CLUSTERING_METADATA_EVERY) + id_bytes
    return cell.data_bytes + id_bytes


def row_bytes(cells: Iterable[Cell], *, columns_in_table: int) -> int:
    """A row's billed (throughput) size: what its request units are computed from."""
    id_bytes = column_id_bytes(columns_in_table)
    return sum(cell_bytes(cell, id_bytes) for cell in cells)


def page_bytes(roles: Sequence[str], rows: Sequence[Sequence[object]], *, columns_in_table: int) -> int:
    """The billed size of a page of decoded rows (``roles``: each column's, in order): the sum of their
    ``row_bytes``, added up a column at a time over the distinct value sizes in it, so sizing a page of a
    thousand rows costs the local runtime little beside the driver's own decoding."""
    id_bytes = column_id_bytes(columns_in_table)
    total = 0
    for role, values in zip(roles, zip(*rows, strict=True), strict=False):
        for data_bytes, count in _value_sizes(values).items():
            total += count * cell_bytes(Cell(role, data_bytes), id_bytes)
    return total


_ONE_SIZE_KINDS = (UUID, datetime)
"""Types whose every value is stored at one size (``python_value_bytes``): a column of them is sized once."""


def _value_sizes(values: Sequence[object]) -> Counter[int]:
    """How many values of a column have each stored size (``python_value_bytes``)."""
    kinds = set(map(type, values))
    if len(kinds) == 1 and next(iter(kinds)) in _ONE_SIZE_KINDS:
        return Counter({python_value_bytes(values[0]): len(values)})
    return Counter(map(python_value_bytes, values))


def stored_row_bytes(billed_bytes: float, *, columns: int, with_ttl: bool) -> float:
    """A row's size in storage: its billed size, the row metadata, and the TTL metadata when it has a TTL."""
    ttl = TTL_ROW_BYTES + TTL_COLUMN_BYTES * columns if with_ttl else 0
    return billed_bytes + ROW_METADATA_BYTES + ttl


def write_units(row_sizes: Iterable[int]) -> int:
    """WRUs of writing these rows: each row rounded up to whole KB on its own (an empty row still costs one)."""
    return sum(max(1, math.ceil(size / WRITE_UNIT_BYTES)) for size in row_sizes)


def read_units(request_bytes: int, *, local_quorum: bool = True) -> float:
    """RRUs of one read request (one page) that read this many bytes; a read that finds nothing costs one unit."""
    units = max(1, math.ceil(request_bytes / READ_UNIT_BYTES))
    return float(units) if local_quorum else units / 2
