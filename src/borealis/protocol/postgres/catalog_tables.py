"""The rows of the emulated catalog: the built-in relations and types, every ``pg_catalog``
table and ``information_schema`` view as a ``catalog.TableSpec`` (its PostgreSQL identity,
its columns and the function that computes its rows from a ``catalog.Snapshot``).

``catalog`` owns the mechanism (the snapshot of the live schema, the virtual tables, the
lookups); this module owns what the tables hold, so that a table is added here with one
``_spec`` call and a row function. Importing ``catalog`` imports this module, which
registers every table in ``catalog.SPECS``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from borealis.protocol.postgres import catalog_functions as fn
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.catalog import (
    BTREE_AM,
    DATABASE_OID,
    DATABASE_OWNER_OID,
    DEFAULT_COLLATION,
    DEFAULT_TABLESPACE,
    HEAP_AM,
    NAMESPACES,
    PG_CATALOG_NAMESPACE,
    PUBLIC_NAMESPACE,
    SPECS,
    SPECS_BY_PG_NAME,
    SUPERUSER_OID,
    Attribute,
    Catalog,
    Relation,
    Snapshot,
    TableSpec,
)
from borealis.protocol.postgres.catalog_functions import quote_ident

# --- built-in rows: catalog relations and types ---------------------------------------------

def _type_oid(typname: str) -> int:
    return int(pgtypes.BY_NAME[typname].oid)


def decltype(typname: str) -> str:
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
def static() -> _Static:
    """The catalog's own relations and the built-in types (the same for every connection)."""
    relations: dict[int, Relation] = {}
    for spec in SPECS.values():
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
    spec = TableSpec(schema, name, oids[0], oids[1], oids[2], kind, parsed, rows, keys, live,
                     hidden)
    SPECS[spec.sqlite_name] = spec
    SPECS_BY_PG_NAME[(schema, name)] = spec


def _json(value: list[int]) -> str:
    """An array (or int2vector, oidvector) as Borealis stores it: compact JSON."""
    return json.dumps(value, separators=(",", ":"))


def _empty(_cat: Catalog, _snap: Snapshot) -> list[tuple[Any, ...]]:
    return []


def _all_relations(snap: Snapshot) -> Iterable[Relation]:
    yield from static().relations.values()
    yield from snap.relations.values()


def _pg_class(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    for r in _all_relations(snap):
        am = HEAP_AM if r.kind == "r" else BTREE_AM if r.kind == "i" else 0
        yield (r.oid, r.name, r.namespace, r.row_type, 0, SUPERUSER_OID, am,
               r.oid if r.kind != "v" else 0, 0, 0, r.tuples, 0, 0, r.has_index, False, "p",
               r.kind, len(r.attributes), r.checks, r.kind == "v", r.has_triggers, False, False,
               False,
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
               fn.render_expression(c.expression, pretty=False,
                                    column_types=_cat.column_types(c.table_oid))
               if c.expression else None)


def _pg_type(_cat: Catalog, snap: Snapshot) -> Iterable[tuple[Any, ...]]:
    yield from static().type_rows
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
            yield (schema, r.name, cat.user, None, r.has_index, False, r.has_triggers, False)


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
_spec("pg_catalog", "pg_auth_members", (1261, 2843, 10058), "r",  # no role is in another
      "roleid:oid member:oid grantor:oid admin_option:bool", _empty)
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

CATALOG_TABLE_FUNCTIONS: dict[str, str] = {
    "pg_partition_ancestors":
        SPECS_BY_PG_NAME[("pg_catalog", "pg_partition_ancestors")].sqlite_name}
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
    relation = snap.types.get(oid) or static().types.get(oid)
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
            clause = fn.render_expression(c.expression, pretty=False,
                                          column_types=cat.column_types(c.table_oid))
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
