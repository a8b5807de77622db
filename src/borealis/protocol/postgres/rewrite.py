"""PostgreSQL expressions rewritten into SQLite's, node by node (DESIGN decision 8).

``Rewriter.rewrite`` first prepares a statement's tree (sqlglot's PostgreSQL dialect,
``PgDialect``) with the whole-tree passes of ``passes`` (catalog columns typed, literals
coerced to their columns' types, set-returning functions made table functions), then
rewrites every node after its children (``Rewriter.node``) and checks the result against a
whitelist: a node outside it refuses the statement with 0A000 naming the feature, never a
statement with another meaning.

What the rewrite keeps exact, and how:
- numbers: a decimal literal is numeric text; ``+ - * / %`` and unary minus stay SQLite's
  only when both operands are known integers (or floats), else they call ``numeric``'s
  functions, which choose integer, float or exact decimal arithmetic (or ``temporal``'s) from
  the values; an operator whose result may be an int2 or int4 also gets its type formula
  (``exprtypes.int_check``), so that its function refuses that width's overflow as
  PostgreSQL does; ``sum``/``avg`` are exact aggregates; comparisons of such results go
  through ``_pg_cmp`` and their ORDER BY and min/max through the numeric collation.
- assignments: INSERT and UPDATE values are coerced to their columns' types, and identity
  columns GENERATED ALWAYS refuse values (``assignments``).
- literals: PostgreSQL types an unknown literal by the column it is assigned to or compared
  with, which only the schema knows: such a literal is wrapped in ``_pg_coerce``, which looks
  the column's type up when the statement runs.
- text: LIKE has PostgreSQL's default escape character (backslash), ILIKE and lower/upper
  fold Unicode one character at a time, substring counts positions before 1.
- arrays and JSON: subscripts (from 0 for int2vector/oidvector), ``= ANY``, ``ARRAY[...]``,
  ``ARRAY(SELECT ...)``, ``array_agg`` (NULL for no rows), ``->``/``->>``/``@>``/``?`` as
  ``jsonops`` defines them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.tokens import TokenType

from borealis.protocol.postgres import assignments, exprtypes, outputs, passes
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.nodes import (
    REG_OUT,
    REG_TYPES,
    call,
    catalog_functions,
    catalog_table,
    feature_name,
    func_args,
    identifier_name,
    is_literal,
    is_numeric_literal,
    literal_int,
    lower_bound,
    name_of,
    numeric_literal,
    reg_type_of,
    string_literal,
)
from borealis.protocol.postgres.numeric import NUMERIC_COLLATION, numeric_text
from borealis.protocol.postgres.statement import (
    Context,
    NeedsLiteral,
    ParamHint,
    TranslationError,
    unsupported,
)

TO_CHAR_CALL = "_borealis_to_char"
TEMPLATE_CALLS = {"to_char": TO_CHAR_CALL, "to_date": "_borealis_to_date",
                  "to_timestamp": "_borealis_to_timestamp"}
"""The names ``translate.parse`` gives these functions before sqlglot reads them."""


class PgDialect(Postgres):
    """sqlglot's PostgreSQL dialect, read as Borealis needs it: subscripts as written (not
    shifted to 0-based), and ``oid``/``reg*`` as ordinary type names, so that ``oid[]``
    parses (sqlglot's OBJECT_IDENTIFIER token takes no ``[]``)."""

    INDEX_OFFSET = 0

    class Tokenizer(Postgres.Tokenizer):
        KEYWORDS = {word: token for word, token in Postgres.Tokenizer.KEYWORDS.items()
                    if token != TokenType.OBJECT_IDENTIFIER}


_ALLOWED = (
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.From, exp.Join,
    exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset,
    exp.With, exp.CTE, exp.TableAlias, exp.Table, exp.Column, exp.Identifier, exp.Star,
    exp.Alias, exp.Literal, exp.Null, exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Div,
    exp.Mod, exp.Neg, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And, exp.Or,
    exp.Not, exp.Is, exp.In, exp.Between, exp.Like, exp.Case, exp.If, exp.Coalesce,
    exp.Anonymous, exp.Count, exp.Min, exp.Max, exp.Length, exp.DPipe, exp.Insert,
    exp.Values, exp.Tuple, exp.Schema, exp.OnConflict, exp.Returning, exp.Update,
    exp.Delete, exp.Exists, exp.Distinct, exp.Var, exp.Window, exp.WindowSpec,
    exp.RowNumber, exp.Nullif, exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor,
    exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift, exp.NullSafeEQ,
    exp.NullSafeNEQ, exp.DataType, exp.ColumnDef, exp.ColumnConstraint,
    exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint,
    exp.UniqueColumnConstraint, exp.DefaultColumnConstraint, exp.Reference, exp.ForeignKey,
    exp.PrimaryKey, exp.Constraint, exp.CheckColumnConstraint, exp.Create, exp.Drop,
    exp.Index, exp.IndexParameters, exp.Properties, exp.GroupConcat, exp.Trim,
    exp.Replace, exp.Concat, exp.ConcatWs, exp.Dot, exp.Escape, exp.Filter, exp.Hint,
    exp.OnCondition, exp.Alter, exp.AlterColumn, exp.RenameColumn, exp.AlterRename,
    exp.Command, exp.Semicolon, exp.SetItem, exp.Collate, exp.Check, exp.Rank,
    exp.DenseRank, exp.Lag, exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
    exp.PercentRank, exp.CumeDist, exp.Ntile, exp.StrPosition,
)


FUNCTIONS: dict[str, str] = {
    "now": "_pg_now", "transaction_timestamp": "_pg_now",
    "aurora_db_instance_identifier": "_pg_instance_id",
    "statement_timestamp": "_pg_statement_timestamp",
    "clock_timestamp": "_pg_clock_timestamp", "gen_random_uuid": "_pg_gen_random_uuid",
    "uuid_generate_v4": "_pg_gen_random_uuid", "nextval": "_pg_nextval",
    "currval": "_pg_currval", "setval": "_pg_setval", "lastval": "_pg_lastval",
    "current_setting": "_pg_current_setting", "set_config": "_pg_set_config",
    "random": "_pg_random", "rand": "_pg_random", "char_length": "length",
    "character_length": "length", "octet_length": "_pg_octet_length", "strpos": "instr",
    "left": "_pg_left", "right": "_pg_right", "md5": "_pg_md5", "btrim": "trim",
    "repeat": "_pg_repeat", "split_part": "_pg_split_part", "starts_with": "_pg_starts_with",
    "floor": "_pg_floor", "ceil": "_pg_ceil", "ceiling": "_pg_ceil", "sqrt": "_pg_sqrt",
    "cbrt": "_pg_cbrt", "power": "_pg_power", "pow": "_pg_power", "exp": "_pg_exp",
    "ln": "_pg_ln", "log10": "_pg_log10", "sign": "_pg_sign", "trunc": "_pg_trunc",
    "round": "_pg_round", "abs": "_pg_abs", "reverse": "_pg_reverse", "pg_sleep": "_pg_sleep",
    "to_hex": "_pg_to_hex", "quote_ident": "_pg_quote_ident",
    "quote_literal": "_pg_quote_literal", "encode": "_pg_encode", "decode": "_pg_decode",
    "jsonb_typeof": "_pg_json_typeof", "json_typeof": "_pg_json_typeof",
    "jsonb_array_length": "json_array_length", "json_array_length": "json_array_length",
    "to_json": "_pg_to_json", "to_jsonb": "_pg_to_json",
    "array_position": "_pg_array_position", "array_length": "_pg_array_length",
    "array_to_string": "_pg_array_to_string", "cardinality": "_pg_cardinality",
    "array_cat": "_pg_array_cat", "array_append": "_pg_array_cat",
    "lpad": "_pg_lpad", "rpad": "_pg_rpad", "initcap": "_pg_initcap",
    "translate": "_pg_translate", "ascii": "_pg_ascii", "chr": "_pg_chr",
    "_borealis_to_date": "_pg_to_date", "_borealis_to_timestamp": "_pg_to_timestamp",
    "substring": "_pg_substring", "substr": "_pg_substring", "date_trunc": "_pg_date_trunc",
    "date_part": "_pg_extract", "greatest": "_pg_greatest", "least": "_pg_least",
    "lower": "_pg_lower", "upper": "_pg_upper", "concat": "concat",
    "concat_ws": "concat_ws", "current_schema": "current_schema",
    "current_database": "current_database", "current_catalog": "current_database",
    "current_user": "current_user", "session_user": "current_user",
    "current_role": "current_user", "user": "current_user",
}
"""PostgreSQL functions whose SQLite counterpart has PostgreSQL's meaning (built-in SQLite
functions where they agree, ``_pg_*`` functions of ``functions``/``session`` where not)."""


SQLITE_SAME = frozenset({
    "coalesce", "length", "replace", "nullif", "min", "max", "count", "ltrim", "rtrim",
    "trim", "instr", "row_number", "rank", "dense_rank", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value", "percent_rank", "cume_dist",
})


_JSON_BUILDERS = {"jsonb_build_object": "_pg_jsonb_build_object",
                  "json_build_object": "_pg_json_build_object",
                  "jsonb_build_array": "_pg_jsonb_build_array",
                  "json_build_array": "_pg_json_build_array"}


_BOOLEAN_VALUES = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Not, exp.And,
                   exp.Or, exp.Is, exp.In, exp.Like, exp.Escape, exp.Exists, exp.Between,
                   exp.NullSafeEQ, exp.NullSafeNEQ)


