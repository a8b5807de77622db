"""The emulated ``pg_catalog`` and ``information_schema``: the live SQLite schema, as the
catalog tables that psql, psycopg, asyncpg, SQLAlchemy and pgbench read (DESIGN decision 8).

Mechanism. Every catalog table is an APSW virtual table module registered *eponymous-only*
on the connection: it exists without a ``CREATE VIRTUAL TABLE``, so ``install`` writes
nothing (not even to ``temp``), works the same on read-only connections and costs a few
``create_module`` calls. Its SQLite name is ``_borealis_pg_catalog_<name>`` or
``_borealis_information_schema_<name>`` (``catalog_table_name`` says which; the
``_borealis_`` prefix is Borealis' own, so no user table can take the name). The module's
declared column types are the PostgreSQL types' SQLite declared types
(``types.sqlite_decltype``), so the server learns a catalog column's PostgreSQL type the way
it learns any column's.

Data. The rows are computed from the connection's own schema (``sqlite_schema``,
``pragma_table_xinfo``, ``pragma_index_list``/``pragma_index_xinfo``,
``pragma_foreign_key_list``, the DDL text for constraint names, CHECKs and deferrability,
``_borealis_sequences``), queried re-entrantly from inside the virtual table's scan, into a
``Snapshot`` that every catalog table and function of the connection shares. The snapshot is
rebuilt only when the schema changed: a snapshot taken outside a transaction is valid while
``PRAGMA schema_version`` is unchanged (committed schema versions are never reused); one
taken inside a transaction could be rolled back and its version number reused by other DDL,
so it is compared with the whole of ``sqlite_schema`` (one ``group_concat``) on each scan.
The sequences table is read on each scan (it changes without DDL: ``nextval``, ``OWNED BY``).
A scan with an equality constraint on a column (``oid = 16413``, ``attrelid = c.oid``) looks
the value up in a dictionary built once per snapshot, so joins do not rescan in Python.

OIDs are stable for the life of an object: user objects get blocks of ``OID_BLOCK`` numbers
from the ``sqlite_schema`` rowid of their table, view or index (``USER_OID_FIRST + rowid *
OID_BLOCK``; the table's row type, its array type, a synthesised primary-key index, its
constraints and its column defaults take fixed offsets in the block), and sequences take
``SEQUENCE_OID_FIRST`` plus their ``_borealis_sequences`` rowid. Two connections to one file
agree; a VACUUM (which renumbers ``sqlite_schema``) or a table rebuild (``ALTER TABLE ...
ADD PRIMARY KEY``) gives new OIDs, as a dump and restore does in PostgreSQL. Catalog objects
and built-in types keep PostgreSQL 15's OIDs.

Names. SQLite's own tables (``sqlite_%``) and Borealis' (``_borealis_%``) are hidden. An
``INTEGER PRIMARY KEY`` table has no SQLite index: its ``<table>_pkey`` is synthesised.
Unnamed constraints get PostgreSQL's generated names (``<table>_pkey``,
``<table>_<columns>_key``, ``<table>_<columns>_fkey``, ``<table>_<column>_check``), cut to
63 bytes and numbered on collision as PostgreSQL does; named ones keep their DDL name.

Exact: the relations, columns, types and typmods, NOT NULL, defaults of literals and
sequences, identity columns, indexes (columns, uniqueness, DESC, predicates), primary,
unique, foreign-key (actions, MATCH FULL, deferrability) and check constraints, sequences,
format_type, the reg* conversions. Approximate: CHECK, index and view expressions (printed by
sqlglot, without PostgreSQL's implicit casts), sizes (SQLite's pages), reltuples (from
``sqlite_stat1`` when ANALYZE ran, else -1), opclasses (0), privileges (always granted:
Borealis has one superuser), comments (none), pg_proc (empty), statistics (none). Not shown:
TEMP tables, attached databases, triggers, system columns (attnum < 0).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw

from borealis.protocol.postgres import catalog_functions as fn
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.catalog_functions import CatalogError, quote_ident

__all__ = ["CATALOG_FUNCTIONS", "CATALOG_TABLE_FUNCTIONS", "Catalog", "CatalogError",
           "catalog_table_name", "install"]

log = logging.getLogger(__name__)

CATALOG_FUNCTIONS: frozenset[str] = frozenset(fn.FUNCTIONS)
"""The SQL functions ``install`` registers (see ``catalog_functions.FUNCTIONS``)."""

# --- OIDs ----------------------------------------------------------------------------------

PG_CATALOG_NAMESPACE = 11
PG_TOAST_NAMESPACE = 99
PUBLIC_NAMESPACE = 2200
INFORMATION_SCHEMA_NAMESPACE = 13207  # as initdb of PostgreSQL 15.18 numbers it
NAMESPACES = {"pg_catalog": PG_CATALOG_NAMESPACE, "pg_toast": PG_TOAST_NAMESPACE,
              "public": PUBLIC_NAMESPACE, "information_schema": INFORMATION_SCHEMA_NAMESPACE}
SUPERUSER_OID = 10  # the bootstrap superuser's OID in every PostgreSQL cluster
DATABASE_OWNER_OID = 6171  # pg_database_owner, owner of schema public since PostgreSQL 15
DATABASE_OID = 16384
HEAP_AM, BTREE_AM = 2, 403
DEFAULT_COLLATION = 100
DEFAULT_TABLESPACE = 1663

USER_OID_FIRST = 16384
"""PostgreSQL's FirstNormalObjectId: OIDs below are built-in objects."""
OID_BLOCK = 4096
"""OIDs per ``sqlite_schema`` row: relation, row type, array type, synthesised pkey index,
constraints from ``OFFSET_CONSTRAINTS``, column defaults from ``OFFSET_ATTRDEFS``."""
OFFSET_ROW_TYPE, OFFSET_ARRAY_TYPE, OFFSET_PKEY_INDEX = 1, 2, 3
OFFSET_CONSTRAINTS = 16
OFFSET_ATTRDEFS = 2048
SCHEMA_ROWID_MAX = 2**18 - 1
SEQUENCE_OID_FIRST = USER_OID_FIRST + (SCHEMA_ROWID_MAX + 1) * OID_BLOCK
SEQUENCE_ROWID_MAX = 2**31 - 1 - SEQUENCE_OID_FIRST
assert OFFSET_CONSTRAINTS < OFFSET_ATTRDEFS < OID_BLOCK
assert SEQUENCE_OID_FIRST + SEQUENCE_ROWID_MAX < 2**31  # OIDs fit a signed int4 too
ATTNUM_MAX = OID_BLOCK - OFFSET_ATTRDEFS - 1  # SQLite's default SQLITE_MAX_COLUMN is 2000
CONSTRAINTS_MAX = OFFSET_ATTRDEFS - OFFSET_CONSTRAINTS


def block_oid(rowid: int, offset: int = 0) -> int:
    if not 1 <= rowid <= SCHEMA_ROWID_MAX:
        raise CatalogError(f"sqlite_schema rowid {rowid} is beyond what the catalog numbers "
                           f"({SCHEMA_ROWID_MAX}); VACUUM renumbers the schema", "54000")
    assert 0 <= offset < OID_BLOCK, offset
    return USER_OID_FIRST + rowid * OID_BLOCK + offset


TABLE_PREFIX = "_borealis_"
_HIDDEN_PREFIXES = ("sqlite_", "_borealis_")
SEQUENCES_TABLE = "_borealis_sequences"

# --- the snapshot: the schema as catalog objects ---------------------------------------------


@dataclass(slots=True)
class Attribute:
    num: int
    name: str
    type_oid: int
    typmod: int = -1
    not_null: bool = False
    default: str | None = None  # as pg_get_expr prints it
    default_oid: int = 0
    identity: str = ""  # '', 'a' (ALWAYS), 'd' (BY DEFAULT)
    generated: str = ""  # '', 's' (STORED)
    dims: int = 0


@dataclass(slots=True)
class Relation:
    oid: int
    name: str
    kind: str  # r v i S
    namespace: int
    row_type: int = 0
    array_type: int = 0
    attributes: list[Attribute] = field(default_factory=list)
    sqlite_name: str | None = None  # None: synthesised (an INTEGER PRIMARY KEY's index)
    table_oid: int = 0  # an index's table
    checks: int = 0
    has_index: bool = False
    tuples: float = -1.0
    view_sql: str | None = None


@dataclass(slots=True)
class Index:
    oid: int
    table_oid: int
    name: str
    unique: bool
    primary: bool
    keys: list[int]  # attnums, 0 for an expression
    columns: list[str]  # the column names ("expr" for an expression)
    expressions: list[str | None]  # SQLite text of expression columns
    descending: list[bool]
    predicate: str | None = None
    immediate: bool = True
    constraint_oid: int = 0
    sqlite_name: str | None = None  # None: synthesised (an INTEGER PRIMARY KEY's)


@dataclass(slots=True)
class Constraint:
    oid: int
    name: str
    kind: str  # p u f c
    table_oid: int
    keys: list[int]
    columns: list[str]
    index_oid: int = 0
    ref_table_oid: int = 0
    ref_table_name: str = ""
    ref_keys: list[int] = field(default_factory=list)
    ref_columns: list[str] = field(default_factory=list)
    on_update: str = " "
    on_delete: str = " "
    match: str = " "
    deferrable: bool = False
    deferred: bool = False
    expression: str | None = None  # CHECK's SQLite text


@dataclass(slots=True)
class Sequence:
    oid: int
    name: str
    type_oid: int
    start: int
    minimum: int
    maximum: int
    increment: int
    cycle: bool
    owner_table: str | None
    owner_column: str | None
    identity: str
    owner_oid: int = 0
    owner_attnum: int = 0


_FK_ACTION_CODES = {"NO ACTION": "a", "RESTRICT": "r", "CASCADE": "c", "SET NULL": "n",
                    "SET DEFAULT": "d"}
_SEQUENCE_COLUMNS = ("rowid, name, data_type, start_value, min_value, max_value, "
                     "increment_by, cycle, owner_table, owner_column, identity, last_value, "
                     "is_called")


