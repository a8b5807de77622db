"""PostgreSQL DDL as SQLite DDL: tables, indexes, views, sequences, ALTER TABLE, DROP.

A column's PostgreSQL type is kept in its SQLite declared type (``types.sqlite_decltype``,
which the catalog and the server read back). Besides that:
- SERIAL and IDENTITY columns own a sequence (a ``_borealis_sequences`` row created in the
  statement's ``setup``) and default to ``_pg_nextval`` of it;
- numeric columns compare, sort, index and are unique as numbers: their values are exact
  decimal text, so they are declared with the numeric collation (``numeric``); character(n)
  columns compare without trailing spaces (SQLite's RTRIM collation), as PostgreSQL's bpchar;
- a literal default is stored in the column type's storage form, as PostgreSQL coerces it
  when the table is created ('yes' for a boolean is 1, a timestamptz is UTC text).
Statements SQLite has no form for (``ALTER TABLE ... ADD PRIMARY KEY``, sequences, the
sequences a dropped table owns) become a ``SequenceOp`` that the server carries out with
``schema``'s functions.
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp
from sqlglot.errors import ErrorLevel

from borealis.protocol.postgres import functions, outputs
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.numeric import NUMERIC_COLLATION, SqlFunctionError
from borealis.protocol.postgres.rewrite import Rewriter, literal_int
from borealis.protocol.postgres.statement import (
    UNIQUE_CONSTRAINT_MARK,
    Kind,
    SequenceOp,
    Statement,
    TranslationError,
    unsupported,
)

SEQUENCES_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS _borealis_sequences (name TEXT PRIMARY KEY, "
    "data_type TEXT NOT NULL DEFAULT 'int8', start_value INTEGER NOT NULL, "
    "min_value INTEGER NOT NULL, max_value INTEGER NOT NULL, increment_by INTEGER NOT NULL, "
    "cycle INTEGER NOT NULL DEFAULT 0, last_value INTEGER NOT NULL, "
    "is_called INTEGER NOT NULL DEFAULT 0, owner_table TEXT, owner_column TEXT, "
    "identity TEXT NOT NULL DEFAULT '')"
)

_SERIALS = {"serial": "int4", "serial4": "int4", "bigserial": "int8", "serial8": "int8",
            "smallserial": "int2", "serial2": "int2"}


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def generate(tree: exp.Expression) -> str:
    return tree.sql("sqlite", unsupported_level=ErrorLevel.RAISE)


def _sequence_row(name: str, pg: pgtypes.PgType, owner_table: str, owner_column: str,
                  identity: str) -> str:
    maximum = {"int2": 32767, "int4": 2147483647}.get(pg.name, 9223372036854775807)
    return ("INSERT INTO _borealis_sequences (name, data_type, start_value, min_value, "
            "max_value, increment_by, cycle, last_value, is_called, owner_table, "
            f"owner_column, identity) VALUES ({sql_literal(name)}, {sql_literal(pg.name)}, 1, "
            f"1, {maximum}, 1, 0, 1, 0, {sql_literal(owner_table)}, "
            f"{sql_literal(owner_column)}, {sql_literal(identity)})")


def _storage_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, int | float):
        return repr(value)
    return sql_literal(str(value))


_PATTERN_OPCLASSES = frozenset({"text_pattern_ops", "varchar_pattern_ops", "bpchar_pattern_ops"})


def _btree_key(key: exp.Opclass) -> exp.Expression:
    """An index key with a B-tree operator class: the key itself. The pattern classes
    (Django makes them for LIKE 'x%') order text byte by byte, as Borealis' text compares,
    and a type's default class (int4_ops...) is what the index uses anyway."""
    name = key.expression.name.lower() if key.expression is not None else ""
    if name in _PATTERN_OPCLASSES or (name.endswith("_ops") and name[:-4] in pgtypes.BY_NAME):
        return key.this
    raise unsupported(f"the operator class {name}")


def _column_name(node: exp.Expression) -> str:
    identifier = node.this if isinstance(node, exp.Column) else node
    if isinstance(identifier, exp.Identifier):
        return identifier.name if identifier.quoted else identifier.name.lower()
    return node.name.lower()


DefaultSpec = tuple[str, ...]
"""A column default before its column's type is known: ``("literal", text, "s"|"n")``,
``("bool", "1"|"0", sql)`` or ``("sql", sql)`` (SQLite's text of the expression)."""