def _json_argument_kind(node: exp.Expression) -> str:
    """How json_build_object shows a (rewritten) value: 'b' a boolean, 'j' JSON, 'n' a
    number kept as numeric text, '-' as its SQLite value."""
    while isinstance(node, exp.Paren):
        node = node.this
    typname = node.meta.get("pg_type") if isinstance(node, exp.Column) else None
    oid = 0
    if name_of(node) == "_pg_cast" and isinstance(node, exp.Anonymous):
        oid = int(node.expressions[1].this)
    elif typname is not None and typname in pgtypes.BY_NAME:
        oid = pgtypes.BY_NAME[typname].oid
    if isinstance(node, _BOOLEAN_VALUES) or oid == 16 or name_of(node).startswith(
            "_pg_json_exists") or name_of(node) == "_pg_contains":
        return "b"
    if oid in (114, 3802) or name_of(node) in _JSON_BUILDERS.values():
        return "j"
    if oid == 1700 or is_numeric_literal(node):
        return "n"
    return "-"


_ARRAY_BOUND_FUNCTIONS = {"array_upper": "_pg_array_upper", "array_lower": "_pg_array_lower"}


_KEYWORD_FUNCTIONS = {"user": "current_user", "current_role": "current_user",
                      "current_user": "current_user", "session_user": "current_user",
                      "current_catalog": "current_database",
                      "current_schema": "current_schema"}
"""Keywords that PostgreSQL reads as functions without parentheses (sqlglot: columns)."""


DYNAMIC_FUNCTIONS = frozenset({
    "_pg_add", "_pg_sub", "_pg_mul", "_pg_div", "_pg_mod", "_pg_neg", "_pg_sum", "_pg_avg",
    "_pg_round", "_pg_trunc", "_pg_abs", "_pg_floor", "_pg_ceil", "_pg_sign",
    "_pg_greatest", "_pg_least", "_pg_extract",
})
"""Functions whose result may be numeric text: they compare and sort as numbers only
through ``_pg_cmp`` and the numeric collation."""


_NUMBER_CASTS = {20: "int", 21: "int", 23: "int", 700: "float", 701: "float"}