class Snapshot:
    """The user schema at one schema state, as catalog objects, and the catalog tables'
    rows computed from it (lazily, each once)."""

    def __init__(self, *, schema_version: int, fingerprint: str, committed: bool,
                 sequence_key: tuple[Any, ...], has_sequences: bool) -> None:
        self.schema_version = schema_version
        self.fingerprint = fingerprint
        self.committed = committed
        self.sequence_key = sequence_key
        self.has_sequences = has_sequences
        self.relations: dict[int, Relation] = {}
        self.by_name: dict[str, Relation] = {}  # public relations by name
        self.indexes: dict[int, Index] = {}
        self.constraints: dict[int, Constraint] = {}
        self.sequences: dict[int, Sequence] = {}
        self.table_indexes: dict[int, list[Index]] = {}
        self.table_constraints: dict[int, list[Constraint]] = {}
        self.types: dict[int, Relation] = {}  # row type and array type oid -> relation
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.lookups: dict[tuple[str, int], dict[Any, list[int]]] = {}

    def add(self, relation: Relation) -> None:
        assert relation.oid not in self.relations, relation
        self.relations[relation.oid] = relation
        self.by_name.setdefault(relation.name, relation)
        if relation.row_type:
            self.types[relation.row_type] = relation
            self.types[relation.array_type] = relation


def _type_of_decltype(decltype: str | None) -> tuple[int, int, int]:
    """(type oid, typmod, array dimensions) of a column from its SQLite declared type."""
    typed = pgtypes.type_from_decltype(decltype) if decltype else None
    if typed is None:
        return fn.TEXT_OID, -1, 0
    pg, typmod = typed
    return pg.oid, typmod, int(pg.is_array)


def _rows(conn: apsw.Connection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """A query's rows, typed loosely: SQLite's values are whatever the schema holds."""
    rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
    return rows


def _value(conn: apsw.Connection, sql: str, *params: Any) -> Any:
    return _rows(conn, sql, *params)[0][0]


class _SchemaReader:
    """Builds a ``Snapshot`` from the connection's schema (re-entrant queries)."""

    def __init__(self, conn: apsw.Connection, snapshot: Snapshot,
                 sequence_rows: list[tuple[Any, ...]]) -> None:
        self.conn = conn
        self.snap = snapshot
        self.sequence_rows = sequence_rows
        self.taken: set[str] = set()
        self.index_rowids: dict[str, int] = {}
        self.index_sql: dict[str, str | None] = {}
        self.tables: dict[str, Relation] = {}  # by lower-cased name: SQLite's are caseless
        self.pending_fks: list[tuple[Constraint, list[str | None]]] = []
        self.tuples: dict[str, float] = {}

    def read(self) -> None:
        rows = _rows(self.conn, "SELECT rowid, type, name, tbl_name, sql "
                                "FROM main.sqlite_schema ORDER BY rowid")
        visible = []
        for rowid, kind, name, _table, sql in rows:
            if kind == "index":
                self.index_rowids[name] = rowid
                self.index_sql[name] = sql
            if name == "sqlite_stat1":
                self._read_stat1()
            if kind not in ("table", "view") or name.startswith(_HIDDEN_PREFIXES):
                continue
            visible.append((rowid, kind, name, sql or ""))
            self.taken.add(name)
        self.taken.update(r[1] for r in self.sequence_rows)
        for _rowid, kind, name, table, _sql in rows:
            if kind == "index" and table in self.taken and not name.startswith("sqlite_"):
                self.taken.add(name)
        for rowid, kind, name, sql in visible:
            self._relation(rowid, kind, name, sql)
        self._sequences()
        for constraint, ref_columns in self.pending_fks:
            self._resolve_foreign_key(constraint, ref_columns)

    def _read_stat1(self) -> None:
        for table, stat in self.conn.execute("SELECT tbl, stat FROM main.sqlite_stat1"):
            head = str(stat or "").split(" ", 1)[0]
            if head.isdigit():
                self.tuples[table] = float(head)

    def _relation(self, rowid: int, kind: str, name: str, sql: str) -> None:
        relation = Relation(oid=block_oid(rowid), name=name, kind="r" if kind == "table" else "v",
                            namespace=PUBLIC_NAMESPACE,
                            row_type=block_oid(rowid, OFFSET_ROW_TYPE),
                            array_type=block_oid(rowid, OFFSET_ARRAY_TYPE), sqlite_name=name,
                            tuples=self.tuples.get(name, -1.0))
        ddl = fn.parse_table_ddl(sql) if kind == "table" else fn.TableDdl()
        cids: dict[int, Attribute] = {}
        try:
            columns = _rows(self.conn, "SELECT cid, name, type, \"notnull\", dflt_value, pk, "
                                       "hidden FROM pragma_table_xinfo(?, 'main')", name)
        except apsw.SQLError as exc:  # a view of a dropped table, a missing vtable module
            log.warning("catalog: the columns of %s cannot be read: %s", name, exc)
            columns = []
        primary_key: list[tuple[int, Attribute]] = []  # (position in the key, column)
        for cid, column, decltype, not_null, default, pk, hidden in columns:
            if hidden == 1:  # a virtual table's hidden column
                continue
            type_oid, typmod, dims = _type_of_decltype(decltype)
            num = len(relation.attributes) + 1
            if num > ATTNUM_MAX:
                break
            attribute = Attribute(num=num, name=column, type_oid=type_oid, typmod=typmod,
                                  not_null=bool(not_null), dims=dims)
            if hidden in (2, 3):
                attribute.generated = "s"
                expression = ddl.generated.get(column)
                if expression is not None:
                    attribute.default = fn.render_expression(expression, pretty=True)
            elif default is not None:
                attribute.default = fn.render_default(str(default), type_oid)
            if attribute.default is not None:
                attribute.default_oid = block_oid(rowid, OFFSET_ATTRDEFS + num)
            relation.attributes.append(attribute)
            cids[cid] = attribute
            if pk:
                primary_key.append((pk, attribute))
        if kind == "view":
            relation.view_sql = fn.view_query(sql)
        self.snap.add(relation)
        if kind == "table" and columns:
            self.tables[name.lower()] = relation
            self._table_objects(relation, rowid, ddl, cids,
                                [a for _, a in sorted(primary_key, key=lambda p: p[0])])

    def _table_objects(self, table: Relation, rowid: int, ddl: fn.TableDdl,
                       cids: dict[int, Attribute], primary_keys: list[Attribute]) -> None:
        indexes: list[Index] = []
        constraints: list[Constraint] = []
        by_name = {a.name.lower(): a for a in table.attributes}
        unused = list(ddl.constraints)

        def ddl_constraint(kind: str, columns: list[str]) -> fn.DdlConstraint | None:
            wanted = [c.lower() for c in columns]
            for candidate in unused:
                if candidate.kind == kind and (kind == "c" or
                                               [c.lower() for c in candidate.columns] == wanted):
                    unused.remove(candidate)
                    return candidate
            return None

        def new_constraint(kind: str, name: str, keys: list[int], **kwargs: Any) -> Constraint:
            if len(constraints) >= CONSTRAINTS_MAX:
                raise CatalogError(f'table "{table.name}" has more constraints than the '
                                   f"catalog numbers ({CONSTRAINTS_MAX})", "54000")
            constraint = Constraint(oid=block_oid(rowid, OFFSET_CONSTRAINTS + len(constraints)),
                                    name=name, kind=kind, table_oid=table.oid, keys=keys,
                                    columns=[table.attributes[k - 1].name for k in keys if k],
                                    **kwargs)
            constraints.append(constraint)
            return constraint

        for check in [c for c in ddl.constraints if c.kind == "c"]:
            unused.remove(check)
            assert check.expression is not None
            referenced = fn.columns_of(check.expression)
            name = check.name or fn.choose_name(
                table.name, referenced[0] if len(set(referenced)) == 1 else "", "check",
                self.taken)
            new_constraint("c", name, [by_name[c.lower()].num for c in referenced
                                       if c.lower() in by_name], expression=check.expression)
        table.checks = sum(1 for c in constraints if c.kind == "c")

        for attribute in primary_keys:  # PostgreSQL's primary keys are NOT NULL; SQLite's
            attribute.not_null = True    # are only for INTEGER PRIMARY KEY (a legacy quirk)
        has_pk_index = False
        index_list = _rows(self.conn, "SELECT name, \"unique\", origin, partial "
                           "FROM pragma_index_list(?, 'main') ORDER BY seq DESC", table.name)
        for index_name, unique, origin, _partial in index_list:
            index_rowid = self.index_rowids.get(index_name)
            if index_rowid is None:
                continue
            keys: list[int] = []
            columns: list[str] = []
            descending: list[bool] = []
            expressions: list[str | None] = []
            sql = self.index_sql.get(index_name)
            ddl_index = fn.parse_index_ddl(sql) if sql else fn.IndexDdl([], None)
            for seqno, cid, _column, desc, _coll, key in self.conn.execute(
                    "SELECT seqno, cid, name, \"desc\", coll, key "
                    "FROM pragma_index_xinfo(?, 'main') ORDER BY seqno", (index_name,)):
                if not key:
                    continue
                descending.append(bool(desc))
                if cid >= 0 and cid in cids:
                    keys.append(cids[cid].num)
                    columns.append(cids[cid].name)
                    expressions.append(None)
                else:
                    keys.append(0)
                    exprs = [c for c in columns if c.startswith("expr")]
                    columns.append("expr" if not exprs else f"expr{len(exprs)}")
                    text = (ddl_index.expressions[seqno]
                            if seqno < len(ddl_index.expressions) else "NULL")
                    expressions.append(text)
            primary = origin == "pk"
            has_pk_index = has_pk_index or primary
            index = Index(oid=block_oid(index_rowid), table_oid=table.oid, name=index_name,
                          unique=bool(unique), primary=primary, keys=keys, columns=columns,
                          expressions=expressions, descending=descending,
                          predicate=ddl_index.predicate, sqlite_name=index_name)
            if origin in ("pk", "u"):
                kind = "p" if primary else "u"
                found = ddl_constraint(kind, columns)
                if found is not None and found.name:
                    index.name = found.name
                    self.taken.add(found.name)
                elif kind == "p":
                    index.name = fn.choose_name(table.name, "", "pkey", self.taken)
                else:
                    index.name = fn.choose_name(table.name, "_".join(columns), "key",
                                                self.taken)
                constraint = new_constraint(kind, index.name, keys, index_oid=index.oid)
                index.constraint_oid = constraint.oid
            indexes.append(index)
        if primary_keys and not has_pk_index:
            found = ddl_constraint("p", [a.name for a in primary_keys])
            name = (found.name if found is not None and found.name
                    else fn.choose_name(table.name, "", "pkey", self.taken))
            keys = [a.num for a in primary_keys]
            index = Index(oid=block_oid(rowid, OFFSET_PKEY_INDEX), table_oid=table.oid,
                          name=name, unique=True, primary=True, keys=keys,
                          columns=[a.name for a in primary_keys],
                          expressions=[None] * len(keys), descending=[False] * len(keys))
            constraint = new_constraint("p", name, keys, index_oid=index.oid)
            index.constraint_oid = constraint.oid
            indexes.insert(0, index)
        indexes.sort(key=lambda i: (not i.primary, i.oid))

        fk_rows: dict[int, list[tuple[Any, ...]]] = {}
        for row in self.conn.execute(
                "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete "
                "FROM pragma_foreign_key_list(?, 'main') ORDER BY id DESC, seq", (table.name,)):
            fk_rows.setdefault(row[0], []).append(row)
        for rows in fk_rows.values():
            from_columns = [r[3] for r in rows]
            ref_columns = [r[4] for r in rows]
            parent = rows[0][2]
            found = ddl_constraint("f", from_columns)
            keys = [by_name[c.lower()].num for c in from_columns if c.lower() in by_name]
            name = (found.name if found is not None and found.name else
                    fn.choose_name(table.name, "_".join(from_columns), "fkey", self.taken))
            constraint = new_constraint(
                "f", name, keys, ref_table_name=parent,
                on_update=_FK_ACTION_CODES.get(str(rows[0][5]).upper(), "a"),
                on_delete=_FK_ACTION_CODES.get(str(rows[0][6]).upper(), "a"),
                match="f" if found is not None and found.match_full else "s",
                deferrable=bool(found and found.deferrable),
                deferred=bool(found and found.deferred))
            self.pending_fks.append((constraint, ref_columns))
        for index in indexes:
            self.snap.add(Relation(
                oid=index.oid, name=index.name, kind="i", namespace=PUBLIC_NAMESPACE,
                sqlite_name=index.sqlite_name, table_oid=table.oid, tuples=0.0,
                attributes=[self._index_attribute(table, index, i)
                            for i in range(len(index.keys))]))
            self.snap.indexes[index.oid] = index
        table.has_index = bool(indexes)
        for constraint in constraints:
            self.snap.constraints[constraint.oid] = constraint
        self.snap.table_indexes[table.oid] = indexes
        self.snap.table_constraints[table.oid] = constraints

    @staticmethod
    def _index_attribute(table: Relation, index: Index, i: int) -> Attribute:
        key = index.keys[i]
        if key:
            column = table.attributes[key - 1]
            return Attribute(num=i + 1, name=column.name, type_oid=column.type_oid,
                             typmod=column.typmod, dims=column.dims)
        return Attribute(num=i + 1, name=index.columns[i], type_oid=fn.TEXT_OID)

    def _resolve_foreign_key(self, constraint: Constraint, ref_columns: list[str | None]) -> None:
        parent = self.tables.get(constraint.ref_table_name.lower())
        if parent is None:  # SQLite allows a reference to a table that does not exist
            constraint.ref_columns = [c or "?" for c in ref_columns]
            return
        constraint.ref_table_oid = parent.oid
        constraint.ref_table_name = parent.name
        by_name = {a.name.lower(): a for a in parent.attributes}
        if all(c is None for c in ref_columns):
            pkey = next((i for i in self.snap.table_indexes.get(parent.oid, []) if i.primary),
                        None)
            names = list(pkey.columns) if pkey is not None else []
        else:
            names = [str(c) for c in ref_columns]
        attributes = [by_name.get(n.lower()) for n in names]
        constraint.ref_columns = [a.name if a else n for a, n in zip(attributes, names,
                                                                      strict=True)]
        constraint.ref_keys = [a.num if a else 0 for a in attributes]
        wanted = set(constraint.ref_keys)
        for index in self.snap.table_indexes.get(parent.oid, []):
            if index.unique and index.predicate is None and set(index.keys) == wanted:
                constraint.index_oid = index.oid
                break

    def _sequences(self) -> None:
        for row in self.sequence_rows:
            rowid, name, data_type, start, minimum, maximum, increment, cycle = row[:8]
            owner_table, owner_column, identity = row[8:11]
            if not 0 <= rowid <= SEQUENCE_ROWID_MAX:
                continue
            pg = pgtypes.BY_NAME.get(str(data_type)) or pgtypes.BY_NAME["int8"]
            sequence = Sequence(oid=SEQUENCE_OID_FIRST + rowid, name=name, type_oid=pg.oid,
                                start=start, minimum=minimum, maximum=maximum,
                                increment=increment, cycle=bool(cycle), owner_table=owner_table,
                                owner_column=owner_column, identity=identity or "")
            self.snap.sequences[sequence.oid] = sequence
            int8, boolean = pgtypes.BY_NAME["int8"].oid, fn.BOOL_OID
            self.snap.add(Relation(
                oid=sequence.oid, name=name, kind="S", namespace=PUBLIC_NAMESPACE, tuples=1.0,
                attributes=[Attribute(1, "last_value", int8, not_null=True),
                            Attribute(2, "log_cnt", int8, not_null=True),
                            Attribute(3, "is_called", boolean, not_null=True)]))
            owner = self.snap.by_name.get(owner_table or "")
            if owner is None or owner.kind != "r":
                continue
            column = next((a for a in owner.attributes if a.name == owner_column), None)
            if column is None:
                continue
            sequence.owner_oid, sequence.owner_attnum = owner.oid, column.num
            if sequence.identity in ("a", "d"):
                column.identity = sequence.identity
                column.default = None
                column.default_oid = 0
            else:
                column.default = f"nextval({fn.quote_literal(quote_ident(name))}::regclass)"
                if not column.default_oid:
                    rowid_of_owner = (owner.oid - USER_OID_FIRST) // OID_BLOCK
                    column.default_oid = block_oid(rowid_of_owner, OFFSET_ATTRDEFS + column.num)


# --- the catalog of one connection -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    """One catalog table: its PostgreSQL identity, its columns and where its rows come from."""

    schema: str
    name: str
    oid: int
    row_type: int
    array_type: int
    kind: str  # r (a catalog table) or v (a catalog view)
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type name)
    rows: Callable[[Catalog, Snapshot], Iterable[tuple[Any, ...]]]
    keys: tuple[str, ...] = ()  # looked up first by an equality constraint
    live: bool = False  # computed on each scan, not once per snapshot
    hidden: tuple[str, ...] = ()  # a table function's parameters

    @property
    def sqlite_name(self) -> str:
        return f"{TABLE_PREFIX}{self.schema}_{self.name}"


