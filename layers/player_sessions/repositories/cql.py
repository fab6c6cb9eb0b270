"""A CQL statement of the service, and what it touches: its table and the access it needs there.

Every statement the repositories send is a ``Cql`` constant. Its table and access are read from the text once,
at import, and checked against the table definitions, so the grants derived from them (player_sessions.access)
cannot name a table the code does not use nor miss one it does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import ClassVar, Self

from player_sessions.schema import STARTS, TABLES, RollupFamily

_TABLE_OF = re.compile(
    r"^\s*(?:SELECT\s.*?\sFROM|INSERT\s+INTO|UPDATE|DELETE\s.*?FROM|DELETE\s+FROM)\s+(?:\w+\.)?(\w+)",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"\sIF\s+(NOT\s+EXISTS|EXISTS|\w+\s*(=|<|>|!=))", re.IGNORECASE)
_ASSIGNMENTS = re.compile(r"\sSET\s(.*?)\sWHERE\s", re.IGNORECASE | re.DOTALL)
_TABLE_NAMES = frozenset(table.name for table in TABLES)


class Access(StrEnum):
    """The two table permissions of Amazon Keyspaces (IAM actions ``cassandra:Select`` and
    ``cassandra:Modify``), and of Cassandra's authorizer (``SELECT`` and ``MODIFY``)."""

    SELECT = "Select"
    MODIFY = "Modify"


@dataclass(frozen=True)
class Cql:
    text: str
    table: str = field(init=False)
    access: frozenset[Access] = field(init=False)
    """A read needs Select; a write Modify; a conditional write (a lightweight transaction) both, as it reads
    the row it compares."""
    is_idempotent: bool = field(init=False)
    """Sent twice, it leaves what it leaves sent once, so the driver may send it to a second coordinator
    (cassandra_cluster.SPECULATIVE_DELAY_SECONDS) or again after a timeout: every read, and every write that is
    neither conditional (a lightweight transaction compares, then writes) nor computed from the value it
    replaces (a counter's or a collection's ``x = x + ?``). A write's time is the driver's, carried by each copy
    (client-side timestamps, on Keyspaces too: infra_cdk.data), so a copy that lands late never overwrites a
    later write."""

    def __post_init__(self) -> None:
        match = _TABLE_OF.match(self.text)
        if match is None or match.group(1).lower() not in _TABLE_NAMES:
            raise ValueError(f"not a statement on one of the service's tables: {self.text!r}")
        object.__setattr__(self, "table", match.group(1).lower())
        read = self.text.lstrip()[:6].upper() == "SELECT"
        conditional = not read and _CONDITION.search(self.text) is not None
        if read:
            access = frozenset({Access.SELECT})
        elif conditional:
            access = frozenset({Access.SELECT, Access.MODIFY})
        else:
            access = frozenset({Access.MODIFY})
        object.__setattr__(self, "access", access)
        assignments = _ASSIGNMENTS.search(self.text)
        computed = assignments is not None and re.search(r"[+-]", assignments[1]) is not None
        object.__setattr__(self, "is_idempotent", read or not (conditional or computed))

    def of_family(self, family: RollupFamily) -> Cql:
        """This statement on one of the starts family's tables, sent to ``family``'s table of the same kind."""
        for ours, theirs in zip(STARTS.tables, family.tables, strict=True):
            if self.table == ours.name:
                return Cql(re.sub(rf"\b{ours.name}\b", theirs.name, self.text))
        raise ValueError(f"not a statement on a table of the starts family: {self.text!r}")

    @property
    def is_read(self) -> bool:
        return self.access == {Access.SELECT}

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class FamilyStatements:
    """Statements of one rollup family: a subclass names them as its fields, and gives in ``TEMPLATES``, in the
    same order, the starts family's statements they are made from (``Cql.of_family``)."""

    TEMPLATES: ClassVar[tuple[Cql, ...]] = ()

    @classmethod
    def of(cls, family: RollupFamily) -> Self:
        made = zip(fields(cls), cls.TEMPLATES, strict=True)
        return cls(**{name.name: template.of_family(family) for name, template in made})

    @property
    def statements(self) -> tuple[Cql, ...]:
        return tuple(getattr(self, name.name) for name in fields(self))