class Rewriter:
    """Rewrites one PostgreSQL tree into SQLite's forms, collecting parameter hints."""

    def __init__(self, ctx: Context, kinds: tuple[str, ...] = ()) -> None:
        self.ctx = ctx
        self.kinds = kinds
        self.catalog_functions = catalog_functions()

    # parameters -------------------------------------------------------------------
    def param(self, node: exp.Parameter | exp.Placeholder) -> int:
        raw = node.this
        text = raw.this if isinstance(raw, exp.Literal) else str(raw)
        try:
            number = int(text)
        except ValueError:
            raise TranslationError(f"invalid parameter reference ${text}", "42601") from None
        if not 1 <= number <= 65535:
            raise TranslationError(f"there is no parameter ${number}", "42P02")
        self.ctx.max_param = max(self.ctx.max_param, number)
        return number

    def hint(self, number: int, hint: ParamHint) -> None:
        self.ctx.hints.setdefault(number, hint)

    def is_literal_param(self, node: exp.Expression) -> bool:
        if isinstance(node, exp.Parameter):
            return self.param(node) <= self.ctx.literal_params
        return False

    def literal_kind(self, node: exp.Expression) -> str:
        """'s' for a string literal, 'n' for a number, '' for anything else (as written)."""
        if isinstance(node, exp.Neg):
            return "n" if self.literal_kind(node.this) == "n" else ""
        if isinstance(node, exp.Literal):
            return "s" if node.is_string else "n"
        if isinstance(node, exp.Parameter) and self.is_literal_param(node):
            kind = self.kinds[self.param(node) - 1]
            return "s" if kind == "unknown" else "n"
        return ""

    # the pass ---------------------------------------------------------------------
    def rewrite(self, tree: exp.Expression) -> exp.Expression:
        self._hints(tree)
        self._check_literals(tree)
        self._mark_int_checks(tree)
        self._mark_branch_literals(tree)
        self._mark_to_char_types(tree)
        work = passes.strip_catalog_dots(tree.copy())
        for now in list(work.find_all(exp.CurrentTimestamp)):
            if outputs.is_now_call(now):  # now(), not the CURRENT_TIMESTAMP keyword
                replacement = call("now")
                if now is work:
                    work = replacement
                now.replace(replacement)
        self._coerce_literals(work)
        for select in reversed(list(work.find_all(exp.Select))):
            passes.set_returning(select)
        passes.name_derived_columns(work)
        work = passes.inline_laterals(work)
        out = passes.post_order(work, self.node)
        self._check(out)
        return out

    def _mark_to_char_types(self, tree: exp.Expression) -> None:
        """Mark each to_char with its value's type where the statement alone decides it
        (``meta['value_type']``): its time zone fields print only for a timestamptz."""
        for node in tree.find_all(exp.Anonymous):
            if str(node.this).lower() == TO_CHAR_CALL and node.expressions:
                formula = exprtypes.derive(node.expressions[0], self.kinds)
                if isinstance(formula, exprtypes.Known):
                    pgtype = pgtypes.BY_OID.get(formula.oid)
                    node.meta["value_type"] = pgtype.name if pgtype is not None else ""

    def _mark_int_checks(self, tree: exp.Expression) -> None:
        """Mark each operator whose result may be an int2 or int4 with its
        ``exprtypes.int_check`` (``meta['int_check']``), from the tree as PostgreSQL wrote
        it: its function refuses an overflow of that width as PostgreSQL does."""
        tables = self._dml_tables(tree)
        for node in tree.find_all(exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg):
            if isinstance(node, exp.Neg) and (isinstance(node.this, exp.Literal) or
                                              self.is_literal_param(node.this)):
                continue  # a negative literal: an int4 literal's negation is an int4
            check = exprtypes.int_check(cast(exp.Expression, node), self.kinds, tables)
            if check:
                node.meta["int_check"] = check

    def _dml_tables(self, tree: exp.Expression) -> tuple[str, ...]:
        """The table an INSERT, UPDATE or DELETE writes, whose columns its expressions read
        outside any FROM (``exprtypes.derive``'s ``tables``)."""
        if isinstance(tree, exp.Insert | exp.Update | exp.Delete):
            target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
            name = self.table_name(target)
            return (name,) if name else ()
        return ()

    def _mark_branch_literals(self, tree: exp.Expression) -> None:
        """Mark each untyped literal among the branches of a CASE, COALESCE, GREATEST or
        LEAST with the type PostgreSQL gives it, the branches' common type
        (``exprtypes.literal_branch_type``, ``meta['branch_type']``): ``coalesce(x, '5')``
        is 5 where ``x`` is an int4, and the column is described as one."""
        for node in tree.find_all(exp.Case, exp.Coalesce, exp.Greatest, exp.Least):
            branches = [node.args.get("default"), *(
                i.args.get("true") for i in node.args.get("ifs") or [])] \
                if isinstance(node, exp.Case) else [node.this, *node.expressions]
            literals = [b for b in branches if b is not None and self.literal_kind(b) == "s"]
            if literals:
                mark = exprtypes.literal_branch_type(cast(exp.Expression, node), self.kinds,
                                                     self._dml_tables(tree))
                for literal in literals:
                    if mark:
                        literal.meta["branch_type"] = mark

    def _branch_literal(self, node: exp.Expression, out: exp.Expression) -> exp.Expression:
        """A literal marked by ``_mark_branch_literals``, converted to its type."""
        mark = str(node.meta.get("branch_type", ""))
        if not mark:
            return out
        if mark.isdigit():
            return call("_pg_cast", out, exp.Literal.number(int(mark)), exp.Literal.number(-1),
                        exp.Literal.number(1))
        return call("_pg_literal_as", out, string_literal(mark))

    def _check_literals(self, tree: exp.Expression) -> None:
        if not self.ctx.literal_params:
            return
        for ordered in tree.find_all(exp.Ordered):
            if isinstance(ordered.this, exp.Parameter) and self.is_literal_param(ordered.this):
                raise NeedsLiteral
        for group in tree.find_all(exp.Group):
            for key in group.expressions:
                if isinstance(key, exp.Parameter) and self.is_literal_param(key):
                    raise NeedsLiteral
        for interval in tree.find_all(exp.Interval):
            if any(isinstance(n, exp.Parameter) for n in interval.walk()):
                raise NeedsLiteral

    def _hints(self, tree: exp.Expression) -> None:
        """Parameter hints from the tree as PostgreSQL wrote it."""
        for node in tree.walk():
            if isinstance(node, exp.Cast) and isinstance(node.this, exp.Parameter):
                pg, _ = outputs.type_of(node.to)
                # a reg* value comes as a name, which only the catalog can look up
                oid = 25 if pg.name in REG_TYPES else pg.oid
                self.hint(self.param(node.this), ParamHint(oid=oid))
            elif isinstance(node, exp.Limit | exp.Offset):
                target = node.expression
                if isinstance(target, exp.Parameter):
                    self.hint(self.param(target), ParamHint(oid=20))
            elif isinstance(node, exp.Binary) and not isinstance(node, exp.And | exp.Or):
                left, right = node.this, node.expression
                for a, b in ((left, right), (right, left)):
                    if isinstance(a, exp.Parameter) and isinstance(b, exp.Column):
                        self.hint(self.param(a), self._column_hint(b, tree))
                    elif isinstance(a, exp.Parameter) and isinstance(node, exp.DPipe | exp.Like
                                                                     | exp.ILike):
                        self.hint(self.param(a), ParamHint(oid=25))
            elif isinstance(node, exp.In) and isinstance(node.this, exp.Column):
                for item in node.expressions:
                    if isinstance(item, exp.Parameter):
                        self.hint(self.param(item), self._column_hint(node.this, tree))
            elif isinstance(node, exp.Between) and isinstance(node.this, exp.Column):
                for item in (node.args.get("low"), node.args.get("high")):
                    if isinstance(item, exp.Parameter):
                        self.hint(self.param(item), self._column_hint(node.this, tree))
            elif isinstance(node, exp.Parameter):
                self.param(node)
        if isinstance(tree, exp.Insert):
            self._insert_hints(tree)
        if isinstance(tree, exp.Update):
            table = self.table_name(tree.this)
            for assignment in tree.expressions:
                if isinstance(assignment, exp.EQ) and isinstance(assignment.expression,
                                                                 exp.Parameter):
                    column = assignment.this
                    if isinstance(column, exp.Column) and table:
                        # the assignment decides, over the comparison the walk saw in it
                        self.ctx.hints[self.param(assignment.expression)] = ParamHint(
                            tables=(table,), column=column.name.lower(), assigned=True)

    def insert_target(self, tree: exp.Insert) -> tuple[str, list[str]]:
        target = tree.this
        if isinstance(target, exp.Schema):
            return self.table_name(target.this), [identifier_name(c)
                                                  for c in target.expressions]
        return self.table_name(target), []

    def _insert_hints(self, tree: exp.Insert) -> None:
        table, columns = self.insert_target(tree)
        values = tree.expression
        if not table or not isinstance(values, exp.Values):
            return
        for row in values.expressions:
            items = row.expressions if isinstance(row, exp.Tuple) else [row]
            for index, item in enumerate(items):
                if isinstance(item, exp.Parameter):
                    column = columns[index] if index < len(columns) else f"#{index}"
                    self.hint(self.param(item), ParamHint(tables=(table,), column=column,
                                                          assigned=True))

    def table_name(self, node: exp.Expression | None) -> str:
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            return node.name.lower() if not node.this.quoted else node.name
        return ""

    def _column_hint(self, column: exp.Column, tree: exp.Expression) -> ParamHint:
        name = identifier_name(column)
        qualifier = column.table.lower() if column.table else ""
        tables: list[str] = []
        for table in tree.find_all(exp.Table):
            alias = table.alias.lower() if table.alias else ""
            real = self.table_name(table)
            if real and (not qualifier or qualifier in (alias, real)):
                tables.append(real)
        return ParamHint(tables=tuple(dict.fromkeys(tables)), column=name)

    # literals typed by their column -----------------------------------------------------
    def coerce(self, value: exp.Expression, kind: str, column: str,
               tables: tuple[str, ...]) -> exp.Anonymous | None:
        """Replace ``value`` (in place) by its coercion to the column's type; the call, or
        None for a catalog table (not coerced)."""
        tables = tuple(t for t in tables if catalog_table(None, t) is None)
        if not tables:
            return None
        placeholder = exp.Null()
        value.replace(placeholder)
        coerced = call("_pg_coerce", value, string_literal(kind), string_literal(column),
                       *(string_literal(t) for t in tables))
        placeholder.replace(coerced)
        return coerced

    def assigned_kind(self, value: exp.Expression) -> str:
        """The coercion an assigned value needs: a literal's kind, 'v' for arithmetic
        (its numeric result takes the column's scale and range) and another column's value
        (an int8's beyond an int4 column's range is refused), '' for none."""
        kind = self.literal_kind(value)
        if kind:
            return kind
        if isinstance(value, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod | exp.Neg
                      | exp.Column) and not (isinstance(value, exp.Column) and isinstance(
                          value.this, exp.Star)):
            return "v"
        return ""

    def _coerce_literals(self, tree: exp.Expression) -> None:
        if isinstance(tree, exp.Insert):
            assignments.coerce_insert(self, tree)
        if isinstance(tree, exp.Update):
            assignments.coerce_update(self, tree)
        for node in list(tree.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
                                       exp.In, exp.Between)):
            if isinstance(node.parent, exp.Update | exp.OnConflict):
                continue  # an assignment
            self._coerce_comparison(cast(exp.Expression, node), tree)

    def _coerce_comparison(self, node: exp.Expression, tree: exp.Expression) -> None:
        if isinstance(node, exp.In | exp.Between):
            column = node.this
            others = list(node.expressions) if isinstance(node, exp.In) else [
                node.args.get("low"), node.args.get("high")]
        else:
            column, others = node.this, [node.expression]
            if not isinstance(column, exp.Column):
                column, others = node.expression, [node.this]
        if not isinstance(column, exp.Column) or isinstance(column.this, exp.Star):
            return
        for other in others:
            if other is None or self.literal_kind(other) != "s":
                continue
            vector = self._catalog_literal(column, other)
            if vector:
                continue
            hint = self._column_hint(column, tree)
            self.coerce(other, "s", hint.column, hint.tables)

    def _catalog_literal(self, column: exp.Column, literal: exp.Expression) -> bool:
        """A string literal compared with a catalog column: typed now, from the catalog's
        column type (an array's '{0}' must compare as the stored JSON)."""
        typname = column.meta.get("pg_type")
        if typname is None:
            return False
        target = pgtypes.BY_NAME.get(typname)
        if target is not None and target.is_array:
            placeholder = exp.Null()
            literal.replace(placeholder)
            placeholder.replace(call("_pg_cast", literal, exp.Literal.number(target.oid),
                                      exp.Literal.number(-1), exp.Literal.number(1)))
        return True

    # one node -------------------------------------------------------------------------
    def node(self, node: exp.Expression) -> exp.Expression:
        """One node, its children already rewritten."""
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            return cast(exp.Expression, handler(self, node))
        if isinstance(node, exp.Func) and not isinstance(node, _ALLOWED):
            name = node.sql_name().lower()
            mapped = FUNCTIONS.get(name)
            if mapped is not None:
                return call(mapped, *func_args(node))
        if isinstance(node, exp.Binary) and isinstance(node, exp.Operator):
            return self._operator(node)
        return node

    def _parameter(self, node: exp.Parameter) -> exp.Expression:
        return self._branch_literal(node, exp.Var(this=f"?{self.param(node)}"))

    def _identifier(self, node: exp.Identifier) -> exp.Expression:
        if not node.quoted and node.this != node.this.lower():
            return exp.Identifier(this=node.this.lower(), quoted=False)
        return node

    def _literal(self, node: exp.Literal) -> exp.Expression:
        if node.is_string:
            return self._branch_literal(node, node)
        if node.meta.get("numeric"):
            return node
        text = str(node.this)
        if re.fullmatch(r"[0-9]+", text) and int(text) < 2**63:
            return node
        try:
            return numeric_literal(numeric_text(Decimal(text)))
        except InvalidOperation:
            raise TranslationError(f'invalid input syntax for type numeric: "{text}"',
                                   "22P02") from None

    def _boolean(self, node: exp.Boolean) -> exp.Expression:
        return exp.Literal.number(1 if node.this else 0)

    def _table(self, node: exp.Table) -> exp.Expression:
        if not isinstance(node.this, exp.Identifier):
            if name_of(node.this).startswith(("_pg_", "_borealis_")):
                return node  # a set-returning function, made a table function already
            raise unsupported(f"the table function {node.this.sql('postgres')[:60]}")
        schema = node.db.lower() if node.db else None
        name = node.name if node.this.quoted else node.name.lower()
        if node.catalog:
            raise unsupported("cross-database references")
        mapped = catalog_table(schema, name)
        if mapped is not None:
            alias = node.args.get("alias")
            out = exp.Table(this=exp.Identifier(this=mapped, quoted=True))
            if alias is None and name != mapped:
                alias = exp.TableAlias(this=exp.Identifier(this=name, quoted=False))
            if alias is not None:
                out.set("alias", alias)
            return out
        if schema in ("pg_catalog", "information_schema"):
            raise unsupported(f"the catalog table {schema}.{name}")
        if schema not in (None, "public"):
            raise TranslationError(f'schema "{schema}" does not exist', "3F000")
        if schema == "public":
            node = node.copy()
            node.set("db", None)
        return node

    def _column(self, node: exp.Column) -> exp.Expression:
        bare = not node.table and isinstance(node.this, exp.Identifier) and not node.this.quoted
        if bare and node.name.lower() in _KEYWORD_FUNCTIONS:
            return call(_KEYWORD_FUNCTIONS[node.name.lower()])
        # pg_catalog.pg_class.relname: drop the schema, the table name stays (an alias of
        # the catalog table when it is mapped, see _table).
        if node.args.get("db") is not None:
            node = node.copy()
            node.set("db", None)
            node.set("catalog", None)
        return node

    def _cast(self, node: exp.Cast) -> exp.Expression:
        to = node.to
        name = to.sql("postgres").lower().replace("pg_catalog.", "")
        if name in REG_TYPES:
            return call(f"_pg_{name}", node.this)
        pg, typmod = outputs.type_of(to)
        inner = node.this
        reg = reg_type_of(inner)
        if reg is not None and pg.name in ("text", "varchar", "name", "bpchar"):
            return call(f"_pg_{REG_OUT.get(reg, reg)}_out", inner)  # the name, not the oid
        from_text = isinstance(inner, exp.Literal) and inner.is_string and not \
            inner.meta.get("numeric")
        if isinstance(inner, exp.Var) and str(inner.this).startswith("?"):
            number = int(str(inner.this)[1:])
            from_text = number <= self.ctx.literal_params and \
                self.kinds[number - 1] == "unknown"
        out = call("_pg_cast", inner, exp.Literal.number(pg.oid), exp.Literal.number(typmod))
        if from_text:
            out.expressions.append(exp.Literal.number(1))
        if lower_bound(inner) == 0 and pg.is_array:
            out.meta["lower"] = 0  # int2vector::int2[] keeps its bounds (binary coercion)
        out.meta["number"] = _NUMBER_CASTS.get(pg.oid, "")
        if pg.name == "bpchar":  # character(n) compares without its trailing spaces
            return exp.Collate(this=out, expression=exp.Var(this="RTRIM"))
        return out

    def _interval(self, node: exp.Interval) -> exp.Expression:
        value = node.this
        unit = node.args.get("unit")
        if not isinstance(value, exp.Literal):
            raise unsupported("an interval of an expression (multiply an interval instead)")
        text = str(value.this) + (f" {unit.sql('postgres')}" if unit is not None else "")
        return call("_pg_cast", string_literal(text), exp.Literal.number(1186),
                     exp.Literal.number(-1), exp.Literal.number(1))

    # numbers -------------------------------------------------------------------------
    def number_kind(self, node: exp.Expression) -> str:
        """'int' or 'float' when SQLite's own arithmetic on ``node`` (rewritten) agrees with
        PostgreSQL's; '' when it may be numeric text, a date or NULL of any type."""
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Literal):
            return "" if node.is_string else "int"
        if isinstance(node, exp.Var) and str(node.this).startswith("?"):
            number = int(str(node.this)[1:])
            if number <= self.ctx.literal_params:
                return "int" if self.kinds[number - 1] in ("int4", "int8") else ""
            return ""
        if isinstance(node, exp.Count | exp.Length | exp.RowNumber):
            return "int"
        if isinstance(node, exp.Neg):
            return self.number_kind(node.this)
        if isinstance(node, exp.Add | exp.Sub | exp.Mul):
            left, right = self.number_kind(node.this), self.number_kind(node.expression)
            return left if left == right else ("float" if left and right else "")
        return str(node.meta.get("number", ""))

    def _arithmetic(self, node: exp.Expression) -> exp.Expression:
        """SQLite's operator for known integers or floats (a division only by a nonzero
        literal: SQLite divides by zero into NULL), ``numeric``'s otherwise."""
        left, right = node.this, node.args["expression"]
        kinds = (self.number_kind(left), self.number_kind(right))
        check = str(node.meta.get("int_check", ""))
        if "" not in kinds and "float" in kinds and not isinstance(node, exp.Div | exp.Mod):
            return node
        if kinds == ("int", "int") and isinstance(node, exp.Div | exp.Mod) and not check and \
                literal_int(right) not in (None, 0):
            return node  # SQLite's integer division truncates, as PostgreSQL's
        names: dict[type, str] = {exp.Add: "_pg_add", exp.Sub: "_pg_sub", exp.Mul: "_pg_mul",
                                  exp.Div: "_pg_div", exp.Mod: "_pg_mod"}
        out = call(names[type(node)], left, right)
        if check and not isinstance(node, exp.Mod):  # a remainder never overflows
            out.expressions.append(string_literal(check))
        if kinds == ("int", "int"):
            # SQLite's own + - * would turn an int8 overflow into a float
            out.meta["number"] = "int"
        return out

    def _neg(self, node: exp.Neg) -> exp.Expression:
        inner = node.this
        if is_numeric_literal(inner):
            text = str(inner.this)
            return numeric_literal(text[1:] if text.startswith("-") else "-" + text)
        check = str(node.meta.get("int_check", ""))
        if self.number_kind(inner) == "float" or (self.number_kind(inner) and not check):
            return node
        out = call("_pg_neg", inner, *([string_literal(check)] if check else []))
        if self.number_kind(inner):
            out.meta["number"] = "int"
        return out

    def _comparison(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node.parent, exp.Update | exp.OnConflict):
            return node  # an assignment
        left, right = node.this, node.args["expression"]
        if isinstance(right, exp.Any):
            return self._any(node, right)
        if name_of(right) in ("all", "any", "some"):
            quantifier = name_of(right)
            if isinstance(node, exp.NEQ) and quantifier == "all" and \
                    len(right.expressions) == 1:
                return exp.Not(this=_in_array(left, right.expressions[0]))
            if isinstance(node, exp.EQ) and quantifier != "all" and len(right.expressions) == 1:
                return _in_array(left, right.expressions[0])
            raise unsupported(f"{node.key.upper()} {quantifier.upper()} (...)")
        if _dynamic(left) or _dynamic(right) or (is_numeric_literal(left) and is_literal(
                right)) or (is_numeric_literal(right) and is_literal(left)):
            op: exp.Expression = type(node)(this=call("_pg_cmp", left, right),
                                            expression=exp.Literal.number(0))
            return op
        return node

    def _between(self, node: exp.Between) -> exp.Expression:
        value, low, high = node.this, node.args["low"], node.args["high"]
        if _dynamic(value) or _dynamic(low) or _dynamic(high):
            return exp.And(
                this=exp.GTE(this=call("_pg_cmp", value, low), expression=exp.Literal.number(0)),
                expression=exp.LTE(this=call("_pg_cmp", value, high),
                                   expression=exp.Literal.number(0)))
        return node

    def _ordered(self, node: exp.Ordered) -> exp.Expression:
        if _dynamic(node.this):
            node.set("this", _numeric_collate(node.this))
        return node

    def _min_max(self, node: exp.Min | exp.Max) -> exp.Expression:
        if _dynamic(node.this) and not node.expressions:
            node.set("this", _numeric_collate(node.this))
        if node.expressions:  # min(a, b) is PostgreSQL's least() (NULLs ignored)
            name = "_pg_least" if isinstance(node, exp.Min) else "_pg_greatest"
            return call(name, node.this, *node.expressions)
        return node

    def _logical(self, node: exp.Expression) -> exp.Expression:
        """bool_and/every and bool_or: min and max of 0/1 (NULLs ignored, NULL for none)."""
        return call("min" if isinstance(node, exp.LogicalAnd) else "max", node.this)

    def _aggregate(self, node: exp.Sum | exp.Avg) -> exp.Expression:
        name = "_pg_sum" if isinstance(node, exp.Sum) else "_pg_avg"
        return call(name, node.this)

    # arrays ---------------------------------------------------------------------------
    def _any(self, node: exp.Expression, any_: exp.Any) -> exp.Expression:
        """``x = ANY (array)`` is ``x IN (its elements)``; ``x <> ANY`` is refused."""
        if not isinstance(node, exp.EQ):
            raise unsupported(f"{node.key.upper()} ANY (...)")
        return _in_array(node.this, any_.this)

    def _array(self, node: exp.Array) -> exp.Expression:
        items = list(node.expressions)
        if len(items) == 1 and isinstance(items[0], exp.Select | exp.Union | exp.Subquery):
            return _array_of_query(items[0])
        return call("json_array", *items)

    def _bracket(self, node: exp.Bracket) -> exp.Expression:
        indexes: list[exp.Expression] = []
        target: exp.Expression = node
        while isinstance(target, exp.Bracket):
            if any(isinstance(i, exp.Slice) for i in target.expressions):
                raise unsupported("array slices")
            indexes = list(target.expressions) + indexes
            target = target.this
        return call("_pg_subscript", target, exp.Literal.number(lower_bound(target)),
                     *indexes)

    def _array_agg(self, node: exp.ArrayAgg) -> exp.Expression:
        return call("_pg_array_agg", node.this)

    def _group_concat(self, node: exp.GroupConcat) -> exp.Expression:
        """string_agg(x, sep ORDER BY y): SQLite wants the ORDER BY after the last
        argument."""
        separator = node.args.get("separator")
        value = node.this
        order = None
        if isinstance(value, exp.Order):
            order, value = value, value.this
        args = [value, *([separator] if separator is not None else [])]
        if order is not None:
            args[-1] = exp.Order(this=args[-1], expressions=order.expressions)
        return call("group_concat", *args)

    # JSON ------------------------------------------------------------------------------
    def _json(self, node: exp.Expression) -> exp.Expression:
        name = _JSON_OPERATORS[type(node)]
        key = node.args.get("expression")
        if key is None or node.this is None:
            raise TranslationError("syntax error: an operator without its operand", "42601")
        left = node.this
        if isinstance(node, exp.ArrayContainedBy):
            left, key = key, left
        return call(name, left, _json_key(key))

    # calls ---------------------------------------------------------------------------
    def _anonymous(self, node: exp.Anonymous) -> exp.Expression:
        name = str(node.this).lower()
        if name.startswith("pg_catalog."):
            name = name[len("pg_catalog."):]
        args = list(node.expressions)
        if name in ("all", "any", "some"):
            return node  # the right side of a comparison (x <> ALL (array))
        if name in _ARRAY_BOUND_FUNCTIONS:
            lower = lower_bound(args[0]) if args else 1
            return call(_ARRAY_BOUND_FUNCTIONS[name], *args, exp.Literal.number(lower))
        if name == "every":
            return call("min", *args)
        if name == TO_CHAR_CALL:
            if len(args) != 2:
                raise TranslationError(f"function to_char with {len(args)} arguments does "
                                       "not exist", "42883")
            return call("_pg_to_char", *args,
                        string_literal(str(node.meta.get("value_type", ""))))
        if name in _JSON_BUILDERS:  # the arguments' kinds: booleans and JSON stay so
            kinds = "".join(_json_argument_kind(a) for a in args)
            return call(_JSON_BUILDERS[name], string_literal(kinds), *args)
        if name in FUNCTIONS:
            return call(FUNCTIONS[name], *args)
        if name in SQLITE_SAME or name in self.catalog_functions or name.startswith(
                ("_pg_", "_borealis_")):
            return call(name, *args)
        raise TranslationError(f"function {name}() does not exist in Borealis", "42883")

    def _typed_function(self, node: exp.Func) -> exp.Expression:
        """sqlglot's own nodes for PostgreSQL functions, as PostgreSQL calls them."""
        if isinstance(node, exp.Round):
            digits = node.args.get("decimals")
            return call("_pg_round", node.this, *([digits] if digits is not None else []))
        if isinstance(node, exp.Substring):
            start, length = node.args.get("start"), node.args.get("length")
            args = [node.this, start if start is not None else exp.Literal.number(1)]
            return call("_pg_substring", *args, *([length] if length is not None else []))
        if isinstance(node, exp.Extract):
            return call("_pg_extract", string_literal(node.this.name.lower()), node.expression)
        if isinstance(node, exp.TimestampTrunc):
            unit = node.args["unit"]
            field = unit
            if isinstance(unit, exp.Literal | exp.Var) and not str(unit.name).startswith("?"):
                field = string_literal(unit.name.lower())  # a keyword or a literal, not a $n
            return call("_pg_date_trunc", field, node.this)
        if isinstance(node, exp.Pad):
            name = "_pg_lpad" if node.args.get("is_left") else "_pg_rpad"
            fill = node.args.get("fill_pattern")
            return call(name, node.this, node.expression, *([fill] if fill else []))
        if isinstance(node, exp.Log):
            if node.expression is not None:
                raise unsupported("log(base, x)")
            return call("_pg_log10", node.this)
        if isinstance(node, exp.Chr):
            return call("_pg_chr", *node.expressions)
        if isinstance(node, exp.Lower | exp.Upper):
            return call("_pg_lower" if isinstance(node, exp.Lower) else "_pg_upper",
                         node.this)
        if isinstance(node, exp.ArraySize):
            return call("_pg_array_length", node.this,
                         node.expression or exp.Literal.number(1))
        if isinstance(node, exp.Greatest | exp.Least):
            name = "_pg_greatest" if isinstance(node, exp.Greatest) else "_pg_least"
            return call(name, node.this, *node.expressions)
        if isinstance(node, exp.Uuid):
            return call("_pg_gen_random_uuid")
        if isinstance(node, exp.CurrentTimestamp):
            return call("_pg_current_timestamp", *func_args(node))
        if isinstance(node, exp.Localtimestamp):
            return call("_pg_localtimestamp", *func_args(node))
        if isinstance(node, exp.CurrentDate):
            return call("_pg_current_date")
        if isinstance(node, exp.CurrentTime):
            return call("_pg_current_time")
        if isinstance(node, exp.CurrentUser | exp.SessionUser):
            return call("current_user")
        if isinstance(node, exp.CurrentSchema):
            return call("current_schema")
        if isinstance(node, exp.CurrentCatalog):
            return call("current_database")
        if isinstance(node, exp.CurrentVersion):
            return call("version")
        raise AssertionError(type(node))

    def _ilike(self, node: exp.ILike) -> exp.Expression:
        like = exp.Like(this=call("_pg_lower", node.this),
                        expression=call("_pg_lower", node.expression))
        return self._like(like)

    def _like(self, node: exp.Like) -> exp.Expression:
        """PostgreSQL's LIKE escapes with a backslash unless told otherwise."""
        if isinstance(node.parent, exp.Escape):
            return node
        return exp.Escape(this=node, expression=string_literal("\\"))

    def _escape(self, node: exp.Escape) -> exp.Expression:
        like = node.this
        if isinstance(like, exp.Escape):  # _like wrapped it before it saw its ESCAPE
            node.set("this", like.this)
        return node

    def _regexp(self, node: exp.Expression) -> exp.Expression:
        flags = "i" if isinstance(node, exp.RegexpILike) else ""
        return call("_pg_regexp", node.this, node.args["expression"], string_literal(flags))

    def _array_func(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.ArrayToString):
            return call("_pg_array_to_string", node.this, node.expression,
                         *([node.args["null"]] if node.args.get("null") else []))
        if isinstance(node, exp.ArrayConcat):
            out = node.this
            for item in node.expressions:
                out = call("_pg_array_cat", out, item)
            return out
        if isinstance(node, exp.ArrayAppend):
            return call("_pg_array_cat", node.this, node.expression)
        raise AssertionError(type(node))

    def _dpipe(self, node: exp.DPipe) -> exp.Expression:
        if any(_is_array(side) for side in (node.this, node.expression)):
            return call("_pg_array_cat", node.this, node.expression)
        return node

    def _collate(self, node: exp.Collate) -> exp.Expression:
        collation = node.expression.name.lower() if node.expression else ""
        if collation in ("default", "c", "pg_catalog.default", "posix", "ucs_basic"):
            return node.this
        raise unsupported(f'collation "{collation}"')

    def _operator(self, node: exp.Expression) -> exp.Expression:
        op = str(node.args.get("operator", "")).lower().replace("pg_catalog.", "")
        left, right = node.this, node.args.get("expression")
        assert right is not None
        if op in ("~", "~*", "!~", "!~*"):
            match = call("_pg_regexp", left, right, string_literal("i" if "*" in op else ""))
            return exp.Not(this=match) if op.startswith("!") else match
        simple = {"=": exp.EQ, "<>": exp.NEQ, "!=": exp.NEQ, "<": exp.LT, ">": exp.GT,
                  "<=": exp.LTE, ">=": exp.GTE, "+": exp.Add, "-": exp.Sub, "*": exp.Mul,
                  "/": exp.Div, "||": exp.DPipe}
        if op in simple:
            rebuilt = simple[op](this=left, expression=right)
            return self.node(cast(exp.Expression, rebuilt))
        raise unsupported(f"operator {op}")

    def _check(self, tree: exp.Expression) -> None:
        for node in tree.walk():
            if not isinstance(node, _ALLOWED):
                raise unsupported(feature_name(cast(exp.Expression, node)))
            if name_of(node) in ("all", "any", "some"):
                raise unsupported(f"{name_of(node).upper()} (...) outside = and <>")