_SPECS: dict[str, _Spec] = {}  # by sqlite_name
_BY_PG_NAME: dict[tuple[str, str], _Spec] = {}


class Catalog:
    """The catalog of one connection: its snapshot cache and the lookups that the catalog
    functions make. Built by ``install``; every method runs in the connection's thread."""

    def __init__(self, conn: apsw.Connection, *, database: str, user: str,
                 settings: Mapping[str, str] | None) -> None:
        self.conn = conn
        self.database = database
        self.user = user
        self.settings = settings
        self._snapshot: Snapshot | None = None
        self.sequence_values: dict[int, tuple[int, bool]] = {}

    # snapshots
    def snapshot(self) -> Snapshot:
        conn = self.conn
        version = int(_value(conn, "PRAGMA main.schema_version"))
        snap = self._snapshot
        fingerprint = None
        if snap is not None and not (snap.committed and snap.schema_version == version):
            fingerprint = self._fingerprint()
            if fingerprint != snap.fingerprint:
                snap = None
            elif conn.getautocommit():  # the same schema, now committed: trust its version
                snap.committed, snap.schema_version = True, version
        sequence_rows: list[tuple[Any, ...]] = []
        if snap is None or snap.has_sequences:
            sequence_rows = self._sequence_rows(snap)
        key = tuple(r[:11] for r in sequence_rows)
        self.sequence_values = {SEQUENCE_OID_FIRST + r[0]: (r[11], bool(r[12]))
                                for r in sequence_rows}
        if snap is not None and snap.sequence_key == key:
            return snap
        snap = Snapshot(schema_version=version,
                        fingerprint=fingerprint if fingerprint is not None
                        else self._fingerprint(),
                        committed=bool(conn.getautocommit()), sequence_key=key,
                        has_sequences=self._has_sequences_table())
        _SchemaReader(conn, snap, sequence_rows).read()
        log.debug("catalog snapshot built schema_version=%d relations=%d", version,
                  len(snap.relations))
        self._snapshot = snap
        return snap

    def _fingerprint(self) -> str:
        row = self.conn.execute(
            "SELECT group_concat(rowid || char(1) || type || char(1) || name || char(1) || "
            "ifnull(sql, ''), char(2)) FROM main.sqlite_schema").fetchall()
        return str(row[0][0] or "")

    def _has_sequences_table(self) -> bool:
        return bool(self.conn.execute(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?",
            (SEQUENCES_TABLE,)).fetchall())

    def _sequence_rows(self, snap: Snapshot | None) -> list[tuple[Any, ...]]:
        if snap is None and not self._has_sequences_table():
            return []
        try:
            return self.conn.execute(
                f"SELECT {_SEQUENCE_COLUMNS} FROM main.{SEQUENCES_TABLE} ORDER BY rowid"
            ).fetchall()
        except apsw.SQLError:  # a table of that name without the expected columns
            log.warning("catalog: %s does not have the expected columns", SEQUENCES_TABLE)
            return []

    def rows(self, spec: _Spec) -> tuple[Snapshot, list[tuple[Any, ...]]]:
        snap = self.snapshot()
        if spec.live:
            return snap, list(spec.rows(self, snap))
        rows = snap.rows.get(spec.sqlite_name)
        if rows is None:
            rows = snap.rows[spec.sqlite_name] = list(spec.rows(self, snap))
        return snap, rows

    # lookups for the functions
    def relation(self, oid: int | None) -> Relation | None:
        if oid is None:
            return None
        return self.snapshot().relations.get(oid) or _static().relations.get(oid)

    def index(self, oid: int) -> Index | None:
        return self.snapshot().indexes.get(oid)

    def indexes_of(self, table_oid: int) -> list[Index]:
        return self.snapshot().table_indexes.get(table_oid, [])

    def constraint(self, oid: int) -> Constraint | None:
        return self.snapshot().constraints.get(oid)

    def owned_sequence(self, table_oid: int, column: str) -> Sequence | None:
        relation = self.relation(table_oid)
        if relation is None:
            return None
        attnum = next((a.num for a in relation.attributes if a.name == column), 0)
        return next((s for s in self.snapshot().sequences.values()
                     if s.owner_oid == table_oid and s.owner_attnum == attnum), None)

    def relation_visible(self, oid: int) -> int | None:
        relation = self.relation(oid)
        if relation is None:
            return None
        if relation.namespace == PG_CATALOG_NAMESPACE:
            return 1
        if relation.namespace != PUBLIC_NAMESPACE:
            return 0
        return int((PG_CATALOG_NAMESPACE, relation.name) not in _static().by_name)

    def relation_name(self, relation: Relation, *, qualify: bool) -> str:
        """regclass output (qualified when not visible) or, ``qualify``, always qualified."""
        schema = next(n for n, o in NAMESPACES.items() if o == relation.namespace)
        if qualify or not self.relation_visible(relation.oid):
            return f"{quote_ident(schema)}.{quote_ident(relation.name)}"
        return quote_ident(relation.name)

    def relation_name_by_oid(self, oid: int) -> str | None:
        relation = self.relation(oid)
        return None if relation is None else self.relation_name(relation, qualify=False)

    def find_relation_oid(self, text: str) -> int | None:
        parts = fn.split_qualified_name(text)
        if len(parts) == 3:
            if parts[0] != self.database:
                raise CatalogError(f"cross-database references are not implemented: {text}",
                                   "0A000")
            parts = parts[1:]
        if len(parts) == 1:
            schemas = ["pg_catalog", "public"]
        elif len(parts) == 2:
            schemas = [parts[0]]
        else:
            raise CatalogError(f"improper relation name (too many dotted names): {text}",
                               "42601")
        name = parts[-1]
        for schema in schemas:
            if schema == "public":
                relation = self.snapshot().by_name.get(name)
            else:
                relation = _static().by_name.get((NAMESPACES.get(schema, -1), name))
            if relation is not None:
                return relation.oid
        return None

    def format_type(self, oid: int, typmod: int | None) -> str:
        if oid in pgtypes.BY_OID:
            return pgtypes.format_type(oid, typmod)
        relation = self.snapshot().types.get(oid) or _static().types.get(oid)
        if relation is None:
            return "???"
        name = self.relation_name(relation, qualify=False)
        return name + "[]" if oid == relation.array_type else name

    def find_type(self, text: str) -> int | None:
        try:
            pg, _typmod = pgtypes.lookup(re.sub(r"^\s*pg_catalog\.", "", text))
            return int(pg.oid)
        except (pgtypes.UnknownTypeError, ValueError):
            pass
        array = text.rstrip().endswith("[]")
        try:
            oid = self.find_relation_oid(text.rstrip()[:-2] if array else text)
        except CatalogError:
            return None
        relation = self.relation(oid)
        if relation is None or not relation.row_type:
            return None
        return relation.array_type if array else relation.row_type

    def type_visible(self, oid: int) -> int | None:
        if oid in pgtypes.BY_OID:
            return 1
        relation = self.snapshot().types.get(oid) or _static().types.get(oid)
        if relation is None:
            return None
        return int(relation.namespace == PG_CATALOG_NAMESPACE or (
            relation.namespace == PUBLIC_NAMESPACE and relation.name not in pgtypes.BY_NAME))

    @staticmethod
    def namespace_oid(name: str) -> int | None:
        return NAMESPACES.get(name)

    @staticmethod
    def namespace_name(oid: int) -> str | None:
        return next((n for n, o in NAMESPACES.items() if o == oid), None)

    def role_oid(self, name: str) -> int | None:
        return {self.user: SUPERUSER_OID, "pg_database_owner": DATABASE_OWNER_OID}.get(name)

    def role_name(self, oid: int) -> str | None:
        return {SUPERUSER_OID: self.user, DATABASE_OWNER_OID: "pg_database_owner"}.get(oid)

    def relation_bytes(self, oid: int) -> int:
        """The relation's pages in SQLite's file (dbstat), in bytes; 0 without storage."""
        relation = self.relation(oid)
        if relation is None or relation.kind not in ("r", "i"):
            return 0
        name = relation.sqlite_name
        if relation.kind == "i" and name is None:
            return 0  # an INTEGER PRIMARY KEY is the table's own b-tree
        return int(_value(self.conn, "SELECT coalesce(sum(pgsize), 0) "
                                     "FROM dbstat('main', 1) WHERE name = ?", name))

    def database_bytes(self) -> int:
        return int(_value(self.conn, "PRAGMA main.page_count")) * int(
            _value(self.conn, "PRAGMA main.page_size"))