def default_sql(spec: DefaultSpec, pg: pgtypes.PgType, typmod: int) -> str:
    """SQLite's text of a default for a column of type ``pg``: a literal in the type's
    storage form, as PostgreSQL coerces it when the default is set."""
    if spec[0] == "literal":
        text, kind = spec[1], spec[2]
        if kind == "n" and pg.name in ("int2", "int4", "int8", "float4", "float8") and \
                re.fullmatch(r"-?[0-9]+", text):
            return text  # an integer default stays a number (the catalog prints it so)
        try:
            stored = functions.coerce_value(text, pg, typmod, kind)
        except SqlFunctionError as exc:
            raise TranslationError(str(exc), exc.sqlstate) from None
        return _storage_literal(stored)
    if spec[0] == "bool":
        return spec[1] if pg.name == "bool" else spec[2]
    return spec[1]


class Ddl:
    """The DDL statements of one translation (they share its ``Rewriter``)."""

    def __init__(self, rewriter: Rewriter) -> None:
        self.rw = rewriter

    def create_table(self, tree: exp.Create) -> Statement:
        schema = tree.this
        if not isinstance(schema, exp.Schema):
            if tree.expression is not None:  # CREATE TABLE ... AS SELECT
                body = self.rw.rewrite(tree.expression)
                table = self.rw.rewrite(tree.this)
                exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
                sql = f"CREATE TABLE{exists} {table.sql('sqlite')} AS {generate(body)}"
                return Statement(Kind.DDL, "SELECT", (sql,), read_only=False)
            raise unsupported("this form of CREATE TABLE")
        table = schema.this
        assert isinstance(table, exp.Table)
        table_name = self.rw.table_name(table)
        if table.db and table.db.lower() != "public":
            raise TranslationError(f'schema "{table.db}" does not exist', "3F000")
        temporary = False
        for prop in (tree.args.get("properties") or exp.Properties()).expressions:
            if isinstance(prop, exp.TemporaryProperty):
                temporary = True
            elif isinstance(prop, exp.WithDataProperty | exp.OnCommitProperty):
                raise unsupported(prop.sql("postgres"))
            # storage parameters (WITH (fillfactor=...)), tablespaces: no effect here
        columns: list[str] = []
        setup: list[str] = []
        for item in schema.expressions:
            if isinstance(item, exp.ColumnDef):
                columns.append(self.column(table_name, item, setup))
            else:
                columns.append(self.constraint(item))
        exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
        temp = "TEMP " if temporary else ""
        sql = f"CREATE {temp}TABLE{exists} {quote_identifier(table_name)} ({', '.join(columns)})"
        if setup:
            setup.insert(0, SEQUENCES_TABLE_DDL)
        return Statement(Kind.DDL, "CREATE TABLE", (sql,), read_only=False,
                         setup=tuple(setup))

    def column(self, table: str, item: exp.ColumnDef, setup: list[str]) -> str:
        if not isinstance(item.this, exp.Identifier):
            raise TranslationError(f"syntax error at {item.this.sql('postgres')[:40]}",
                                   "42601")
        name = _column_name(item.this)
        kind = item.args.get("kind")
        if kind is None:
            raise TranslationError(f'column "{name}" has no type', "42601")
        serial = _SERIALS.get(kind.sql("postgres").lower())
        pg, typmod = pgtypes.lookup(serial) if serial else outputs.type_of(kind)
        decltype = pgtypes.sqlite_decltype(pg, typmod)
        identity = ""
        constraints = []
        for constraint in item.args.get("constraints") or []:
            c = constraint.args.get("kind")
            if isinstance(c, exp.GeneratedAsIdentityColumnConstraint):
                identity = "a" if c.args.get("this") else "d"
                continue
            constraints.append(self.column_constraint(constraint, pg, typmod))
        if (serial or identity) and decltype == "INTEGER":
            # Not SQLite's rowid alias: SQLite ignores a rowid's DEFAULT and reuses the
            # highest value after a delete, where a sequence never goes back.
            decltype = "INT"
        parts = [quote_identifier(name), decltype]
        if pg.name == "numeric":
            parts.append(f"COLLATE {NUMERIC_COLLATION}")
        elif pg.name == "bpchar":  # character(n) compares without its trailing spaces
            parts.append("COLLATE RTRIM")
        parts.extend(constraints)
        if serial or identity:
            sequence = f"{table}_{name}_seq"
            setup.append(_sequence_row(sequence, pg, table, name, identity))
            parts.append(f"NOT NULL DEFAULT (_pg_nextval({sql_literal(sequence)}))")
        return " ".join(parts)

    def _default(self, value: exp.Expression, pg: pgtypes.PgType, typmod: int) -> str:
        """A column default: a literal in the column type's storage form, an expression as
        the rewrite gives it."""
        return default_sql(self.default_spec(value), pg, typmod)

    def default_spec(self, value: exp.Expression) -> DefaultSpec:
        """What ``default_sql`` needs of a default, before the column's type is known
        (``ALTER COLUMN ... SET DEFAULT`` learns it when it runs)."""
        negative = isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal)
        literal = value.this if negative else value
        if isinstance(literal, exp.Literal) and not (literal.is_string and negative):
            text = ("-" if negative else "") + str(literal.this)
            return ("literal", text, "s" if literal.is_string else "n")
        rewritten = generate(self.rw.rewrite(value.copy()))
        if isinstance(value, exp.Boolean):
            return ("bool", "1" if value.this else "0", rewritten)
        return ("sql", rewritten)

    def column_constraint(self, constraint: exp.ColumnConstraint, pg: pgtypes.PgType,
                          typmod: int) -> str:
        name = constraint.args.get("this")
        prefix = f"CONSTRAINT {quote_identifier(name.name)} " if name is not None else ""
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.NotNullColumnConstraint):
            return prefix + ("NULL" if kind.args.get("allow_null") else "NOT NULL")
        if isinstance(kind, exp.PrimaryKeyColumnConstraint):
            return prefix + "PRIMARY KEY"
        if isinstance(kind, exp.UniqueColumnConstraint):
            return prefix + "UNIQUE"
        if isinstance(kind, exp.DefaultColumnConstraint):
            return prefix + f"DEFAULT ({self._default(kind.this, pg, typmod)})"
        if isinstance(kind, exp.CheckColumnConstraint):
            return prefix + f"CHECK ({generate(self.rw.rewrite(kind.this))})"
        if isinstance(kind, exp.Reference):
            return prefix + self.reference(kind)
        raise unsupported(f"the column constraint {constraint.sql('postgres')}")

    def reference(self, ref: exp.Reference) -> str:
        target = ref.this
        if isinstance(target, exp.Schema):
            table = self.rw.table_name(target.this)
            cols = ", ".join(quote_identifier(c.name.lower()) for c in target.expressions)
            text = f"REFERENCES {quote_identifier(table)} ({cols})"
        else:
            text = f"REFERENCES {quote_identifier(self.rw.table_name(target))}"
        for option in ref.args.get("options") or []:
            option_text = " ".join(str(option).upper().split())
            # SQLite defers a foreign key's check to the commit as PostgreSQL does
            if not re.fullmatch(r"ON (DELETE|UPDATE) (CASCADE|RESTRICT|NO ACTION|SET NULL|"
                                r"SET DEFAULT)|(NOT )?DEFERRABLE|INITIALLY (DEFERRED|"
                                r"IMMEDIATE)|MATCH SIMPLE", option_text):
                raise unsupported(f"the foreign key option {option_text}")
            text += " " + option_text
        return text

    def constraint(self, item: exp.Expression) -> str:
        prefix = ""
        if isinstance(item, exp.Constraint):
            prefix = f"CONSTRAINT {quote_identifier(item.name)} "
            inner = item.expressions[0] if item.expressions else None
            if inner is None or len(item.expressions) != 1:
                raise unsupported(f"the constraint {item.sql('postgres')}")
            item = inner
        if isinstance(item, exp.PrimaryKey):
            cols = ", ".join(quote_identifier(c.name.lower()) for c in item.expressions)
            return prefix + f"PRIMARY KEY ({cols})"
        if isinstance(item, exp.UniqueColumnConstraint):
            target = item.this
            cols_src = target.expressions if isinstance(target, exp.Schema) else item.expressions
            cols = ", ".join(quote_identifier(c.name.lower()) for c in cols_src)
            return prefix + f"UNIQUE ({cols})"
        if isinstance(item, exp.ForeignKey):
            cols = ", ".join(quote_identifier(c.name.lower()) for c in item.expressions)
            ref = item.args.get("reference")
            if not isinstance(ref, exp.Reference):
                raise unsupported("a FOREIGN KEY without REFERENCES")
            text = f"FOREIGN KEY ({cols}) {self.reference(ref)}"
            for key in ("delete", "update"):
                action = item.args.get(key)
                if action:
                    text += f" ON {key.upper()} {str(action).upper()}"
            return prefix + text
        if isinstance(item, exp.CheckColumnConstraint | exp.Check):
            return prefix + f"CHECK ({generate(self.rw.rewrite(item.this))})"
        raise unsupported(f"the table constraint {item.sql('postgres')}")

    def create_index(self, tree: exp.Create) -> Statement:
        index = tree.this
        assert isinstance(index, exp.Index)
        name = index.name.lower() if index.name else ""
        table = self.rw.table_name(index.args.get("table"))
        params = index.args.get("params")
        using = params.args.get("using") if params is not None else None
        if using is not None and str(using.name if hasattr(using, "name") else using
                                     ).lower() != "btree":
            raise unsupported(f"index method {using}")
        if params is None or not params.args.get("columns"):
            raise unsupported("an index without columns")
        if params.args.get("include"):
            raise unsupported("INCLUDE columns")
        columns = []
        for column in params.args["columns"]:
            expr = column.this if isinstance(column, exp.Ordered) else column
            if isinstance(expr, exp.Opclass):
                expr = _btree_key(expr)
            text = generate(self.rw.rewrite(expr))
            if isinstance(column, exp.Ordered) and column.args.get("desc"):
                text += " DESC"
            columns.append(text)
        if not name:
            stems = [c.strip('"').split()[0] for c in columns]
            name = f"{table}_{'_'.join(stems)}_idx"
        unique = "UNIQUE " if tree.args.get("unique") else ""
        exists = "IF NOT EXISTS " if tree.args.get("exists") else ""
        sql = (f"CREATE {unique}INDEX {exists}{quote_identifier(name)} ON "
               f"{quote_identifier(table)} ({', '.join(columns)})")
        where = params.args.get("where")
        if where is not None:
            sql += " " + generate(self.rw.rewrite(where))
        return Statement(Kind.DDL, "CREATE INDEX", (sql,), read_only=False)

    def create_view(self, tree: exp.Create) -> Statement:
        body = self.rw.rewrite(tree.expression)
        name = self.rw.table_name(tree.this)
        exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
        sql = f"CREATE VIEW{exists} {quote_identifier(name)} AS {generate(body)}"
        if tree.args.get("replace"):
            return Statement(Kind.DDL, "CREATE VIEW", (), read_only=False,
                             action=SequenceOp("replace_view", name, (sql,)))
        return Statement(Kind.DDL, "CREATE VIEW", (sql,), read_only=False)

    def drop(self, tree: exp.Drop) -> Statement:
        kind = str(tree.args.get("kind") or "").upper()
        cascade = bool(tree.args.get("cascade"))
        if cascade and kind not in ("TABLE", "VIEW"):
            raise unsupported(f"DROP {kind} ... CASCADE")
        exists = " IF EXISTS" if tree.args.get("exists") else ""
        targets = list(tree.args.get("tables") or []) or [tree.this, *(tree.expressions or [])]
        names = [self.rw.table_name(t) if isinstance(t, exp.Table) else t.name.lower()
                 for t in targets if t is not None]
        if kind in ("TABLE", "VIEW", "INDEX"):
            sql = tuple(f"DROP {kind}{exists} {quote_identifier(n)}" for n in names)
            cleanup = tuple(
                "DELETE FROM _borealis_sequences WHERE owner_table = " + sql_literal(n)
                for n in names) if kind == "TABLE" else ()
            if cascade:
                # Exact when nothing else depends on them (checked as it runs); PostgreSQL
                # would drop the dependent views and foreign keys, which is refused.
                return Statement(Kind.DDL, f"DROP {kind}", sql, read_only=False,
                                 action=SequenceOp("drop_cascade", name=kind,
                                                   args=(tuple(names), cleanup)))
            if kind == "TABLE":
                return Statement(Kind.DDL, f"DROP {kind}", sql, read_only=False,
                                 action=SequenceOp("drop_owned", args=cleanup))
            return Statement(Kind.DDL, f"DROP {kind}", sql, read_only=False)
        if kind == "SEQUENCE":
            return Statement(Kind.DDL, "DROP SEQUENCE", (), read_only=False,
                             action=SequenceOp("drop_sequence", args=(tuple(names),
                                                                      bool(exists))))
        if kind == "SCHEMA":
            raise unsupported("DROP SCHEMA")
        raise unsupported(f"DROP {kind}")

    def alter(self, tree: exp.Alter) -> Statement:
        table = self.rw.table_name(tree.this)
        kind = str(tree.args.get("kind") or "TABLE").upper()
        actions = tree.args.get("actions") or []
        if kind in ("INDEX", "VIEW"):   # only RENAME TO: SQLite makes them anew
            if len(actions) != 1 or not isinstance(actions[0], exp.AlterRename) or \
                    tree.args.get("options"):
                raise unsupported(f"ALTER {kind} other than RENAME TO")
            new = self.rw.table_name(actions[0].this)
            return Statement(Kind.DDL, f"ALTER {kind}", (), read_only=False, action=SequenceOp(
                "rename_object", table, (kind.lower(), new, bool(tree.args.get("exists")))))
        if kind != "TABLE":
            raise unsupported(f"ALTER {kind}")
        if not actions:
            raise TranslationError("syntax error in ALTER TABLE", "42601")
        options = tree.args.get("options") or []
        if options:
            # ALTER TABLE t RENAME c TO d (COLUMN is optional): sqlglot reads a table rename
            # to c with a "TO d" option; anything else there is not understood
            to = options[0]
            if len(options) == 1 and len(actions) == 1 and isinstance(to, exp.ToTableProperty) \
                    and isinstance(actions[0], exp.AlterRename):
                old, new = _column_name(actions[0].this.this), _column_name(to.this.this)
                changes: list[tuple[Any, ...]] = [("sql", (
                    f"ALTER TABLE {quote_identifier(table)} RENAME COLUMN "
                    f"{quote_identifier(old)} TO {quote_identifier(new)}",))]
            else:
                raise unsupported(f"ALTER TABLE {tree.sql('postgres')[:60]}")
        else:
            changes = [self._alter_change(table, action) for action in actions]
        change = changes[0] if len(changes) == 1 else ("several", tuple(changes))
        if_exists = bool(tree.args.get("exists"))
        if change[0] == "sql" and not if_exists:
            return Statement(Kind.DDL, "ALTER TABLE", change[1], read_only=False)
        return Statement(Kind.DDL, "ALTER TABLE", (), read_only=False,
                         action=SequenceOp("alter", table, (if_exists, change)))

    def _alter_change(self, table: str, action: exp.Expression) -> tuple[Any, ...]:
        """One ALTER TABLE action: SQLite statements (``("sql", statements)``), or a change
        for ``alter.run`` to make once the table is known."""
        if isinstance(action, exp.ColumnDef):  # ADD COLUMN
            setup: list[str] = []
            column = self.column(table, action, setup)
            if setup:
                raise unsupported("ADD COLUMN of a SERIAL or IDENTITY column")
            sql = f"ALTER TABLE {quote_identifier(table)} ADD COLUMN {column}"
            if action.args.get("exists"):
                return ("add_column", _column_name(action.this), sql, True)
            return ("sql", (sql,))
        if isinstance(action, exp.AlterRename):
            new = self.rw.table_name(action.this)
            return ("sql", (f"ALTER TABLE {quote_identifier(table)} RENAME TO "
                            f"{quote_identifier(new)}",))
        if isinstance(action, exp.RenameColumn):
            old, new = _column_name(action.this), _column_name(action.args["to"])
            return ("sql", (f"ALTER TABLE {quote_identifier(table)} RENAME COLUMN "
                            f"{quote_identifier(old)} TO {quote_identifier(new)}",))
        if isinstance(action, exp.AlterColumn):
            return self._alter_column(action)
        if isinstance(action, exp.Drop):
            dropped_kind = str(action.args.get("kind", "")).upper()
            dropped = (action.args.get("tables") or [action.this])[0]
            cascade = bool(action.args.get("cascade"))
            if dropped_kind == "COLUMN":
                if not isinstance(dropped, exp.Column | exp.Identifier):
                    raise TranslationError("syntax error in DROP COLUMN", "42601")
                return ("drop_column", _column_name(dropped), bool(action.args.get("exists")),
                        cascade)
            if cascade:
                raise unsupported(f"DROP {dropped_kind} ... CASCADE")
            if dropped_kind == "CONSTRAINT":
                return ("drop_constraint", _column_name(dropped),
                        bool(action.args.get("exists")))
            raise unsupported(f"ALTER TABLE DROP {dropped_kind}")
        add = action
        if isinstance(add, exp.AddConstraint):
            if len(add.expressions) != 1:
                raise unsupported("ADD CONSTRAINT with several constraints")
            add = add.expressions[0]
        if isinstance(add, exp.Constraint):
            constraint_name = add.name
            inner = add.expressions[0] if add.expressions else None
        else:
            constraint_name, inner = "", add
        if isinstance(inner, exp.PrimaryKey):
            cols = tuple(c.name.lower() for c in inner.expressions)
            return ("primary_key", cols, constraint_name)
        if isinstance(inner, exp.UniqueColumnConstraint):
            target = inner.this
            cols_src = target.expressions if isinstance(target, exp.Schema) else inner.expressions
            unique_cols = [c.name.lower() for c in cols_src]
            index = constraint_name or f"{table}_{'_'.join(unique_cols)}_key"
            col_sql = ", ".join(quote_identifier(c) for c in unique_cols)
            return ("sql", (f"CREATE UNIQUE INDEX {quote_identifier(index)} ON "
                            f"{quote_identifier(table)} ({col_sql}) {UNIQUE_CONSTRAINT_MARK}",))
        if isinstance(inner, exp.ForeignKey | exp.CheckColumnConstraint | exp.Check):
            item = self.constraint(add)
            check = None
            if not isinstance(inner, exp.ForeignKey):
                check = generate(self.rw.rewrite(inner.this.copy()))
            return ("add_constraint", constraint_name, item, check)
        raise unsupported(f"ALTER TABLE {action.sql('postgres')[:60]}")

    def _alter_column(self, action: exp.AlterColumn) -> tuple[Any, ...]:
        name = _column_name(action.this)
        dtype = action.args.get("dtype")
        if dtype is not None:
            if action.args.get("collate"):
                raise unsupported("ALTER COLUMN TYPE ... COLLATE")
            pg, typmod = outputs.type_of(dtype)
            if dtype.sql("postgres").lower() in _SERIALS:   # a pseudo-type of CREATE only
                raise TranslationError(f'type "{dtype.sql("postgres").lower()}" does not '
                                       "exist", "42704")
            decltype = pgtypes.sqlite_decltype(pg, typmod)
            collation = NUMERIC_COLLATION if pg.name == "numeric" else \
                "RTRIM" if pg.name == "bpchar" else None
            using = action.args.get("using")
            source = using if isinstance(using, exp.Expression) else exp.column(name)
            cast = exp.Cast(this=source.copy(), to=dtype.copy())
            conversion = generate(self.rw.rewrite(cast))
            text_of = generate(self.rw.rewrite(exp.Cast(
                this=source.copy(), to=exp.DataType.build("text"))))
            return ("type", name, (pg.name, typmod), (decltype, collation), conversion,
                    text_of, isinstance(using, exp.Expression))
        if "default" in action.args and action.args["default"] is not None:
            return ("default", name, self.default_spec(action.args["default"]))
        given = {key for key, value in action.args.items() if value is not None}
        if "allow_null" in given and given <= {"this", "allow_null", "drop"}:
            return ("not_null", name, not action.args.get("allow_null"))
        if action.args.get("drop") and given <= {"this", "drop"}:
            return ("default", name, None)
        raise unsupported(f"ALTER COLUMN {action.sql('postgres')[:60]}")

    def create_sequence(self, tree: exp.Create) -> Statement:
        name = self.rw.table_name(tree.this)
        options: dict[str, Any] = {}
        props = tree.args.get("properties")
        for prop in (props.expressions if props is not None else []):
            if isinstance(prop, exp.SequenceProperties):
                for key in ("start", "increment", "minvalue", "maxvalue", "cycle", "cache"):
                    value = prop.args.get(key)
                    if value is not None:
                        number = literal_int(value) if isinstance(value, exp.Expression) \
                            else value
                        options[key] = number
        return Statement(Kind.DDL, "CREATE SEQUENCE", (), read_only=False,
                         action=SequenceOp("create_sequence", name, (
                             tuple(sorted(options.items())), bool(tree.args.get("exists")))))