def _dynamic(node: exp.Expression | None) -> bool:
    """An expression whose value may be numeric text that is not a column's."""
    while isinstance(node, exp.Paren):
        node = node.this
    return name_of(node) in DYNAMIC_FUNCTIONS if node is not None else False


def _numeric_collate(node: exp.Expression) -> exp.Expression:
    return exp.Collate(this=node, expression=exp.Var(this=NUMERIC_COLLATION))


def _is_array(node: exp.Expression) -> bool:
    return name_of(node) in ("json_array", "_pg_array_cat") or (
        name_of(node) == "_pg_cast" and isinstance(node, exp.Anonymous) and
        pgtypes.BY_OID.get(int(node.expressions[1].this), pgtypes.BY_NAME["text"]).is_array)


def _json_key(key: exp.Expression) -> exp.Expression:
    """The key of ``->``: sqlglot turns a literal key into a JSON path; take it back."""
    if isinstance(key, exp.JSONPath):
        parts = [p for p in key.expressions if not isinstance(p, exp.JSONPathRoot)]
        if len(parts) == 1 and isinstance(parts[0], exp.JSONPathKey):
            return string_literal(str(parts[0].this))
        if len(parts) == 1 and isinstance(parts[0], exp.JSONPathSubscript):
            return exp.Literal.number(int(parts[0].this))
        raise unsupported(f"the JSON path {key.sql('postgres')}")
    return key