# --- built-in rows: catalog relations and types ---------------------------------------------

def _type_oid(typname: str) -> int:
    return int(pgtypes.BY_NAME[typname].oid)


def _decltype(typname: str) -> str:
    """A catalog column's declared type; pseudo-types (anyarray) have none, as text."""
    try:
        return pgtypes.sqlite_decltype(pgtypes.BY_NAME[typname], -1)
    except pgtypes.PgValueError:
        return "TEXT"


@dataclass(frozen=True, slots=True)
class _TypeFacts:
    length: int
    by_value: bool
    align: str
    storage: str
    collation: int


_ROW_TYPE_FACTS = _TypeFacts(-1, False, "d", "x", 0)
_COLLATIONS = {"text": DEFAULT_COLLATION, "varchar": DEFAULT_COLLATION,
               "bpchar": DEFAULT_COLLATION, "pg_node_tree": DEFAULT_COLLATION, "name": 950}


def _type_facts(oid: int) -> _TypeFacts:
    pg = pgtypes.BY_OID.get(oid)
    if pg is None:
        return _ROW_TYPE_FACTS
    element = pgtypes.BY_OID.get(pg.elem_oid) if pg.is_array else pg
    collation = _COLLATIONS.get(element.name, 0) if element is not None else 0
    return _TypeFacts(pg.typlen, pg.byval, pg.align, pg.storage, collation)


def _builtin_type_row(pg: pgtypes.PgType) -> tuple[Any, ...]:
    facts = _type_facts(pg.oid)
    subscript = ("array_subscript_handler" if pg.is_array or pg.name in ("int2vector",
                                                                         "oidvector")
                 else "raw_array_subscript_handler" if pg.name == "name"
                 else "jsonb_subscript_handler" if pg.name == "jsonb" else "-")
    return (pg.oid, pg.name, PG_CATALOG_NAMESPACE, SUPERUSER_OID, pg.typlen, pg.byval,
            pg.typtype, pg.category, pg.preferred, True, pg.delim, 0, subscript, pg.elem_oid,
            pg.array_oid, pg.input_fn, pg.output_fn, pg.receive_fn, pg.send_fn, pg.modin_fn,
            pg.modout_fn, "array_typanalyze" if pg.is_array else "-", pg.align, pg.storage,
            False, 0, -1, 0, facts.collation, None, None, None)


def _row_type_rows(relation: Relation) -> Iterable[tuple[Any, ...]]:
    yield (relation.row_type, relation.name, relation.namespace, SUPERUSER_OID, -1, False,
           "c", "C", False, True, ",", relation.oid, "-", 0, relation.array_type, "record_in",
           "record_out", "record_recv", "record_send", "-", "-", "-", "d", "x", False, 0, -1,
           0, 0, None, None, None)
    yield (relation.array_type, fn.make_object_name("_" + relation.name, "", ""),
           relation.namespace, SUPERUSER_OID, -1, False, "b", "A", False, True, ",", 0,
           "array_subscript_handler", relation.row_type, 0, "array_in", "array_out",
           "array_recv", "array_send", "-", "-", "array_typanalyze", "d", "x", False, 0, -1, 0,
           0, None, None, None)


@dataclass(slots=True)
class _Static:
    relations: dict[int, Relation]
    by_name: dict[tuple[int, str], Relation]
    types: dict[int, Relation]
    type_rows: list[tuple[Any, ...]]


@functools.cache
def _static() -> _Static:
    """The catalog's own relations and the built-in types (the same for every connection)."""
    relations: dict[int, Relation] = {}
    for spec in _SPECS.values():
        if not spec.oid:
            continue
        relations[spec.oid] = Relation(
            oid=spec.oid, name=spec.name, kind=spec.kind, namespace=NAMESPACES[spec.schema],
            row_type=spec.row_type, array_type=spec.array_type, sqlite_name=spec.sqlite_name,
            attributes=[Attribute(i + 1, column, _type_oid(typname), dims=int(
                typname.startswith("_")))
                for i, (column, typname) in enumerate(spec.columns)])
    types = {}
    for relation in relations.values():
        types[relation.row_type] = types[relation.array_type] = relation
    type_rows = [_builtin_type_row(pg) for pg in pgtypes.BY_OID.values()]
    for relation in relations.values():
        type_rows.extend(_row_type_rows(relation))
    return _Static(relations, {(r.namespace, r.name): r for r in relations.values()}, types,
                   type_rows)


# --- the catalog tables ----------------------------------------------------------------------


