"""The emulated ``pg_catalog`` and ``information_schema``: the live SQLite schema, as the
catalog tables that psql, psycopg, asyncpg, SQLAlchemy and pgbench read (DESIGN decision 8).

Mechanism (here) and rows (``catalog_tables``). Every catalog table is an APSW virtual table
module registered *eponymous-only* on the connection: it exists without a
``CREATE VIRTUAL TABLE``, so ``install`` writes
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
format_type, the reg* conversions, relhastriggers (true for both tables of a foreign key, as
PostgreSQL's RI triggers make it). Approximate: CHECK, index and view expressions (printed
by sqlglot, with PostgreSQL's implicit casts of constants compared with columns only),
sizes (SQLite's pages), reltuples (from ``sqlite_stat1`` when ANALYZE ran, else -1),
opclasses (0), privileges (always granted:
Borealis has one superuser), comments (none), pg_proc (empty), statistics (none). Not shown:
TEMP tables, attached databases, triggers, system columns (attnum < 0).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw

from borealis.protocol.postgres import catalog_functions as fn
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.catalog_functions import CatalogError, quote_ident
from borealis.protocol.postgres.statement import UNIQUE_CONSTRAINT_MARK

__all__ = ["CATALOG_FUNCTIONS", "CATALOG_TABLE_FUNCTIONS", "Catalog", "CatalogError",
           "catalog_column_types", "catalog_table_name", "install"]

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
    has_triggers: bool = False  # a foreign key's two tables (PostgreSQL's RI triggers)
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
            if unique and origin == "c" and sql and sql.rstrip().endswith(UNIQUE_CONSTRAINT_MARK):
                # ALTER TABLE ... ADD CONSTRAINT ... UNIQUE: a constraint, named as its index
                constraint = new_constraint("u", index_name, keys, index_oid=index.oid)
                index.constraint_oid = constraint.oid
                self.taken.add(index_name)
            elif origin in ("pk", "u"):
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
        # PostgreSQL enforces a foreign key with (internal) triggers on both tables, and
        # psql shows the "Foreign-key constraints" and "Referenced by" only when it sees them
        self.snap.relations[constraint.table_oid].has_triggers = True
        parent = self.tables.get(constraint.ref_table_name.lower())
        if parent is None:  # SQLite allows a reference to a table that does not exist
            constraint.ref_columns = [c or "?" for c in ref_columns]
            return
        constraint.ref_table_oid = parent.oid
        constraint.ref_table_name = parent.name
        parent.has_triggers = True
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
class TableSpec:
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


SPECS: dict[str, TableSpec] = {}  # by sqlite_name
SPECS_BY_PG_NAME: dict[tuple[str, str], TableSpec] = {}


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

    def rows(self, spec: TableSpec) -> tuple[Snapshot, list[tuple[Any, ...]]]:
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
        return self.snapshot().relations.get(oid) or _tables.static().relations.get(oid)

    def column_types(self, table_oid: int) -> tuple[tuple[str, int], ...]:
        """A relation's (column name, type oid) pairs; empty for an unknown one."""
        relation = self.relation(table_oid)
        if relation is None:
            return ()
        return tuple((a.name, a.type_oid) for a in relation.attributes)

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
        return int((PG_CATALOG_NAMESPACE, relation.name) not in _tables.static().by_name)

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
                relation = _tables.static().by_name.get((NAMESPACES.get(schema, -1), name))
            if relation is not None:
                return relation.oid
        return None

    def format_type(self, oid: int, typmod: int | None) -> str:
        if oid in pgtypes.BY_OID:
            return pgtypes.format_type(oid, typmod)
        relation = self.snapshot().types.get(oid) or _tables.static().types.get(oid)
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
        relation = self.snapshot().types.get(oid) or _tables.static().types.get(oid)
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
    def __init__(self, catalog: Catalog, spec: TableSpec) -> None:
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
    def __init__(self, catalog: Catalog, spec: TableSpec) -> None:
        self.catalog = catalog
        self.spec = spec

    def Connect(self, _connection: apsw.Connection, _module: str, _database: str,
                _table: str, *_args: str) -> tuple[str, _Table]:
        columns = [f'"{name}" {_tables.decltype(typname)}' for name, typname in self.spec.columns]
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
    spec = SPECS_BY_PG_NAME.get(("pg_catalog" if schema is None else schema, name))
    if spec is None or spec.kind == "f":
        return None
    return spec.sqlite_name


def catalog_column_types(sqlite_name: str) -> dict[str, str]:
    """A catalog table's columns and their PostgreSQL type names (``typname``), by the
    table's SQLite name; empty for any other table. The translator reads them to know which
    arrays are int2vector/oidvector (subscripts from 0) and how to type a literal."""
    spec = SPECS.get(sqlite_name)
    return dict(spec.columns) if spec is not None else {}


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
    for spec in SPECS.values():
        conn.create_module(spec.sqlite_name, _Module(catalog, spec),  # type: ignore[arg-type]
                           use_bestindex_object=True, eponymous=True, eponymous_only=True,
                           read_only=True)
    fn.register(conn, catalog, database=database, user=user, in_recovery=in_recovery,
                backend_pid=backend_pid)


# The tables register themselves in SPECS when their module is imported; it imports this one
# (its names are all defined by now), so the import has to come last.
from borealis.protocol.postgres import catalog_tables as _tables  # noqa: E402

CATALOG_TABLE_FUNCTIONS: dict[str, str] = _tables.CATALOG_TABLE_FUNCTIONS
"""Set-returning catalog functions, by PostgreSQL name, as the SQLite table-valued function
that stands for them (``FROM <name>(argument)``; PostgreSQL's ``relid`` column)."""