_JSON_OPERATORS: dict[type, str] = {
    exp.JSONExtract: "_pg_json_get", exp.JSONExtractScalar: "_pg_json_get_text",
    exp.JSONBExtract: "_pg_json_path", exp.JSONBExtractScalar: "_pg_json_path_text",
    exp.ArrayContainsAll: "_pg_contains", exp.ArrayContainedBy: "_pg_contains",
    exp.JSONBContains: "_pg_contains", exp.JSONBContainsTopKey: "_pg_json_exists",
    exp.JSONBContainsAnyTopKeys: "_pg_json_exists_any",
    exp.JSONBContainsAllTopKeys: "_pg_json_exists_all",
}


def _in_array(value: exp.Expression, array: exp.Expression) -> exp.Expression:
    while isinstance(array, exp.Paren):
        array = array.this
    if name_of(array) == "json_array":
        return exp.In(this=value, expressions=list(array.expressions))
    elements = exp.select("value").from_(call("json_each", array))
    return exp.In(this=value, query=exp.Subquery(this=elements))


def _array_of_query(query: exp.Expression) -> exp.Expression:
    """ARRAY(SELECT x ...): the rows' one column as an array ('{}' for no rows)."""
    while isinstance(query, exp.Subquery):
        query = query.this
    if not isinstance(query, exp.Select) or len(query.expressions) != 1:
        raise unsupported("ARRAY() of a query that is not one SELECT of one column")
    inner = query.copy()
    element = inner.expressions[0]
    value = element.this if isinstance(element, exp.Alias) else element
    inner.set("expressions", [exp.Alias(this=value, alias=exp.Identifier(
        this="_borealis_element", quoted=True))])
    if inner.args.get("order") is not None and inner.args.get("limit") is None:
        inner.set("limit", exp.Limit(expression=exp.Literal.number(-1)))  # keeps the order
    aggregate = call("coalesce", call("_pg_array_agg", exp.column("_borealis_element",
                                                                    quoted=True)),
                      string_literal("[]"))
    return exp.Subquery(this=exp.Select(expressions=[aggregate]).from_(
        exp.Subquery(this=inner)))