def _spec(schema: str, name: str, oids: tuple[int, int, int], kind: str, columns: str,
          rows: Callable[[Catalog, Snapshot], Iterable[tuple[Any, ...]]], *,
          keys: tuple[str, ...] = (), live: bool = False, hidden: tuple[str, ...] = ()) -> None:
    parsed = tuple((c.split(":")[0], c.split(":")[1]) for c in columns.split())
    spec = _Spec(schema, name, oids[0], oids[1], oids[2], kind, parsed, rows, keys, live, hidden)
    _SPECS[spec.sqlite_name] = spec
    _BY_PG_NAME[(schema, name)] = spec


def _json(value: list[int]) -> str:
    """An array (or int2vector, oidvector) as Borealis stores it: compact JSON."""
    return json.dumps(value, separators=(",", ":"))


def _empty(_cat: Catalog, _snap: Snapshot) -> list[tuple[Any, ...]]:
    return []


def _all_relations(snap: Snapshot) -> Iterable[Relation]:
    yield from _static().relations.values()
    yield from snap.relations.values()


def _pg_class(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for r in _all_relations(snap):
        am = HEAP_AM if r.kind == "r" else BTREE_AM if r.kind == "i" else 0
        yield (r.oid, r.name, r.namespace, r.row_type, 0, SUPERUSER_OID, am,
               r.oid if r.kind != "v" else 0, 0, 0, r.tuples, 0, 0, r.has_index, False, "p",
               r.kind, len(r.attributes), r.checks, r.kind == "v", False, False, False, False,
               True, "d" if r.kind == "r" else "n", False, 0, 0, 0, None, None, None)


def _pg_attribute(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for r in _all_relations(snap):
        for a in r.attributes:
            facts = _type_facts(a.type_oid)
            yield (r.oid, a.name, a.type_oid, -1, facts.length, a.num, a.dims, -1, a.typmod,
                   facts.by_value, facts.align, facts.storage, "", a.not_null,
                   a.default is not None, False, a.identity, a.generated, False, True, 0,
                   facts.collation, None, None, None, None)


def _pg_attrdef(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for r in snap.relations.values():
        for a in r.attributes:
            if a.default is not None:
                yield (a.default_oid, r.oid, a.num, a.default)


def _pg_index(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for i in snap.indexes.values():
        relation = snap.relations[i.oid]
        collations = [_type_facts(a.type_oid).collation for a in relation.attributes]
        expressions = [fn.render_expression(e, pretty=False) for e in i.expressions if e]
        predicate = (fn.render_expression(i.predicate, pretty=False)
                     if i.predicate is not None else None)
        n = len(i.keys)
        yield (i.oid, i.table_oid, n, n, i.unique, False, i.primary, False, i.immediate, False,
               True, False, True, True, False, _json(i.keys), _json(collations),
               _json([0] * n), _json([3 if d else 0 for d in i.descending]),
               ", ".join(expressions) or None, predicate)


def _pg_constraint(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for c in snap.constraints.values():
        foreign = c.kind == "f"
        yield (c.oid, c.name, PUBLIC_NAMESPACE, c.kind, c.deferrable, c.deferred, True,
               c.table_oid, 0, c.index_oid, 0, c.ref_table_oid, c.on_update if foreign else " ",
               c.on_delete if foreign else " ", c.match if foreign else " ", True, 0, False,
               _json(c.keys), _json(c.ref_keys) if foreign else None, None, None,
               None, None, None,
               fn.render_expression(c.expression, pretty=False) if c.expression else None)


def _pg_type(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    yield from _static().type_rows
    for r in snap.relations.values():
        if r.row_type:
            yield from _row_type_rows(r)


def _pg_namespace(_cat: Catalog, _snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for name, oid in NAMESPACES.items():
        yield (oid, name, DATABASE_OWNER_OID if oid == PUBLIC_NAMESPACE else SUPERUSER_OID,
               None)


def _pg_database(cat: Catalog, _snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    yield (DATABASE_OID, cat.database, SUPERUSER_OID, 6, "c", False, True, -1, 0, 1,
           DEFAULT_TABLESPACE, "C.UTF-8", "C.UTF-8", None, None, None)


def _roles(cat: Catalog) -> Iterable[tuple[int, str, bool]]:
    yield SUPERUSER_OID, cat.user, True
    yield DATABASE_OWNER_OID, "pg_database_owner", False


def _pg_roles(cat: Catalog, _snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for oid, name, su in _roles(cat):
        yield (name, su, True, su, su, su, su, -1, "********", None, su, None, oid)


def _pg_authid(cat: Catalog, _snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for oid, name, su in _roles(cat):
        yield (oid, name, su, True, su, su, su, su, su, -1, None, None)


def _pg_user(cat: Catalog, _snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for oid, name, su in _roles(cat):
        if su:
            yield (name, oid, True, True, True, True, "********", None, None)


def _pg_depend(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for s in snap.sequences.values():
        yield (1259, s.oid, 0, 2615, PUBLIC_NAMESPACE, 0, "n")
        if s.owner_oid:
            yield (1259, s.oid, 0, 1259, s.owner_oid, s.owner_attnum,
                   "i" if s.identity else "a")


def _pg_sequence(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for s in snap.sequences.values():
        yield (s.oid, s.type_oid, s.start, s.increment, s.maximum, s.minimum, 1, s.cycle)


def _pg_sequences(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for s in snap.sequences.values():
        last_value, called = cat.sequence_values.get(s.oid, (None, False))
        yield ("public", s.name, cat.user, s.type_oid, s.start,
               s.minimum, s.maximum, s.increment, s.cycle, 1, last_value if called else None)


_SETTINGS_DEFAULTS = {"server_version": "15.0 (Borealis)", "server_version_num": "150000",
                      "server_encoding": "UTF8", "client_encoding": "UTF8",
                      "standard_conforming_strings": "on", "DateStyle": "ISO, MDY",
                      "TimeZone": "UTC", "search_path": '"$user", public',
                      "default_table_access_method": "heap", "max_identifier_length": "63",
                      "integer_datetimes": "on", "jit": "off"}


def _pg_settings(cat: Catalog, _snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    settings = dict(cat.settings) if cat.settings is not None else _SETTINGS_DEFAULTS
    for name, value in sorted(settings.items(), key=lambda item: item[0].lower()):
        yield (name, value, None, "Borealis", "", None, "user", "string", "default", None, None,
               None, value, value, None, None, False)


def _pg_views(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for r in snap.relations.values():
        if r.kind == "v":
            definition = " " + fn.render_select(r.view_sql) + ";" if r.view_sql else None
            yield ("public", r.name, cat.user, definition)


def _pg_tables(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for r in _all_relations(snap):
        if r.kind == "r":
            schema = Catalog.namespace_name(r.namespace)
            yield (schema, r.name, cat.user, None, r.has_index, False, False, False)


def _pg_indexes(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for i in snap.indexes.values():
        table = snap.relations[i.table_oid]
        yield ("public", table.name, i.name, None,
               fn.index_definition(cat, i, pretty=False))


_spec("pg_catalog", "pg_namespace", (2615, 10047, 10046), "r",
      "oid:oid nspname:name nspowner:oid nspacl:_aclitem", _pg_namespace, keys=("oid",))
_spec("pg_catalog", "pg_class", (1259, 83, 273), "r",
      "oid:oid relname:name relnamespace:oid reltype:oid reloftype:oid relowner:oid relam:oid "
      "relfilenode:oid reltablespace:oid relpages:int4 reltuples:float4 relallvisible:int4 "
      "reltoastrelid:oid relhasindex:bool relisshared:bool relpersistence:char relkind:char "
      "relnatts:int2 relchecks:int2 relhasrules:bool relhastriggers:bool relhassubclass:bool "
      "relrowsecurity:bool relforcerowsecurity:bool relispopulated:bool relreplident:char "
      "relispartition:bool relrewrite:oid relfrozenxid:xid relminmxid:xid relacl:_aclitem "
      "reloptions:_text relpartbound:pg_node_tree", _pg_class, keys=("oid", "relname"))
_spec("pg_catalog", "pg_attribute", (1249, 75, 270), "r",
      "attrelid:oid attname:name atttypid:oid attstattarget:int4 attlen:int2 attnum:int2 "
      "attndims:int4 attcacheoff:int4 atttypmod:int4 attbyval:bool attalign:char "
      "attstorage:char attcompression:char attnotnull:bool atthasdef:bool atthasmissing:bool "
      "attidentity:char attgenerated:char attisdropped:bool attislocal:bool attinhcount:int4 "
      "attcollation:oid attacl:_aclitem attoptions:_text attfdwoptions:_text "
      "attmissingval:anyarray", _pg_attribute, keys=("attrelid",))
_spec("pg_catalog", "pg_attrdef", (2604, 10001, 10000), "r",
      "oid:oid adrelid:oid adnum:int2 adbin:pg_node_tree", _pg_attrdef, keys=("adrelid", "oid"))
_spec("pg_catalog", "pg_index", (2610, 10007, 10006), "r",
      "indexrelid:oid indrelid:oid indnatts:int2 indnkeyatts:int2 indisunique:bool "
      "indnullsnotdistinct:bool indisprimary:bool indisexclusion:bool indimmediate:bool "
      "indisclustered:bool indisvalid:bool indcheckxmin:bool indisready:bool indislive:bool "
      "indisreplident:bool indkey:int2vector indcollation:oidvector indclass:oidvector "
      "indoption:int2vector indexprs:pg_node_tree indpred:pg_node_tree", _pg_index,
      keys=("indexrelid", "indrelid"))
_spec("pg_catalog", "pg_constraint", (2606, 10003, 10002), "r",
      "oid:oid conname:name connamespace:oid contype:char condeferrable:bool "
      "condeferred:bool convalidated:bool conrelid:oid contypid:oid conindid:oid "
      "conparentid:oid confrelid:oid confupdtype:char confdeltype:char confmatchtype:char "
      "conislocal:bool coninhcount:int4 connoinherit:bool conkey:_int2 confkey:_int2 "
      "conpfeqop:_oid conppeqop:_oid conffeqop:_oid confdelsetcols:_int2 conexclop:_oid "
      "conbin:pg_node_tree", _pg_constraint, keys=("oid", "conrelid", "confrelid"))
_spec("pg_catalog", "pg_type", (1247, 71, 210), "r",
      "oid:oid typname:name typnamespace:oid typowner:oid typlen:int2 typbyval:bool "
      "typtype:char typcategory:char typispreferred:bool typisdefined:bool typdelim:char "
      "typrelid:oid typsubscript:regproc typelem:oid typarray:oid typinput:regproc "
      "typoutput:regproc typreceive:regproc typsend:regproc typmodin:regproc "
      "typmodout:regproc typanalyze:regproc typalign:char typstorage:char typnotnull:bool "
      "typbasetype:oid typtypmod:int4 typndims:int4 typcollation:oid "
      "typdefaultbin:pg_node_tree typdefault:text typacl:_aclitem", _pg_type,
      keys=("oid", "typname"))
_spec("pg_catalog", "pg_range", (3541, 10101, 10100), "r",
      "rngtypid:oid rngsubtype:oid rngmultitypid:oid rngcollation:oid rngsubopc:oid "
      "rngcanonical:regproc rngsubdiff:regproc", _empty)
_spec("pg_catalog", "pg_enum", (3501, 10045, 10044), "r",
      "oid:oid enumtypid:oid enumsortorder:float4 enumlabel:name", _empty)
_spec("pg_catalog", "pg_database", (1262, 1248, 10052), "r",
      "oid:oid datname:name datdba:oid encoding:int4 datlocprovider:char datistemplate:bool "
      "datallowconn:bool datconnlimit:int4 datfrozenxid:xid datminmxid:xid dattablespace:oid "
      "datcollate:text datctype:text daticulocale:text datcollversion:text datacl:_aclitem",
      _pg_database)
_spec("pg_catalog", "pg_roles", (12000, 12002, 12001), "v",
      "rolname:name rolsuper:bool rolinherit:bool rolcreaterole:bool rolcreatedb:bool "
      "rolcanlogin:bool rolreplication:bool rolconnlimit:int4 rolpassword:text "
      "rolvaliduntil:timestamptz rolbypassrls:bool rolconfig:_text oid:oid", _pg_roles)
_spec("pg_catalog", "pg_user", (12014, 12016, 12015), "v",
      "usename:name usesysid:oid usecreatedb:bool usesuper:bool userepl:bool "
      "usebypassrls:bool passwd:text valuntil:timestamptz useconfig:_text", _pg_user)
_spec("pg_catalog", "pg_authid", (1260, 2842, 10057), "r",
      "oid:oid rolname:name rolsuper:bool rolinherit:bool rolcreaterole:bool "
      "rolcreatedb:bool rolcanlogin:bool rolreplication:bool rolbypassrls:bool "
      "rolconnlimit:int4 rolpassword:text rolvaliduntil:timestamptz", _pg_authid)
_spec("pg_catalog", "pg_am", (2601, 10015, 10014), "r",
      "oid:oid amname:name amhandler:regproc amtype:char",
      lambda _c, _s: [(HEAP_AM, "heap", "heap_tableam_handler", "t"),
                      (BTREE_AM, "btree", "bthandler", "i")])
_spec("pg_catalog", "pg_tablespace", (1213, 10056, 10055), "r",
      "oid:oid spcname:name spcowner:oid spcacl:_aclitem spcoptions:_text",
      lambda _c, _s: [(DEFAULT_TABLESPACE, "pg_default", SUPERUSER_OID, None, None),
                      (1664, "pg_global", SUPERUSER_OID, None, None)])
_spec("pg_catalog", "pg_collation", (3456, 10095, 10094), "r",
      "oid:oid collname:name collnamespace:oid collowner:oid collprovider:char "
      "collisdeterministic:bool collencoding:int4 collcollate:text collctype:text "
      "colliculocale:text collversion:text",
      lambda _c, _s: [(DEFAULT_COLLATION, "default", PG_CATALOG_NAMESPACE, SUPERUSER_OID, "d",
                       True, -1, None, None, None, None),
                      (950, "C", PG_CATALOG_NAMESPACE, SUPERUSER_OID, "c", True, -1, "C", "C",
                       None, None),
                      (951, "POSIX", PG_CATALOG_NAMESPACE, SUPERUSER_OID, "c", True, -1,
                       "POSIX", "POSIX", None, None)])
_spec("pg_catalog", "pg_description", (2609, 10041, 10040), "r",
      "objoid:oid classoid:oid objsubid:int4 description:text", _empty)
_spec("pg_catalog", "pg_shdescription", (2396, 10062, 10061), "r",
      "objoid:oid classoid:oid description:text", _empty)
_spec("pg_catalog", "pg_inherits", (2611, 10005, 10004), "r",
      "inhrelid:oid inhparent:oid inhseqno:int4 inhdetachpending:bool", _empty)
_spec("pg_catalog", "pg_partitioned_table", (3350, 10099, 10098), "r",
      "partrelid:oid partstrat:char partnatts:int2 partdefid:oid partattrs:int2vector "
      "partclass:oidvector partcollation:oidvector partexprs:pg_node_tree", _empty)
_spec("pg_catalog", "pg_policy", (3256, 10084, 10083), "r",
      "oid:oid polname:name polrelid:oid polcmd:char polpermissive:bool polroles:_oid "
      "polqual:pg_node_tree polwithcheck:pg_node_tree", _empty)
_spec("pg_catalog", "pg_statistic_ext", (3381, 10031, 10030), "r",
      "oid:oid stxrelid:oid stxname:name stxnamespace:oid stxowner:oid stxstattarget:int4 "
      "stxkeys:int2vector stxkind:_char stxexprs:pg_node_tree", _empty)
_spec("pg_catalog", "pg_publication", (6104, 10107, 10106), "r",
      "oid:oid pubname:name pubowner:oid puballtables:bool pubinsert:bool pubupdate:bool "
      "pubdelete:bool pubtruncate:bool pubviaroot:bool", _empty)
_spec("pg_catalog", "pg_publication_rel", (6106, 10111, 10110), "r",
      "oid:oid prpubid:oid prrelid:oid prqual:pg_node_tree prattrs:int2vector", _empty)
_spec("pg_catalog", "pg_publication_namespace", (6237, 10109, 10108), "r",
      "oid:oid pnpubid:oid pnnspid:oid", _empty)
_spec("pg_catalog", "pg_trigger", (2620, 10037, 10036), "r",
      "oid:oid tgrelid:oid tgparentid:oid tgname:name tgfoid:oid tgtype:int2 tgenabled:char "
      "tgisinternal:bool tgconstrrelid:oid tgconstrindid:oid tgconstraint:oid "
      "tgdeferrable:bool tginitdeferred:bool tgnargs:int2 tgattr:int2vector tgargs:bytea "
      "tgqual:pg_node_tree tgoldtable:name tgnewtable:name", _empty)
_spec("pg_catalog", "pg_rewrite", (2618, 10035, 10034), "r",
      "oid:oid rulename:name ev_class:oid ev_type:char ev_enabled:char is_instead:bool "
      "ev_qual:pg_node_tree ev_action:pg_node_tree", _empty)
_spec("pg_catalog", "pg_depend", (2608, 10051, 10050), "r",
      "classid:oid objid:oid objsubid:int4 refclassid:oid refobjid:oid refobjsubid:int4 "
      "deptype:char", _pg_depend, keys=("objid", "refobjid"))
_spec("pg_catalog", "pg_sequence", (2224, 10105, 10104), "r",
      "seqrelid:oid seqtypid:oid seqstart:int8 seqincrement:int8 seqmax:int8 seqmin:int8 "
      "seqcache:int8 seqcycle:bool", _pg_sequence, keys=("seqrelid",))
_spec("pg_catalog", "pg_sequences", (12048, 12050, 12049), "v",
      "schemaname:name sequencename:name sequenceowner:name data_type:regtype "
      "start_value:int8 min_value:int8 max_value:int8 increment_by:int8 cycle:bool "
      "cache_size:int8 last_value:int8", _pg_sequences, live=True)
_spec("pg_catalog", "pg_settings", (12104, 12106, 12105), "v",
      "name:text setting:text unit:text category:text short_desc:text extra_desc:text "
      "context:text vartype:text source:text min_val:text max_val:text enumvals:_text "
      "boot_val:text reset_val:text sourcefile:text sourceline:int4 pending_restart:bool",
      _pg_settings, live=True)
_spec("pg_catalog", "pg_proc", (1255, 81, 272), "r",
      "oid:oid proname:name pronamespace:oid proowner:oid prolang:oid procost:float4 "
      "prorows:float4 provariadic:oid prosupport:regproc prokind:char prosecdef:bool "
      "proleakproof:bool proisstrict:bool proretset:bool provolatile:char proparallel:char "
      "pronargs:int2 pronargdefaults:int2 prorettype:oid proargtypes:oidvector "
      "proallargtypes:_oid proargmodes:_char proargnames:_text proargdefaults:pg_node_tree "
      "protrftypes:_oid prosrc:text probin:text prosqlbody:pg_node_tree proconfig:_text "
      "proacl:_aclitem", _empty)
_spec("pg_catalog", "pg_extension", (3079, 10074, 10073), "r",
      "oid:oid extname:name extowner:oid extnamespace:oid extrelocatable:bool "
      "extversion:text extconfig:_oid extcondition:_text", _empty)
_spec("pg_catalog", "pg_opclass", (2616, 10013, 10012), "r",
      "oid:oid opcmethod:oid opcname:name opcnamespace:oid opcowner:oid opcfamily:oid "
      "opcintype:oid opcdefault:bool opckeytype:oid", _empty)
_spec("pg_catalog", "pg_views", (12028, 12030, 12029), "v",
      "schemaname:name viewname:name viewowner:name definition:text", _pg_views)
_spec("pg_catalog", "pg_tables", (12033, 12035, 12034), "v",
      "schemaname:name tablename:name tableowner:name tablespace:name hasindexes:bool "
      "hasrules:bool hastriggers:bool rowsecurity:bool", _pg_tables)
_spec("pg_catalog", "pg_indexes", (12043, 12045, 12044), "v",
      "schemaname:name tablename:name indexname:name tablespace:name indexdef:text",
      _pg_indexes)
_spec("pg_catalog", "pg_matviews", (12038, 12040, 12039), "v",
      "schemaname:name matviewname:name matviewowner:name tablespace:name hasindexes:bool "
      "ispopulated:bool definition:text", _empty)
_spec("pg_catalog", "pg_partition_ancestors", (0, 0, 0), "f", "relid:regclass", _empty,
      hidden=("relation",))

CATALOG_TABLE_FUNCTIONS = {"pg_partition_ancestors":
                           _BY_PG_NAME[("pg_catalog", "pg_partition_ancestors")].sqlite_name}
"""Set-returning catalog functions, by PostgreSQL name, as the SQLite table-valued function
that stands for them (``FROM <name>(argument)``; PostgreSQL's ``relid`` column)."""


# --- information_schema ----------------------------------------------------------------------

_CHARACTER_TYPES = {1043, 1042, 25}  # varchar, bpchar, text
_DATETIME_TYPES = {1082: 0, 1083: 6, 1266: 6, 1114: 6, 1184: 6, 1186: 6}


def _yes(flag: bool) -> str:
    return "YES" if flag else "NO"


def _column_type_facts(oid: int, typmod: int) -> tuple[Any, ...]:
    """data_type, character_maximum_length, character_octet_length, numeric_precision,
    numeric_precision_radix, numeric_scale, datetime_precision (information_schema's
    _pg_* functions of PostgreSQL 15)."""
    pg = pgtypes.BY_OID.get(oid)
    if pg is None:
        return ("USER-DEFINED", None, None, None, None, None, None)
    data_type = "ARRAY" if pg.is_array else pgtypes.format_type(oid, None)
    max_length = octets = precision = radix = scale = datetime = None
    if oid in _CHARACTER_TYPES:
        max_length = typmod - 4 if typmod >= 4 and oid != 25 else None
        octets = max_length * 4 if max_length is not None else 1073741824
    elif oid in (21, 23, 20):
        precision, radix, scale = {21: 16, 23: 32, 20: 64}[oid], 2, 0
    elif oid in (700, 701):
        precision, radix = {700: 24, 701: 53}[oid], 2
    elif oid == fn.NUMERIC_OID:
        radix = 10
        if typmod >= 4:
            precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    elif oid in _DATETIME_TYPES:
        datetime = (typmod & 0xFFFF if oid == 1186 else typmod) if typmod >= 0 and oid != 1082 \
            else _DATETIME_TYPES[oid]
    return (data_type, max_length, octets, precision, radix, scale, datetime)


def _udt(snap: Snapshot, oid: int) -> tuple[str, str]:
    pg = pgtypes.BY_OID.get(oid)
    if pg is not None:
        return "pg_catalog", pg.name
    relation = snap.types.get(oid) or _static().types.get(oid)
    if relation is None:
        return "pg_catalog", "???"
    name = relation.name if oid == relation.row_type else "_" + relation.name
    return Catalog.namespace_name(relation.namespace) or "public", name


def _info_relations(snap: Snapshot) -> Iterable[tuple[str, Relation]]:
    for r in _all_relations(snap):
        if r.kind in ("r", "v"):
            yield Catalog.namespace_name(r.namespace) or "public", r


def _is_tables(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for schema, r in _info_relations(snap):
        table = r.kind == "r"
        yield (cat.database, schema, r.name, "BASE TABLE" if table else "VIEW", None, None,
               None, None, None, _yes(table), "NO", None)


def _is_columns(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    sequences = {(s.owner_oid, s.owner_attnum): s for s in snap.sequences.values()}
    for schema, r in _info_relations(snap):
        for a in r.attributes:
            facts = _column_type_facts(a.type_oid, a.typmod)
            udt_schema, udt_name = _udt(snap, a.type_oid)
            s = sequences.get((r.oid, a.num)) if a.identity else None
            identity = (("ALWAYS" if a.identity == "a" else "BY DEFAULT", str(s.start),
                         str(s.increment), str(s.maximum), str(s.minimum), _yes(s.cycle))
                        if s is not None else (None, None, None, None, None, "NO"))
            generated = a.generated == "s"
            yield (cat.database, schema, r.name, a.name, a.num,
                   None if generated else a.default, _yes(not a.not_null), facts[0],
                   *facts[1:7], None, None, None, None, None, None, None, None, None, None, None,
                   cat.database, udt_schema, udt_name, None, None, None, None,
                   str(a.num), "NO", _yes(bool(a.identity)), *identity,
                   "ALWAYS" if generated else "NEVER", a.default if generated else None,
                   _yes(r.kind == "r"))


def _is_schemata(cat: Catalog, _snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for name in sorted(NAMESPACES):
        owner = "pg_database_owner" if name == "public" else cat.user
        yield (cat.database, name, owner, None, None, None, None)


def _constraint_type(kind: str) -> str:
    return {"p": "PRIMARY KEY", "u": "UNIQUE", "f": "FOREIGN KEY", "c": "CHECK"}[kind]


def _not_null_checks(snap: Snapshot) -> Iterable[tuple[Relation, Attribute, str]]:
    for r in snap.relations.values():
        if r.kind == "r":
            for a in r.attributes:
                if a.not_null:
                    yield r, a, f"{PUBLIC_NAMESPACE}_{r.oid}_{a.num}_not_null"


def _is_table_constraints(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    db = cat.database
    for c in snap.constraints.values():
        table = snap.relations[c.table_oid]
        yield (db, "public", c.name, db, "public", table.name, _constraint_type(c.kind),
               _yes(c.deferrable), _yes(c.deferred), "YES", "YES" if c.kind == "u" else None)
    for r, _a, name in _not_null_checks(snap):
        yield (db, "public", name, db, "public", r.name, "CHECK", "NO", "NO", "YES", None)


def _is_check_constraints(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for c in snap.constraints.values():
        if c.kind == "c" and c.expression is not None:
            clause = fn.render_expression(c.expression, pretty=False)
            yield (cat.database, "public", c.name,
                   clause if clause.startswith("(") else f"({clause})")
    for _r, a, name in _not_null_checks(snap):
        yield (cat.database, "public", name, f"{quote_ident(a.name)} IS NOT NULL")


def _is_key_column_usage(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    db = cat.database
    for c in snap.constraints.values():
        if c.kind == "c":
            continue
        table = snap.relations[c.table_oid]
        referenced = snap.indexes.get(c.index_oid) if c.kind == "f" else None
        for position, column in enumerate(c.columns, 1):
            unique_position = None
            if referenced is not None and position <= len(c.ref_keys):
                key = c.ref_keys[position - 1]
                unique_position = (referenced.keys.index(key) + 1
                                   if key in referenced.keys else None)
            yield (db, "public", c.name, db, "public", table.name, column, position,
                   unique_position)


def _is_referential_constraints(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for c in snap.constraints.values():
        if c.kind != "f":
            continue
        index = snap.indexes.get(c.index_oid)
        unique = snap.constraints.get(index.constraint_oid) if index is not None else None
        yield (cat.database, "public", c.name, cat.database if unique else None,
               "public" if unique else None, unique.name if unique else None,
               "FULL" if c.match == "f" else "NONE", fn.FK_ACTIONS[c.on_update],
               fn.FK_ACTIONS[c.on_delete])


def _is_constraint_column_usage(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    db = cat.database
    for c in snap.constraints.values():
        if c.kind == "f":
            table_name, columns = c.ref_table_name, c.ref_columns
        else:
            table = snap.relations[c.table_oid]
            table_name = table.name
            columns = [table.attributes[k - 1].name for k in c.keys if k]
        for column in columns:
            yield (db, "public", table_name, column, db, "public", c.name)


def _is_views(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for r in snap.relations.values():
        if r.kind == "v":
            definition = " " + fn.render_select(r.view_sql) + ";" if r.view_sql else None
            yield (cat.database, "public", r.name, definition, "NONE", "NO", "NO", "NO", "NO",
                   "NO")


def _is_sequences(cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for s in snap.sequences.values():
        precision = {21: 16, 23: 32, 20: 64}.get(s.type_oid, 64)
        yield (cat.database, "public", s.name, pgtypes.format_type(s.type_oid, None),
               precision, 2, 0, str(s.start), str(s.minimum), str(s.maximum), str(s.increment),
               _yes(s.cycle))


_ID, _CARD, _DATA, _YN = "name", "int4", "varchar", "varchar"  # the domains' base types
_spec("information_schema", "tables", (13425, 13427, 13426), "v",
      f"table_catalog:{_ID} table_schema:{_ID} table_name:{_ID} table_type:{_DATA} "
      f"self_referencing_column_name:{_ID} reference_generation:{_DATA} "
      f"user_defined_type_catalog:{_ID} user_defined_type_schema:{_ID} "
      f"user_defined_type_name:{_ID} is_insertable_into:{_YN} is_typed:{_YN} "
      f"commit_action:{_DATA}", _is_tables, keys=("table_name", "table_schema"))
_spec("information_schema", "columns", (13295, 13297, 13296), "v",
      f"table_catalog:{_ID} table_schema:{_ID} table_name:{_ID} column_name:{_ID} "
      f"ordinal_position:{_CARD} column_default:{_DATA} is_nullable:{_YN} data_type:{_DATA} "
      f"character_maximum_length:{_CARD} character_octet_length:{_CARD} "
      f"numeric_precision:{_CARD} numeric_precision_radix:{_CARD} numeric_scale:{_CARD} "
      f"datetime_precision:{_CARD} interval_type:{_DATA} interval_precision:{_CARD} "
      f"character_set_catalog:{_ID} character_set_schema:{_ID} character_set_name:{_ID} "
      f"collation_catalog:{_ID} collation_schema:{_ID} collation_name:{_ID} "
      f"domain_catalog:{_ID} domain_schema:{_ID} domain_name:{_ID} udt_catalog:{_ID} "
      f"udt_schema:{_ID} udt_name:{_ID} scope_catalog:{_ID} scope_schema:{_ID} "
      f"scope_name:{_ID} maximum_cardinality:{_CARD} dtd_identifier:{_ID} "
      f"is_self_referencing:{_YN} is_identity:{_YN} identity_generation:{_DATA} "
      f"identity_start:{_DATA} identity_increment:{_DATA} identity_maximum:{_DATA} "
      f"identity_minimum:{_DATA} identity_cycle:{_YN} is_generated:{_DATA} "
      f"generation_expression:{_DATA} is_updatable:{_YN}", _is_columns,
      keys=("table_name", "table_schema"))
_spec("information_schema", "schemata", (13382, 13384, 13383), "v",
      f"catalog_name:{_ID} schema_name:{_ID} schema_owner:{_ID} "
      f"default_character_set_catalog:{_ID} default_character_set_schema:{_ID} "
      f"default_character_set_name:{_ID} sql_path:{_DATA}", _is_schemata)
_spec("information_schema", "table_constraints", (13411, 13413, 13412), "v",
      f"constraint_catalog:{_ID} constraint_schema:{_ID} constraint_name:{_ID} "
      f"table_catalog:{_ID} table_schema:{_ID} table_name:{_ID} constraint_type:{_DATA} "
      f"is_deferrable:{_YN} initially_deferred:{_YN} enforced:{_YN} nulls_distinct:{_YN}",
      _is_table_constraints, keys=("table_name", "constraint_name"))
_spec("information_schema", "check_constraints", (13260, 13262, 13261), "v",
      f"constraint_catalog:{_ID} constraint_schema:{_ID} constraint_name:{_ID} "
      f"check_clause:{_DATA}", _is_check_constraints, keys=("constraint_name",))
_spec("information_schema", "key_column_usage", (13329, 13331, 13330), "v",
      f"constraint_catalog:{_ID} constraint_schema:{_ID} constraint_name:{_ID} "
      f"table_catalog:{_ID} table_schema:{_ID} table_name:{_ID} column_name:{_ID} "
      f"ordinal_position:{_CARD} position_in_unique_constraint:{_CARD}",
      _is_key_column_usage, keys=("table_name", "constraint_name"))
_spec("information_schema", "referential_constraints", (13339, 13341, 13340), "v",
      f"constraint_catalog:{_ID} constraint_schema:{_ID} constraint_name:{_ID} "
      f"unique_constraint_catalog:{_ID} unique_constraint_schema:{_ID} "
      f"unique_constraint_name:{_ID} match_option:{_DATA} update_rule:{_DATA} "
      f"delete_rule:{_DATA}", _is_referential_constraints, keys=("constraint_name",))
_spec("information_schema", "constraint_column_usage", (13300, 13302, 13301), "v",
      f"table_catalog:{_ID} table_schema:{_ID} table_name:{_ID} column_name:{_ID} "
      f"constraint_catalog:{_ID} constraint_schema:{_ID} constraint_name:{_ID}",
      _is_constraint_column_usage, keys=("constraint_name", "table_name"))
_spec("information_schema", "views", (13483, 13485, 13484), "v",
      f"table_catalog:{_ID} table_schema:{_ID} table_name:{_ID} view_definition:{_DATA} "
      f"check_option:{_DATA} is_updatable:{_YN} is_insertable_into:{_YN} "
      f"is_trigger_updatable:{_YN} is_trigger_deletable:{_YN} "
      f"is_trigger_insertable_into:{_YN}", _is_views)
_spec("information_schema", "sequences", (13386, 13388, 13387), "v",
      f"sequence_catalog:{_ID} sequence_schema:{_ID} sequence_name:{_ID} data_type:{_DATA} "
      f"numeric_precision:{_CARD} numeric_precision_radix:{_CARD} numeric_scale:{_CARD} "
      f"start_value:{_DATA} minimum_value:{_DATA} maximum_value:{_DATA} increment:{_DATA} "
      f"cycle_option:{_YN}", _is_sequences, live=True)


# --- virtual tables --------------------------------------------------------------------------

ESTIMATED_ROWS_SCAN = 1000
"""What the planner is told a full scan of a catalog table returns (a catalog is small, but
scanning it from Python costs far more than a lookup: joins should look up)."""


def _key(value: Any) -> Any:
    """A value as a lookup key: SQLite compares ``'16413'`` equal to ``16413`` in a numeric
    column, so numbers and numeric text share a key (SQLite checks each row again: a key may
    only ever match more rows than SQLite's comparison, never fewer)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


class _Cursor:
    def __init__(self, table: _Table) -> None:
        self.table = table
        self.rows: list[tuple[Any, ...]] = []
        self.positions: list[int] | range = range(0)
        self.at = 0

    def Filter(self, index_number: int, _index_name: str | None,
               arguments: tuple[Any, ...]) -> None:
        snap, self.rows = self.table.catalog.rows(self.table.spec)
        self.at = 0
        if index_number < 0 or not arguments:
            self.positions = range(len(self.rows))
            return
        if arguments[0] is None:
            self.positions = []
            return
        self.positions = self.table.lookup(snap, self.rows, index_number).get(
            _key(arguments[0]), [])

    def Eof(self) -> bool:
        return self.at >= len(self.positions)

    def Rowid(self) -> int:
        return self.positions[self.at]

    def Column(self, number: int) -> Any:
        if number == -1:
            return self.positions[self.at]
        row = self.rows[self.positions[self.at]]
        return row[number] if number < len(row) else None

    def Next(self) -> None:
        self.at += 1

    def Close(self) -> None:
        self.rows = []


class _Table:
    def __init__(self, catalog: Catalog, spec: _Spec) -> None:
        self.catalog = catalog
        self.spec = spec
        names = [name for name, _ in spec.columns]
        self.ranks = {names.index(k): rank for rank, k in enumerate(spec.keys)}

    def lookup(self, snap: Snapshot, rows: list[tuple[Any, ...]],
               column: int) -> dict[Any, list[int]]:
        """Row positions by the key of ``column``'s value, built once per snapshot."""
        cache_key = (self.spec.sqlite_name, column)
        found = None if self.spec.live else snap.lookups.get(cache_key)
        if found is None:
            found = {}
            for position, row in enumerate(rows):
                found.setdefault(_key(row[column]), []).append(position)
            if not self.spec.live:
                snap.lookups[cache_key] = found
        return found

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        best: tuple[int, int, int] | None = None
        for i in range(info.nConstraint):
            column = info.get_aConstraint_iColumn(i)
            if (not info.get_aConstraint_usable(i) or column < 0
                    or column >= len(self.spec.columns)
                    or info.get_aConstraint_op(i) != apsw.SQLITE_INDEX_CONSTRAINT_EQ
                    or info.get_aConstraint_collation(i).upper() != "BINARY"):
                continue
            rank = self.ranks.get(column, len(self.ranks))
            if best is None or rank < best[0]:
                best = (rank, i, column)
        if best is None:
            info.idxNum = -1
            info.estimatedCost = float(ESTIMATED_ROWS_SCAN * 10)
            info.estimatedRows = ESTIMATED_ROWS_SCAN
            return True
        rank, constraint, column = best
        info.set_aConstraintUsage_argvIndex(constraint, 1)
        info.idxNum = column
        info.estimatedCost = 10.0 + rank
        info.estimatedRows = 1 if rank == 0 else 10
        return True

    def Open(self) -> _Cursor:
        return _Cursor(self)

    def Disconnect(self) -> None:
        pass

    Destroy = Disconnect


class _Module:
    def __init__(self, catalog: Catalog, spec: _Spec) -> None:
        self.catalog = catalog
        self.spec = spec

    def Connect(self, _connection: apsw.Connection, _module: str, _database: str,
                _table: str, *_args: str) -> tuple[str, _Table]:
        columns = [f'"{name}" {_decltype(typname)}' for name, typname in self.spec.columns]
        columns += [f'"{name}" HIDDEN' for name in self.spec.hidden]
        return f"CREATE TABLE x({', '.join(columns)})", _Table(self.catalog, self.spec)

    Create = Connect


# --- the API ---------------------------------------------------------------------------------


def catalog_table_name(schema: str | None, name: str) -> str | None:
    """The SQLite name a reference to PostgreSQL's ``schema.name`` is rewritten to, or None
    when it is not a catalog table. An unqualified name is a pg_catalog table's when there is
    one, whatever the user's tables are called: PostgreSQL searches pg_catalog before the
    search_path unless the path names it, so a user table ``pg_class`` is only reachable as
    ``public.pg_class`` there too (and here: ``catalog_table_name('public', 'pg_class')`` is
    None). information_schema is not on the search path: its tables need the schema."""
    spec = _BY_PG_NAME.get(("pg_catalog" if schema is None else schema, name))
    if spec is None or spec.kind == "f":
        return None
    return spec.sqlite_name


def install(conn: apsw.Connection, *, database: str, user: str, in_recovery: bool = False,
            backend_pid: int | None = None, settings: Mapping[str, str] | None = None) -> None:
    """Make the catalog available on ``conn`` (once per connection, right after it is
    opened, before any authorizer is set): registers the catalog tables (eponymous virtual
    tables: nothing is written, read-only connections work) and ``CATALOG_FUNCTIONS``.

    ``in_recovery`` is what ``pg_is_in_recovery()`` answers (true on a reader),
    ``backend_pid`` what ``pg_backend_pid()`` does (the BackendKeyData's; default this
    process), ``settings`` the session's settings that ``pg_settings`` shows, read on each
    scan (default a handful of PostgreSQL's defaults)."""
    catalog = Catalog(conn, database=database, user=user, settings=settings)
    for spec in _SPECS.values():
        conn.create_module(spec.sqlite_name, _Module(catalog, spec),  # type: ignore[arg-type]
                           use_bestindex_object=True, eponymous=True, eponymous_only=True,
                           read_only=True)
    fn.register(conn, catalog, database=database, user=user, in_recovery=in_recovery,
                backend_pid=backend_pid)
