"""A translated statement: what the translator (``translate``) hands the server.

The translator's modules (``translate`` for statements, ``rewrite`` for expressions,
``outputs`` for result columns, ``ddl`` for schema changes) share these types, and the
server reads them: the SQLite text to run, the command tag, the parameters' type hints, the
result columns as PostgreSQL names and types them, and an ``action`` for statements SQLite
does not have (SET, SHOW, COPY, transactions, sequences, table rebuilds). ``translate``
re-exports every name here, so the server imports them from there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from borealis.errors import BorealisError

if TYPE_CHECKING:
    from borealis.protocol.postgres.exprtypes import Formula


UNIQUE_CONSTRAINT_MARK = "/* unique constraint */"
"""Ends the CREATE UNIQUE INDEX of ``ALTER TABLE ... ADD CONSTRAINT ... UNIQUE`` (SQLite keeps
the statement's text): the catalog shows such an index as a constraint too."""


class TranslationError(BorealisError):
    """A statement that cannot be run; ``sqlstate`` says why."""

    def __init__(self, message: str, sqlstate: str = "0A000") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def unsupported(feature: str) -> TranslationError:
    """The refusal of a feature Borealis cannot run with PostgreSQL's meaning (0A000)."""
    return TranslationError(f"{feature} is not supported by Borealis", "0A000")


class NeedsLiteral(Exception):
    """A parameter stands where only a literal has its meaning (ORDER BY 1, a type's
    literal): the normalised form cannot be used, translate the text as written."""


class Kind(enum.Enum):
    QUERY = "query"            # returns rows (SELECT, VALUES, DML with RETURNING)
    DML = "dml"                # INSERT/UPDATE/DELETE without RETURNING
    DDL = "ddl"
    TRANSACTION = "transaction"
    SET = "set"
    SHOW = "show"
    COPY = "copy"
    UTILITY = "utility"        # accepted and done with nothing to do (VACUUM, ANALYZE...)
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class OutputColumn:
    name: str
    type_oid: int = 0          # 0: not known from the statement alone
    typmod: int = -1
    formula: Formula | None = None
    """When the type is not known from the statement alone and the column is not a plain
    table column (whose type SQLite declares): its type as a formula over the columns and
    parameters it reads (``exprtypes``), resolved against the schema at Describe."""


@dataclass(frozen=True, slots=True)
class ParamHint:
    """What a parameter's type follows from: a type (``oid``), or a column of one of
    ``tables`` (resolved against the schema)."""

    oid: int = 0
    tables: tuple[str, ...] = ()
    column: str = ""
    assigned: bool = False
    """The parameter is the value assigned to the column (INSERT VALUES, UPDATE SET): it
    takes the column's type by PostgreSQL's assignment cast (``schema.assignment_targets``)."""


@dataclass(frozen=True, slots=True)
class SetAction:
    name: str                  # lower-cased setting name
    value: str | None          # None: RESET
    local: bool = False


@dataclass(frozen=True, slots=True)
class ShowAction:
    name: str                  # lower-cased; 'all' for SHOW ALL


@dataclass(frozen=True, slots=True)
class ExplainAction:
    """EXPLAIN: SQLite's query plan of the translated statement, as text lines."""

    sql: str


@dataclass(frozen=True, slots=True)
class CopyAction:
    table: str
    columns: tuple[str, ...]
    direction: str             # 'from' (client sends rows) or 'to' (server sends rows)
    query: str | None = None   # COPY (SELECT ...) TO STDOUT: the translated query
    format: str = "text"       # 'text', 'csv' or 'binary'
    delimiter: str = "\t"
    null: str = "\\N"
    header: bool = False
    quote: str = '"'
    escape: str = '"'


@dataclass(frozen=True, slots=True)
class TransactionAction:
    verb: str                  # begin, commit, rollback, savepoint, release, rollback_to
    name: str = ""
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class SequenceOp:
    """Statements on sequences and tables that need more than one SQLite statement,
    carried out by the server against the schema (``schema``)."""

    op: str                    # alter, rename_object, replace_view, create_sequence,
    #                            alter_sequence, drop_sequence, truncate, drop_owned,
    #                            drop_cascade, set_constraints
    name: str = ""
    args: tuple[Any, ...] = ()


Action = SetAction | ShowAction | ExplainAction | CopyAction | TransactionAction | SequenceOp


@dataclass(frozen=True, slots=True)
class Statement:
    """One translated statement."""

    kind: Kind
    tag: str                   # CommandComplete's verb: 'SELECT', 'INSERT', 'CREATE TABLE'
    sqlite: tuple[str, ...] = ()
    param_count: int = 0
    param_hints: tuple[ParamHint, ...] = ()
    columns: tuple[OutputColumn, ...] | None = None
    action: Action | None = None
    read_only: bool = True
    setup: tuple[str, ...] = ()
    """SQLite statements run before ``sqlite`` in the same transaction (sequences that a
    CREATE TABLE's SERIAL columns own)."""
    identity_check: tuple[str, ...] = ()
    """An INSERT's or UPDATE's verb, table and the columns it gives values: none may be an
    identity column GENERATED ALWAYS (checked at Parse, ``schema.check_identity``)."""


@dataclass
class Context:
    """What one translation collects while it rewrites a tree."""

    literal_params: int = 0    # params from normalisation: 1..n stand for literals
    hints: dict[int, ParamHint] = field(default_factory=dict)
    max_param: int = 0
    setup: list[str] = field(default_factory=list)
    overriding: str = ""       # an INSERT's OVERRIDING SYSTEM VALUE: 'system'
    identity_check: tuple[str, ...] = ()  # Statement.identity_check