_HANDLERS: dict[type, Any] = {
    exp.Parameter: Rewriter._parameter, exp.Identifier: Rewriter._identifier,
    exp.Literal: Rewriter._literal, exp.Boolean: Rewriter._boolean,
    exp.Table: Rewriter._table, exp.Column: Rewriter._column,
    exp.Cast: Rewriter._cast, exp.TryCast: Rewriter._cast, exp.Interval: Rewriter._interval,
    exp.Add: Rewriter._arithmetic, exp.Sub: Rewriter._arithmetic,
    exp.Mul: Rewriter._arithmetic, exp.Div: Rewriter._arithmetic,
    exp.Mod: Rewriter._arithmetic, exp.Neg: Rewriter._neg,
    exp.EQ: Rewriter._comparison, exp.NEQ: Rewriter._comparison,
    exp.GT: Rewriter._comparison, exp.GTE: Rewriter._comparison,
    exp.LT: Rewriter._comparison, exp.LTE: Rewriter._comparison,
    exp.Between: Rewriter._between, exp.Ordered: Rewriter._ordered,
    exp.Min: Rewriter._min_max, exp.Max: Rewriter._min_max,
    exp.Sum: Rewriter._aggregate, exp.Avg: Rewriter._aggregate,
    exp.LogicalAnd: Rewriter._logical, exp.LogicalOr: Rewriter._logical,
    exp.Array: Rewriter._array, exp.Bracket: Rewriter._bracket,
    exp.ArrayAgg: Rewriter._array_agg, exp.GroupConcat: Rewriter._group_concat,
    exp.Anonymous: Rewriter._anonymous, exp.ILike: Rewriter._ilike, exp.Like: Rewriter._like,
    exp.Escape: Rewriter._escape, exp.RegexpLike: Rewriter._regexp,
    exp.RegexpILike: Rewriter._regexp, exp.DPipe: Rewriter._dpipe,
    exp.Collate: Rewriter._collate, exp.ArrayToString: Rewriter._array_func,
    exp.ArrayConcat: Rewriter._array_func, exp.ArrayAppend: Rewriter._array_func,
    **{t: Rewriter._json for t in _JSON_OPERATORS},
    **{t: Rewriter._typed_function for t in (
        exp.Round, exp.Substring, exp.Extract, exp.TimestampTrunc, exp.Pad, exp.Log,
        exp.Chr, exp.Lower, exp.Upper, exp.ArraySize, exp.Greatest, exp.Least, exp.Uuid,
        exp.CurrentTimestamp, exp.Localtimestamp, exp.CurrentDate, exp.CurrentTime,
        exp.CurrentUser, exp.SessionUser, exp.CurrentSchema, exp.CurrentCatalog,
        exp.CurrentVersion)},
}
