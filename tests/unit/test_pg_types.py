"""PostgreSQL types, their SQLite storage and their wire formats, against PostgreSQL 15.

Every literal below that stands for PostgreSQL's output (pg_type rows, format_type(), the
(oid, atttypmod) a column declared with a spelling gets, text output, *send() bytes,
SQLSTATEs) was produced by a throwaway PostgreSQL 15.18 with DateStyle 'ISO, MDY', TimeZone
UTC, IntervalStyle postgres and extra_float_digits 1, through libpq in text and binary
result formats. The property tests compare the codecs with naive reference models built
from Python's datetime, Decimal, json and struct.
"""

from __future__ import annotations

import json
import math
import struct
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import apsw
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from borealis.protocol.postgres import types as pgt
from borealis.protocol.postgres.types import (
    BY_NAME,
    BY_OID,
    PgType,
    PgValueError,
    UnknownTypeError,
    coerce_to_typmod,
    decode_binary,
    decode_text,
    encode_binary,
    encode_text,
    format_type,
    lookup,
    sqlite_decltype,
    type_from_decltype,
)

# --- PostgreSQL 15.18's answers ----------------------------------------------------------------

# SELECT oid, typname, typarray, typlen, typcategory, typelem, typbyval, typalign, typstorage,
#        typtype, typispreferred FROM pg_type WHERE oid = ANY(<the supported types>)
PG_TYPE_ROWS = """
16|bool|1000|1|B|0|t|c|p|b|t
17|bytea|1001|-1|U|0|f|i|x|b|f
18|char|1002|1|Z|0|t|c|p|b|f
19|name|1003|64|S|18|f|c|p|b|f
20|int8|1016|8|N|0|t|d|p|b|f
21|int2|1005|2|N|0|t|s|p|b|f
22|int2vector|1006|-1|A|21|f|i|p|b|f
23|int4|1007|4|N|0|t|i|p|b|f
24|regproc|1008|4|N|0|t|i|p|b|f
25|text|1009|-1|S|0|f|i|x|b|t
26|oid|1028|4|N|0|t|i|p|b|t
28|xid|1011|4|U|0|t|i|p|b|f
29|cid|1012|4|U|0|t|i|p|b|f
30|oidvector|1013|-1|A|26|f|i|p|b|f
114|json|199|-1|U|0|f|i|x|b|f
142|xml|143|-1|U|0|f|i|x|b|f
143|_xml|0|-1|A|142|f|i|x|b|f
194|pg_node_tree|0|-1|Z|0|f|i|x|b|f
199|_json|0|-1|A|114|f|i|x|b|f
700|float4|1021|4|N|0|t|i|p|b|f
701|float8|1022|8|N|0|t|d|p|b|t
705|unknown|0|-2|X|0|f|c|p|p|f
1000|_bool|0|-1|A|16|f|i|x|b|f
1001|_bytea|0|-1|A|17|f|i|x|b|f
1002|_char|0|-1|A|18|f|i|x|b|f
1003|_name|0|-1|A|19|f|i|x|b|f
1005|_int2|0|-1|A|21|f|i|x|b|f
1006|_int2vector|0|-1|A|22|f|i|x|b|f
1007|_int4|0|-1|A|23|f|i|x|b|f
1008|_regproc|0|-1|A|24|f|i|x|b|f
1009|_text|0|-1|A|25|f|i|x|b|f
1011|_xid|0|-1|A|28|f|i|x|b|f
1012|_cid|0|-1|A|29|f|i|x|b|f
1013|_oidvector|0|-1|A|30|f|i|x|b|f
1014|_bpchar|0|-1|A|1042|f|i|x|b|f
1015|_varchar|0|-1|A|1043|f|i|x|b|f
1016|_int8|0|-1|A|20|f|d|x|b|f
1021|_float4|0|-1|A|700|f|i|x|b|f
1022|_float8|0|-1|A|701|f|d|x|b|f
1028|_oid|0|-1|A|26|f|i|x|b|f
1033|aclitem|1034|12|U|0|f|i|p|b|f
1034|_aclitem|0|-1|A|1033|f|i|x|b|f
1042|bpchar|1014|-1|S|0|f|i|x|b|f
1043|varchar|1015|-1|S|0|f|i|x|b|f
1082|date|1182|4|D|0|t|i|p|b|f
1083|time|1183|8|D|0|t|d|p|b|f
1114|timestamp|1115|8|D|0|t|d|p|b|f
1115|_timestamp|0|-1|A|1114|f|d|x|b|f
1182|_date|0|-1|A|1082|f|i|x|b|f
1183|_time|0|-1|A|1083|f|d|x|b|f
1184|timestamptz|1185|8|D|0|t|d|p|b|t
1185|_timestamptz|0|-1|A|1184|f|d|x|b|f
1186|interval|1187|16|T|0|f|d|p|b|t
1187|_interval|0|-1|A|1186|f|d|x|b|f
1231|_numeric|0|-1|A|1700|f|i|x|b|f
1263|_cstring|0|-1|A|2275|f|i|x|b|f
1266|timetz|1270|12|D|0|f|d|p|b|f
1270|_timetz|0|-1|A|1266|f|d|x|b|f
1700|numeric|1231|-1|N|0|f|i|m|b|f
1790|refcursor|2201|-1|U|0|f|i|x|b|f
2201|_refcursor|0|-1|A|1790|f|i|x|b|f
2202|regprocedure|2207|4|N|0|t|i|p|b|f
2203|regoper|2208|4|N|0|t|i|p|b|f
2204|regoperator|2209|4|N|0|t|i|p|b|f
2205|regclass|2210|4|N|0|t|i|p|b|f
2206|regtype|2211|4|N|0|t|i|p|b|f
2207|_regprocedure|0|-1|A|2202|f|i|x|b|f
2208|_regoper|0|-1|A|2203|f|i|x|b|f
2209|_regoperator|0|-1|A|2204|f|i|x|b|f
2210|_regclass|0|-1|A|2205|f|i|x|b|f
2211|_regtype|0|-1|A|2206|f|i|x|b|f
2249|record|2287|-1|P|0|f|d|x|p|f
2275|cstring|1263|-2|P|0|f|c|p|p|f
2276|any|0|4|P|0|t|i|p|p|f
2277|anyarray|0|-1|P|0|f|d|x|p|f
2278|void|0|4|P|0|t|i|p|p|f
2279|trigger|0|4|P|0|t|i|p|p|f
2281|internal|0|8|P|0|t|d|p|p|f
2283|anyelement|0|4|P|0|t|i|p|p|f
2287|_record|0|-1|P|2249|f|d|x|p|f
2776|anynonarray|0|4|P|0|t|i|p|p|f
2950|uuid|2951|16|U|0|f|c|p|b|f
2951|_uuid|0|-1|A|2950|f|i|x|b|f
3500|anyenum|0|4|P|0|t|i|p|p|f
3734|regconfig|3735|4|N|0|t|i|p|b|f
3735|_regconfig|0|-1|A|3734|f|i|x|b|f
3769|regdictionary|3770|4|N|0|t|i|p|b|f
3770|_regdictionary|0|-1|A|3769|f|i|x|b|f
3802|jsonb|3807|-1|U|0|f|i|x|b|f
3807|_jsonb|0|-1|A|3802|f|i|x|b|f
3838|event_trigger|0|4|P|0|t|i|p|p|f
4089|regnamespace|4090|4|N|0|t|i|p|b|f
4090|_regnamespace|0|-1|A|4089|f|i|x|b|f
4096|regrole|4097|4|N|0|t|i|p|b|f
4097|_regrole|0|-1|A|4096|f|i|x|b|f
4191|regcollation|4192|4|N|0|t|i|p|b|f
4192|_regcollation|0|-1|A|4191|f|i|x|b|f
5077|anycompatible|0|4|P|0|t|i|p|p|f
5078|anycompatiblearray|0|-1|P|0|f|d|x|p|f
"""
PG_TYPE_FUNCTIONS = """
16|boolin|boolout|boolrecv|boolsend
17|byteain|byteaout|bytearecv|byteasend
18|charin|charout|charrecv|charsend
19|namein|nameout|namerecv|namesend
20|int8in|int8out|int8recv|int8send
21|int2in|int2out|int2recv|int2send
22|int2vectorin|int2vectorout|int2vectorrecv|int2vectorsend
23|int4in|int4out|int4recv|int4send
24|regprocin|regprocout|regprocrecv|regprocsend
25|textin|textout|textrecv|textsend
26|oidin|oidout|oidrecv|oidsend
28|xidin|xidout|xidrecv|xidsend
29|cidin|cidout|cidrecv|cidsend
30|oidvectorin|oidvectorout|oidvectorrecv|oidvectorsend
114|json_in|json_out|json_recv|json_send
142|xml_in|xml_out|xml_recv|xml_send
143|array_in|array_out|array_recv|array_send
194|pg_node_tree_in|pg_node_tree_out|pg_node_tree_recv|pg_node_tree_send
199|array_in|array_out|array_recv|array_send
700|float4in|float4out|float4recv|float4send
701|float8in|float8out|float8recv|float8send
705|unknownin|unknownout|unknownrecv|unknownsend
1000|array_in|array_out|array_recv|array_send
1001|array_in|array_out|array_recv|array_send
1002|array_in|array_out|array_recv|array_send
1003|array_in|array_out|array_recv|array_send
1005|array_in|array_out|array_recv|array_send
1006|array_in|array_out|array_recv|array_send
1007|array_in|array_out|array_recv|array_send
1008|array_in|array_out|array_recv|array_send
1009|array_in|array_out|array_recv|array_send
1011|array_in|array_out|array_recv|array_send
1012|array_in|array_out|array_recv|array_send
1013|array_in|array_out|array_recv|array_send
1014|array_in|array_out|array_recv|array_send
1015|array_in|array_out|array_recv|array_send
1016|array_in|array_out|array_recv|array_send
1021|array_in|array_out|array_recv|array_send
1022|array_in|array_out|array_recv|array_send
1028|array_in|array_out|array_recv|array_send
1033|aclitemin|aclitemout|-|-
1034|array_in|array_out|array_recv|array_send
1042|bpcharin|bpcharout|bpcharrecv|bpcharsend
1043|varcharin|varcharout|varcharrecv|varcharsend
1082|date_in|date_out|date_recv|date_send
1083|time_in|time_out|time_recv|time_send
1114|timestamp_in|timestamp_out|timestamp_recv|timestamp_send
1115|array_in|array_out|array_recv|array_send
1182|array_in|array_out|array_recv|array_send
1183|array_in|array_out|array_recv|array_send
1184|timestamptz_in|timestamptz_out|timestamptz_recv|timestamptz_send
1185|array_in|array_out|array_recv|array_send
1186|interval_in|interval_out|interval_recv|interval_send
1187|array_in|array_out|array_recv|array_send
1231|array_in|array_out|array_recv|array_send
1263|array_in|array_out|array_recv|array_send
1266|timetz_in|timetz_out|timetz_recv|timetz_send
1270|array_in|array_out|array_recv|array_send
1700|numeric_in|numeric_out|numeric_recv|numeric_send
1790|textin|textout|textrecv|textsend
2201|array_in|array_out|array_recv|array_send
2202|regprocedurein|regprocedureout|regprocedurerecv|regproceduresend
2203|regoperin|regoperout|regoperrecv|regopersend
2204|regoperatorin|regoperatorout|regoperatorrecv|regoperatorsend
2205|regclassin|regclassout|regclassrecv|regclasssend
2206|regtypein|regtypeout|regtyperecv|regtypesend
2207|array_in|array_out|array_recv|array_send
2208|array_in|array_out|array_recv|array_send
2209|array_in|array_out|array_recv|array_send
2210|array_in|array_out|array_recv|array_send
2211|array_in|array_out|array_recv|array_send
2249|record_in|record_out|record_recv|record_send
2275|cstring_in|cstring_out|cstring_recv|cstring_send
2276|any_in|any_out|-|-
2277|anyarray_in|anyarray_out|anyarray_recv|anyarray_send
2278|void_in|void_out|void_recv|void_send
2279|trigger_in|trigger_out|-|-
2281|internal_in|internal_out|-|-
2283|anyelement_in|anyelement_out|-|-
2287|array_in|array_out|array_recv|array_send
2776|anynonarray_in|anynonarray_out|-|-
2950|uuid_in|uuid_out|uuid_recv|uuid_send
2951|array_in|array_out|array_recv|array_send
3500|anyenum_in|anyenum_out|-|-
3734|regconfigin|regconfigout|regconfigrecv|regconfigsend
3735|array_in|array_out|array_recv|array_send
3769|regdictionaryin|regdictionaryout|regdictionaryrecv|regdictionarysend
3770|array_in|array_out|array_recv|array_send
3802|jsonb_in|jsonb_out|jsonb_recv|jsonb_send
3807|array_in|array_out|array_recv|array_send
3838|event_trigger_in|event_trigger_out|-|-
4089|regnamespacein|regnamespaceout|regnamespacerecv|regnamespacesend
4090|array_in|array_out|array_recv|array_send
4096|regrolein|regroleout|regrolerecv|regrolesend
4097|array_in|array_out|array_recv|array_send
4191|regcollationin|regcollationout|regcollationrecv|regcollationsend
4192|array_in|array_out|array_recv|array_send
5077|anycompatible_in|anycompatible_out|-|-
5078|anycompatiblearray_in|anycompatiblearray_out|anycompatiblearray_recv|anycompatiblearray_send
"""
PG_TYPE_TYPMOD_FUNCTIONS = """
1014|bpchartypmodin|bpchartypmodout
1015|varchartypmodin|varchartypmodout
1042|bpchartypmodin|bpchartypmodout
1043|varchartypmodin|varchartypmodout
1083|timetypmodin|timetypmodout
1114|timestamptypmodin|timestamptypmodout
1115|timestamptypmodin|timestamptypmodout
1183|timetypmodin|timetypmodout
1184|timestamptztypmodin|timestamptztypmodout
1185|timestamptztypmodin|timestamptztypmodout
1186|intervaltypmodin|intervaltypmodout
1187|intervaltypmodin|intervaltypmodout
1231|numerictypmodin|numerictypmodout
1266|timetztypmodin|timetztypmodout
1270|timetztypmodin|timetztypmodout
1700|numerictypmodin|numerictypmodout
"""
PG_FORMAT_TYPE = """
16|boolean|boolean
17|bytea|bytea
18|"char"|"char"
19|name|name
20|bigint|bigint
21|smallint|smallint
22|int2vector|int2vector
23|integer|integer
24|regproc|regproc
25|text|text
26|oid|oid
28|xid|xid
29|cid|cid
30|oidvector|oidvector
114|json|json
142|xml|xml
143|xml[]|xml[]
194|pg_node_tree|pg_node_tree
199|json[]|json[]
700|real|real
701|double precision|double precision
705|unknown|unknown
1000|boolean[]|boolean[]
1001|bytea[]|bytea[]
1002|"char"[]|"char"[]
1003|name[]|name[]
1005|smallint[]|smallint[]
1006|int2vector[]|int2vector[]
1007|integer[]|integer[]
1008|regproc[]|regproc[]
1009|text[]|text[]
1011|xid[]|xid[]
1012|cid[]|cid[]
1013|oidvector[]|oidvector[]
1014|character[]|bpchar[]
1015|character varying[]|character varying[]
1016|bigint[]|bigint[]
1021|real[]|real[]
1022|double precision[]|double precision[]
1028|oid[]|oid[]
1033|aclitem|aclitem
1034|aclitem[]|aclitem[]
1042|character|bpchar
1043|character varying|character varying
1082|date|date
1083|time without time zone|time without time zone
1114|timestamp without time zone|timestamp without time zone
1115|timestamp without time zone[]|timestamp without time zone[]
1182|date[]|date[]
1183|time without time zone[]|time without time zone[]
1184|timestamp with time zone|timestamp with time zone
1185|timestamp with time zone[]|timestamp with time zone[]
1186|interval|interval
1187|interval[]|interval[]
1231|numeric[]|numeric[]
1263|cstring[]|cstring[]
1266|time with time zone|time with time zone
1270|time with time zone[]|time with time zone[]
1700|numeric|numeric
1790|refcursor|refcursor
2201|refcursor[]|refcursor[]
2202|regprocedure|regprocedure
2203|regoper|regoper
2204|regoperator|regoperator
2205|regclass|regclass
2206|regtype|regtype
2207|regprocedure[]|regprocedure[]
2208|regoper[]|regoper[]
2209|regoperator[]|regoperator[]
2210|regclass[]|regclass[]
2211|regtype[]|regtype[]
2249|record|record
2275|cstring|cstring
2276|"any"|"any"
2277|anyarray|anyarray
2278|void|void
2279|trigger|trigger
2281|internal|internal
2283|anyelement|anyelement
2287|record[]|record[]
2776|anynonarray|anynonarray
2950|uuid|uuid
2951|uuid[]|uuid[]
3500|anyenum|anyenum
3734|regconfig|regconfig
3735|regconfig[]|regconfig[]
3769|regdictionary|regdictionary
3770|regdictionary[]|regdictionary[]
3802|jsonb|jsonb
3807|jsonb[]|jsonb[]
3838|event_trigger|event_trigger
4089|regnamespace|regnamespace
4090|regnamespace[]|regnamespace[]
4096|regrole|regrole
4097|regrole[]|regrole[]
4191|regcollation|regcollation
4192|regcollation[]|regcollation[]
5077|anycompatible|anycompatible
5078|anycompatiblearray|anycompatiblearray
"""
WIRE_CASES = [
    ("bool", "true", "t", "01"),
    ("bool", "false", "f", "00"),
    ("bool", " YES ", "t", "01"),
    ("bool", "of", "f", "00"),
    ("int2", "0", "0", "0000"),
    ("int2", "-32768", "-32768", "8000"),
    ("int2", "32767", "32767", "7fff"),
    ("int2", " 42 ", "42", "002a"),
    ("int4", "42", "42", "0000002a"),
    ("int4", "-2147483648", "-2147483648", "80000000"),
    ("int4", "2147483647", "2147483647", "7fffffff"),
    ("int4", "+7", "7", "00000007"),
    ("int8", "9223372036854775807", "9223372036854775807", "7fffffffffffffff"),
    ("int8", "-9223372036854775808", "-9223372036854775808", "8000000000000000"),
    ("int8", "42", "42", "000000000000002a"),
    ("float4", "0.1", "0.1", "3dcccccd"),
    ("float4", "1e6", "1e+06", "49742400"),
    ("float4", "100000", "100000", "47c35000"),
    ("float4", "-0", "-0", "80000000"),
    ("float4", "NaN", "NaN", "7fc00000"),
    ("float4", "Infinity", "Infinity", "7f800000"),
    ("float4", "-Infinity", "-Infinity", "ff800000"),
    ("float4", "3.4028235e38", "3.4028235e+38", "7f7fffff"),
    ("float4", "1.17549435e-38", "1.1754944e-38", "00800000"),
    ("float4", "1e-45", "1e-45", "00000001"),
    ("float4", "123456.7", "123456.7", "47f1205a"),
    ("float4", "0.0001", "0.0001", "38d1b717"),
    ("float4", "1.5e-5", "1.5e-05", "377ba882"),
    ("float4", "1", "1", "3f800000"),
    ("float4", "16777217", "1.6777216e+07", "4b800000"),
    ("float4", "0.3333333333", "0.33333334", "3eaaaaab"),
    ("float8", "0.1", "0.1", "3fb999999999999a"),
    ("float8", "1e15", "1e+15", "430c6bf526340000"),
    ("float8", "1e14", "100000000000000", "42d6bcc41e900000"),
    ("float8", "123456789012345678", "1.2345678901234568e+17", "437b69b4ba630f35"),
    ("float8", "-0", "-0", "8000000000000000"),
    ("float8", "NaN", "NaN", "7ff8000000000000"),
    ("float8", "Infinity", "Infinity", "7ff0000000000000"),
    ("float8", "-Infinity", "-Infinity", "fff0000000000000"),
    ("float8", "5e-324", "5e-324", "0000000000000001"),
    ("float8", "1.7976931348623157e308", "1.7976931348623157e+308", "7fefffffffffffff"),
    ("float8", "0.0001", "0.0001", "3f1a36e2eb1c432d"),
    ("float8", "1.5e-05", "1.5e-05", "3eef75104d551d69"),
    ("float8", "3.141592653589793", "3.141592653589793", "400921fb54442d18"),
    ("float8", "1e16", "1e+16", "4341c37937e08000"),
    ("float8", "100", "100", "4059000000000000"),
    ("float8", "-2.5", "-2.5", "c004000000000000"),
    ("float8", "1e-5", "1e-05", "3ee4f8b588e368f1"),
    ("float8", "0.00001234", "1.234e-05", "3ee9e0fcaf9380fc"),
    ("float8", "123.456e10", "1234560000000", "4271f7182a000000"),
    ("numeric", "123.4500", "123.4500", "0002000000000004007b1194"),
    ("numeric", "0", "0", "0000000000000000"),
    ("numeric", "0.00", "0.00", "0000000000000002"),
    ("numeric", "-0.00", "0.00", "0000000000000002"),
    ("numeric", "NaN", "NaN", "00000000c0000000"),
    ("numeric", "Infinity", "Infinity", "00000000d0000020"),
    ("numeric", "-Infinity", "-Infinity", "00000000f0000020"),
    ("numeric", "1e3", "1000", "000100000000000003e8"),
    ("numeric", "1.5e-3", "0.0015", "0001ffff00000004000f"),
    (
        "numeric",
        "-123456789.987654321",
        "-123456789.987654321",
        "0006000240000009000109291a852694153803e8",
    ),
    ("numeric", "10000", "10000", "00010001000000000001"),
    ("numeric", "0.0001", "0.0001", "0001ffff000000040001"),
    ("numeric", "1e-20", "0.00000000000000000001", "0001fffb000000140001"),
    ("numeric", "99999999", "99999999", "0002000100000000270f270f"),
    ("numeric", "-1", "-1", "00010000400000000001"),
    (
        "numeric",
        "12345678901234567890.123",
        "12345678901234567890.123",
        "000600040000000304d2162e23340d801ed204ce",
    ),
    ("numeric", "1.50e1", "15.0", "0001000000000001000f"),
    ("numeric", " .5 ", "0.5", "0001ffff000000011388"),
    ("numeric", "5.", "5", "00010000000000000005"),
    ("numeric", "-0.000001", "-0.000001", "0001fffe400000060064"),
    ("text", "hello", "hello", "68656c6c6f"),
    ("text", "", "", ""),
    ("text", "a b", "a b", "612062"),
    ("text", "é€😀", "é€😀", "c3a9e282acf09f9880"),
    ("varchar", "abc", "abc", "616263"),
    ("bpchar", "ab", "ab", "6162"),
    ("char(3)", "ab", "ab ", "616220"),
    ("name", "pg_catalog", "pg_catalog", "70675f636174616c6f67"),
    ('"char"', "a", "a", "61"),
    ('"char"', "\\303", "\\303", "c3"),
    ('"char"', "", "", "00"),
    ("bytea", "\\x0102ff", "\\x0102ff", "0102ff"),
    ("bytea", "", "\\x", ""),
    ("bytea", "abc\\000\\\\", "\\x616263005c", "616263005c"),
    ("bytea", "\\x 01 02", "\\x0102", "0102"),
    ("date", "2024-01-02", "2024-01-02", "0000223f"),
    ("date", "2000-01-01", "2000-01-01", "00000000"),
    ("date", "1999-12-31", "1999-12-31", "ffffffff"),
    ("date", "0001-01-01", "0001-01-01", "fff4dbf9"),
    ("date", "9999-12-31", "9999-12-31", "002c95d3"),
    ("date", "infinity", "infinity", "7fffffff"),
    ("date", "-infinity", "-infinity", "80000000"),
    ("date", "epoch", "1970-01-01", "ffffd533"),
    ("date", "01/02/2024", "2024-01-02", "0000223f"),
    ("date", "20240102", "2024-01-02", "0000223f"),
    ("time", "03:04:05.5", "03:04:05.5", "00000002925cf460"),
    ("time", "00:00:00", "00:00:00", "0000000000000000"),
    ("time", "24:00:00", "24:00:00", "000000141dd76000"),
    ("time", "23:59:59.999999", "23:59:59.999999", "000000141dd75fff"),
    ("time", "03:04", "03:04:00", "0000000292090800"),
    ("time", "2024-01-02 03:04:05", "03:04:05", "0000000292555340"),
    ("time", "03:04:05+02", "03:04:05", "0000000292555340"),
    ("timetz", "03:04:05.5+02", "03:04:05.5+02", "00000002925cf460ffffe3e0"),
    ("timetz", "03:04:05-05:30", "03:04:05-05:30", "000000029255534000004d58"),
    ("timetz", "00:00:00+00", "00:00:00+00", "000000000000000000000000"),
    ("timetz", "12:00", "12:00:00+00", "0000000a0eebb00000000000"),
    ("timetz", "03:04:05.25+05:30:15", "03:04:05.25+05:30:15", "00000002925923d0ffffb299"),
    ("timestamp", "2024-01-02 03:04:05.5", "2024-01-02 03:04:05.5", "0002b0ec851d9460"),
    ("timestamp", "2000-01-01 00:00:00", "2000-01-01 00:00:00", "0000000000000000"),
    ("timestamp", "0001-01-01 00:00:00", "0001-01-01 00:00:00", "ff1fe2ffc59c6000"),
    ("timestamp", "9999-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999", "0380e70b913b7fff"),
    ("timestamp", "infinity", "infinity", "7fffffffffffffff"),
    ("timestamp", "-infinity", "-infinity", "8000000000000000"),
    ("timestamp", "1970-01-01", "1970-01-01 00:00:00", "fffca2fec4c82000"),
    ("timestamp", "2024-01-02T03:04:05.123456", "2024-01-02 03:04:05.123456", "0002b0ec8517d580"),
    ("timestamp", "2024-01-02 03:04:05+02", "2024-01-02 03:04:05", "0002b0ec8515f340"),
    ("timestamp", "1999-12-31 23:59:59.9999995", "2000-01-01 00:00:00", "0000000000000000"),
    ("timestamp", "epoch", "1970-01-01 00:00:00", "fffca2fec4c82000"),
    ("timestamptz", "2024-01-02 03:04:05.5+00", "2024-01-02 03:04:05.5+00", "0002b0ec851d9460"),
    ("timestamptz", "2024-01-02 03:04:05+02", "2024-01-02 01:04:05+00", "0002b0ead7eeab40"),
    (
        "timestamptz",
        "2024-01-02 03:04:05.25-05:30",
        "2024-01-02 08:34:05.25+00",
        "0002b0f12145c9d0",
    ),
    ("timestamptz", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05+00", "0002b0ec8515f340"),
    ("timestamptz", "2024-01-02 03:04:05 UTC", "2024-01-02 03:04:05+00", "0002b0ec8515f340"),
    ("timestamptz", "2024-01-02 03:04:05", "2024-01-02 03:04:05+00", "0002b0ec8515f340"),
    ("timestamptz", "infinity", "infinity", "7fffffffffffffff"),
    ("timestamptz", "0001-01-01 00:00:00+00", "0001-01-01 00:00:00+00", "ff1fe2ffc59c6000"),
    ("timestamptz", "2024-01-02 03:04:05+0530", "2024-01-01 21:34:05+00", "0002b0e7e8e9ed40"),
    (
        "interval",
        "1 year 2 mons 3 days 04:05:06.5",
        "1 year 2 mons 3 days 04:05:06.5",
        "000000036c9361a0000000030000000e",
    ),
    ("interval", "0", "00:00:00", "00000000000000000000000000000000"),
    ("interval", "-1 days", "-1 days", "0000000000000000ffffffff00000000"),
    ("interval", "1 day -01:00:00", "1 day -01:00:00", "ffffffff296c5c000000000100000000"),
    (
        "interval",
        "-1 year -2 mons +3 days -04:05:06",
        "-1 years -2 mons +3 days -04:05:06",
        "fffffffc93743f8000000003fffffff2",
    ),
    ("interval", "3 hours", "03:00:00", "0000000283baec000000000000000000"),
    ("interval", "1.5 days", "1 day 12:00:00", "0000000a0eebb0000000000100000000"),
    ("interval", "1.5 months", "1 mon 15 days", "00000000000000000000000f00000001"),
    ("interval", "@ 1 day ago", "-1 days", "0000000000000000ffffffff00000000"),
    (
        "interval",
        "P1Y2M3DT4H5M6.5S",
        "1 year 2 mons 3 days 04:05:06.5",
        "000000036c9361a0000000030000000e",
    ),
    ("interval", "-00:00:00.5", "-00:00:00.5", "fffffffffff85ee00000000000000000"),
    ("interval", "100 years", "100 years", "000000000000000000000000000004b0"),
    ("interval", "10 minutes 5 seconds", "00:10:05", "00000000240f91400000000000000000"),
    ("interval", "1 week", "7 days", "00000000000000000000000700000000"),
    ("interval", "1 mon", "1 mon", "00000000000000000000000000000001"),
    ("interval", "-1 mon", "-1 mons", "000000000000000000000000ffffffff"),
    ("interval", "1 day 1 hour", "1 day 01:00:00", "00000000d693a4000000000100000000"),
    ("interval", "-1 day +1 hour", "-1 days +01:00:00", "00000000d693a400ffffffff00000000"),
    ("interval", "5", "00:00:05", "00000000004c4b400000000000000000"),
    ("interval", "1.5 years", "1 year 6 mons", "00000000000000000000000000000012"),
    ("interval", "2 hours 30 minutes ago", "-02:30:00", "fffffffde78ee6000000000000000000"),
    ("interval", "1 millisecond", "00:00:00.001", "00000000000003e80000000000000000"),
    ("interval", "1 microsecond", "00:00:00.000001", "00000000000000010000000000000000"),
    ("interval", "PT0S", "00:00:00", "00000000000000000000000000000000"),
    (
        "interval",
        "P-1Y-2M3DT-4H-5M-6.5S",
        "-1 years -2 mons +3 days -04:05:06.5",
        "fffffffc936c9e6000000003fffffff2",
    ),
    ("interval", "1 decade", "10 years", "00000000000000000000000000000078"),
    ("interval", "1 century", "100 years", "000000000000000000000000000004b0"),
    ("interval", "-1 day -02:00:00", "-1 days -02:00:00", "fffffffe52d8b800ffffffff00000000"),
    ("interval", "25:00:00", "25:00:00", "00000014f46b04000000000000000000"),
    ("interval", "1:2:3", "01:02:03", "00000000dde878c00000000000000000"),
    (
        "uuid",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
    ),
    (
        "uuid",
        "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
    ),
    (
        "uuid",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
    ),
    (
        "uuid",
        "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
    ),
    ("json", '{"b":1,"a":2}', '{"b":1,"a":2}', "7b2262223a312c2261223a327d"),
    ("json", '[1, 2.50, "x"]', '[1, 2.50, "x"]', "5b312c20322e35302c202278225d"),
    ("json", ' {"a" : 1 } ', ' {"a" : 1 } ', "207b226122203a2031207d20"),
    (
        "jsonb",
        '{"b":1,"a":2,"aa":3,"a":4}',
        '{"a": 4, "b": 1, "aa": 3}',
        "017b2261223a20342c202262223a20312c20226161223a20337d",
    ),
    (
        "jsonb",
        '[1, 2.50, 1e2, -0, "x\\n\\u001f\\"\\\\/"]',
        '[1, 2.50, 100, 0, "x\\n\\u001f\\"\\\\/"]',
        ("015b312c20322e35302c203130302c20302c2022785c6e5c75303031665c225c5c2f225d"),
    ),
    (
        "jsonb",
        '{"key": {"nested": [true, false, null]}}',
        '{"key": {"nested": [true, false, null]}}',
        ("017b226b6579223a207b226e6573746564223a205b747275652c2066616c73652c206e756c6c5d7d7d"),
    ),
    ("jsonb", '"é"', '"é"', "0122c3a922"),
    ("jsonb", "1.0E+2", "100", "01313030"),
    ("jsonb", "{}", "{}", "017b7d"),
    ("jsonb", "[]", "[]", "015b5d"),
    (
        "jsonb",
        '{"bb": 1, "a": 2, "c": 3, "é": 4, "z": 5}',
        '{"a": 2, "c": 3, "z": 5, "bb": 1, "é": 4}',
        ("017b2261223a20322c202263223a20332c20227a223a20352c20226262223a20312c2022c3a9223a20347d"),
    ),
    ("jsonb", '"\\u00e9\\ud83d\\ude00"', '"é😀"', "0122c3a9f09f988022"),
    ("jsonb", "-1.5e-3", "-0.0015", "012d302e30303135"),
    (
        "jsonb",
        '{"a":{"b":1,"a":2}}',
        '{"a": {"a": 2, "b": 1}}',
        "017b2261223a207b2261223a20322c202262223a20317d7d",
    ),
    ("jsonb", '"\\/"', '"/"', "01222f22"),
    ("oid", "0", "0", "00000000"),
    ("oid", "4294967295", "4294967295", "ffffffff"),
    ("oid", "-1", "4294967295", "ffffffff"),
    ("oid", "42", "42", "0000002a"),
    ("xid", "42", "42", "0000002a"),
    ("cid", "7", "7", "00000007"),
    ("regtype", "integer", "integer", "00000017"),
    ("regtype", "23", "integer", "00000017"),
    ("regtype", "character varying[]", "character varying[]", "000003f7"),
    ("regtype", "-", "-", "00000000"),
    ("regnamespace", "pg_catalog", "pg_catalog", "0000000b"),
    ("regnamespace", "public", "public", "00000898"),
    ("regclass", "999999", "999999", "000f423f"),
    ("regclass", "-", "-", "00000000"),
    ("regproc", "-", "-", "00000000"),
    ("regproc", "999999", "999999", "000f423f"),
    (
        "int2vector",
        "1 2 3",
        "1 2 3",
        ("0000000100000000000000150000000300000000000000020001000000020002000000020003"),
    ),
    ("int2vector", "", "", "0000000100000000000000150000000000000000"),
    ("int2vector", " 7 ", "7", "0000000100000000000000150000000100000000000000020007"),
    (
        "oidvector",
        "23 25",
        "23 25",
        ("00000001000000000000001a000000020000000000000004000000170000000400000019"),
    ),
    ("oidvector", "", "", "00000001000000000000001a0000000000000000"),
    (
        "int4[]",
        "{1,NULL,3}",
        "{1,NULL,3}",
        ("00000001000000010000001700000003000000010000000400000001ffffffff0000000400000003"),
    ),
    ("int4[]", "{}", "{}", "000000000000000000000017"),
    (
        "int4[]",
        "{{1,2},{3,4}}",
        "{{1,2},{3,4}}",
        (
            "0000000200000000000000170000000200000001000000020000000100000004"
            "00000001000000040000000200000004000000030000000400000004"
        ),
    ),
    (
        "int4[]",
        "{ 1 , 2 }",
        "{1,2}",
        ("000000010000000000000017000000020000000100000004000000010000000400000002"),
    ),
    (
        "int4[]",
        "[1:2]={5,6}",
        "{5,6}",
        ("000000010000000000000017000000020000000100000004000000050000000400000006"),
    ),
    (
        "int8[]",
        "{1,-9223372036854775808}",
        "{1,-9223372036854775808}",
        (
            "0000000100000000000000140000000200000001000000080000000000000001"
            "000000088000000000000000"
        ),
    ),
    (
        "int2[]",
        "{1,2}",
        "{1,2}",
        "0000000100000000000000150000000200000001000000020001000000020002",
    ),
    (
        "text[]",
        '{"a b","x\\"y",NULL,"NULL","","back\\\\slash","{}",",",abc,"null"}',
        '{"a b","x\\"y",NULL,"NULL","","back\\\\slash","{}",",",abc,"null"}',
        (
            "0000000100000001000000190000000a00000001000000036120620000000378"
            "2279ffffffff000000044e554c4c000000000000000a6261636b5c736c617368"
            "000000027b7d000000012c00000003616263000000046e756c6c"
        ),
    ),
    (
        "text[]",
        '{"  lead"," ", "\t"}',
        '{"  lead"," ","\t"}',
        ("00000001000000000000001900000003000000010000000620206c65616400000001200000000109"),
    ),
    (
        "text[]",
        "{ab c , de}",
        '{"ab c",de}',
        ("00000001000000000000001900000002000000010000000461622063000000026465"),
    ),
    ("text[]", '{"é"}', "{é}", "000000010000000000000019000000010000000100000002c3a9"),
    (
        "varchar(5)[]",
        '{abc,"d e"}',
        '{abc,"d e"}',
        ("00000001000000000000041300000002000000010000000361626300000003642065"),
    ),
    (
        "numeric[]",
        "{1.50,NaN,-0.001}",
        "{1.50,NaN,-0.001}",
        (
            "0000000100000000000006a400000003000000010000000c0002000000000002"
            "000113880000000800000000c00000000000000a0001ffff40000003000a"
        ),
    ),
    (
        "bool[]",
        "{t,f,NULL}",
        "{t,f,NULL}",
        ("000000010000000100000010000000030000000100000001010000000100ffffffff"),
    ),
    (
        "bytea[]",
        '{"\\\\x01ff",NULL}',
        '{"\\\\x01ff",NULL}',
        "00000001000000010000001100000002000000010000000201ffffffffff",
    ),
    (
        "float8[]",
        "{1.5,NaN,Infinity,-Infinity,0.1}",
        "{1.5,NaN,Infinity,-Infinity,0.1}",
        (
            "0000000100000000000002bd0000000500000001000000083ff8000000000000"
            "000000087ff8000000000000000000087ff000000000000000000008fff00000"
            "00000000000000083fb999999999999a"
        ),
    ),
    (
        "float4[]",
        "{1.5,0.1}",
        "{1.5,0.1}",
        ("0000000100000000000002bc0000000200000001000000043fc00000000000043dcccccd"),
    ),
    (
        "timestamptz[]",
        '{"2024-01-02 03:04:05.5+00",infinity}',
        '{"2024-01-02 03:04:05.5+00",infinity}',
        (
            "0000000100000000000004a00000000200000001000000080002b0ec851d9460"
            "000000087fffffffffffffff"
        ),
    ),
    (
        "timestamp[]",
        '{"2024-01-02 03:04:05"}',
        '{"2024-01-02 03:04:05"}',
        "00000001000000000000045a0000000100000001000000080002b0ec8515f340",
    ),
    (
        "date[]",
        "{2024-01-02,NULL}",
        "{2024-01-02,NULL}",
        "00000001000000010000043a0000000200000001000000040000223fffffffff",
    ),
    (
        "time[]",
        "{03:04:05}",
        "{03:04:05}",
        "00000001000000000000043b0000000100000001000000080000000292555340",
    ),
    (
        "interval[]",
        '{"1 day",NULL}',
        '{"1 day",NULL}',
        (
            "0000000100000001000004a20000000200000001000000100000000000000000"
            "0000000100000000ffffffff"
        ),
    ),
    (
        "uuid[]",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        ("000000010000000000000b86000000010000000100000010a0eebc999c0b4ef8bb6d6bb9bd380a11"),
    ),
    (
        "jsonb[]",
        '{"{\\"a\\": 1}","[1, 2]",null}',
        '{"{\\"a\\": 1}","[1, 2]",NULL}',
        (
            "000000010000000100000eda000000030000000100000009017b2261223a2031"
            "7d00000007015b312c20325dffffffff"
        ),
    ),
    (
        "json[]",
        '{"{\\"a\\":1}"}',
        '{"{\\"a\\":1}"}',
        "0000000100000000000000720000000100000001000000077b2261223a317d",
    ),
    (
        "name[]",
        "{pg_catalog,public}",
        "{pg_catalog,public}",
        (
            "00000001000000000000001300000002000000010000000a70675f636174616c"
            "6f67000000067075626c6963"
        ),
    ),
    ('"char"[]', "{a,b}", "{a,b}", "000000010000000000000012000000020000000100000001610000000162"),
    (
        "bpchar[]",
        '{"ab ",c}',
        '{"ab ",c}',
        "0000000100000000000004120000000200000001000000036162200000000163",
    ),
    (
        "oid[]",
        "{23,4294967295}",
        "{23,4294967295}",
        ("00000001000000000000001a0000000200000001000000040000001700000004ffffffff"),
    ),
    (
        "regtype[]",
        "{integer,text}",
        "{integer,text}",
        ("00000001000000000000089e000000020000000100000004000000170000000400000019"),
    ),
    (
        "text[][]",
        "{{a,b},{c,NULL}}",
        "{{a,b},{c,NULL}}",
        (
            "0000000200000001000000190000000200000001000000020000000100000001"
            "6100000001620000000163ffffffff"
        ),
    ),
]
LOOKUP_CASES = [
    ("int", 23, -1, "integer"),
    ("integer", 23, -1, "integer"),
    ("int4", 23, -1, "integer"),
    ("INT4", 23, -1, "integer"),
    ("bigint", 20, -1, "bigint"),
    ("int8", 20, -1, "bigint"),
    ("smallint", 21, -1, "smallint"),
    ("int2", 21, -1, "smallint"),
    ("serial", 23, -1, "integer"),
    ("bigserial", 20, -1, "bigint"),
    ("smallserial", 21, -1, "smallint"),
    ("serial4", 23, -1, "integer"),
    ("serial8", 20, -1, "bigint"),
    ("serial2", 21, -1, "smallint"),
    ("real", 700, -1, "real"),
    ("float4", 700, -1, "real"),
    ("double precision", 701, -1, "double precision"),
    ("float8", 701, -1, "double precision"),
    ("float", 701, -1, "double precision"),
    ("float(24)", 700, -1, "real"),
    ("float(25)", 701, -1, "double precision"),
    ("float(1)", 700, -1, "real"),
    ("float(53)", 701, -1, "double precision"),
    ("numeric", 1700, -1, "numeric"),
    ("numeric(10,2)", 1700, 655366, "numeric(10,2)"),
    ("decimal(10, 2)", 1700, 655366, "numeric(10,2)"),
    ("numeric(5)", 1700, 327684, "numeric(5,0)"),
    ("dec(3,1)", 1700, 196613, "numeric(3,1)"),
    ("decimal", 1700, -1, "numeric"),
    ("text", 25, -1, "text"),
    ("varchar", 1043, -1, "character varying"),
    ("varchar(20)", 1043, 24, "character varying(20)"),
    ("character varying(20)", 1043, 24, "character varying(20)"),
    ("char varying(7)", 1043, 11, "character varying(7)"),
    ("char(3)", 1042, 7, "character(3)"),
    ("character(3)", 1042, 7, "character(3)"),
    ("char", 1042, 5, "character(1)"),
    ("character", 1042, 5, "character(1)"),
    ("bpchar", 1042, -1, "bpchar"),
    ("bpchar(4)", 1042, 8, "character(4)"),
    ("name", 19, -1, "name"),
    ('"char"', 18, -1, '"char"'),
    ("bool", 16, -1, "boolean"),
    ("boolean", 16, -1, "boolean"),
    ("bytea", 17, -1, "bytea"),
    ("date", 1082, -1, "date"),
    ("time", 1083, -1, "time without time zone"),
    ("time(3)", 1083, 3, "time(3) without time zone"),
    ("time without time zone", 1083, -1, "time without time zone"),
    ("time(2) without time zone", 1083, 2, "time(2) without time zone"),
    ("time with time zone", 1266, -1, "time with time zone"),
    ("timetz", 1266, -1, "time with time zone"),
    ("timetz(4)", 1266, 4, "time(4) with time zone"),
    ("time(1) with time zone", 1266, 1, "time(1) with time zone"),
    ("timestamp", 1114, -1, "timestamp without time zone"),
    ("timestamp(3)", 1114, 3, "timestamp(3) without time zone"),
    ("timestamp without time zone", 1114, -1, "timestamp without time zone"),
    ("timestamp(0) without time zone", 1114, 0, "timestamp(0) without time zone"),
    ("timestamptz", 1184, -1, "timestamp with time zone"),
    ("timestamptz(6)", 1184, 6, "timestamp(6) with time zone"),
    ("timestamp with time zone", 1184, -1, "timestamp with time zone"),
    ("timestamp(3) with time zone", 1184, 3, "timestamp(3) with time zone"),
    ("timestamp(9)", 1114, 6, "timestamp(6) without time zone"),
    ("interval", 1186, -1, "interval"),
    ("interval(3)", 1186, 2147418115, "interval(3)"),
    ("interval day", 1186, 589823, "interval day"),
    ("interval year to month", 1186, 458751, "interval year to month"),
    ("interval day to second(3)", 1186, 470286339, "interval day to second(3)"),
    ("interval hour to minute", 1186, 201392127, "interval hour to minute"),
    ("interval minute to second", 1186, 402718719, "interval minute to second"),
    ("interval second(2)", 1186, 268435458, "interval second(2)"),
    ("interval month", 1186, 196607, "interval month"),
    ("interval year", 1186, 327679, "interval year"),
    ("interval hour", 1186, 67174399, "interval hour"),
    ("interval minute", 1186, 134283263, "interval minute"),
    ("interval second", 1186, 268500991, "interval second"),
    ("interval day to hour", 1186, 67698687, "interval day to hour"),
    ("interval day to minute", 1186, 201916415, "interval day to minute"),
    ("interval hour to second", 1186, 469827583, "interval hour to second"),
    ("uuid", 2950, -1, "uuid"),
    ("json", 114, -1, "json"),
    ("jsonb", 3802, -1, "jsonb"),
    ("oid", 26, -1, "oid"),
    ("regclass", 2205, -1, "regclass"),
    ("regtype", 2206, -1, "regtype"),
    ("regproc", 24, -1, "regproc"),
    ("regnamespace", 4089, -1, "regnamespace"),
    ("xml", 142, -1, "xml"),
    ("int4[]", 1007, -1, "integer[]"),
    ("integer[]", 1007, -1, "integer[]"),
    ("text[]", 1009, -1, "text[]"),
    ("_int4", 1007, -1, "integer[]"),
    ("int[][]", 1007, -1, "integer[]"),
    ("int[3]", 1007, -1, "integer[]"),
    ("integer array", 1007, -1, "integer[]"),
    ("integer array[4]", 1007, -1, "integer[]"),
    ("varchar(20)[]", 1015, 24, "character varying(20)[]"),
    ("numeric(10,2)[]", 1231, 655366, "numeric(10,2)[]"),
    ("timestamp(3) with time zone[]", 1185, 3, "timestamp(3) with time zone[]"),
    ("pg_catalog.int4", 23, -1, "integer"),
    ("pg_catalog.varchar(20)", 1043, 24, "character varying(20)"),
    ("pg_catalog.text[]", 1009, -1, "text[]"),
    ('"pg_catalog"."int4"', 23, -1, "integer"),
    ("PG_CATALOG.INT4", 23, -1, "integer"),
    ("pg_catalog.char", 18, -1, '"char"'),
    ("pg_catalog.bpchar", 1042, -1, "bpchar"),
    ("pg_catalog.timestamptz(3)", 1184, 3, "timestamp(3) with time zone"),
    ("pg_catalog.numeric(10,2)", 1700, 655366, "numeric(10,2)"),
    ("Double Precision", 701, -1, "double precision"),
    (" int ", 23, -1, "integer"),
    ("char(3)[]", 1014, 7, "character(3)[]"),
    ("bool[]", 1000, -1, "boolean[]"),
    ("int2vector", 22, -1, "int2vector"),
    ("oidvector", 30, -1, "oidvector"),
    ("_text", 1009, -1, "text[]"),
    ("name[]", 1003, -1, "name[]"),
    ("xid", 28, -1, "xid"),
    ("cid", 29, -1, "cid"),
    ("aclitem", 1033, -1, "aclitem"),
    ('"char"[]', 1002, -1, '"char"[]'),
    ("refcursor", 1790, -1, "refcursor"),
    ("uuid[]", 2951, -1, "uuid[]"),
    ("jsonb[]", 3807, -1, "jsonb[]"),
    ("pg_node_tree", 194, -1, "pg_node_tree"),
    ("regrole", 4096, -1, "regrole"),
    ("regconfig", 3734, -1, "regconfig"),
    ("numeric(5,6)", 1700, 327690, "numeric(5,6)"),
    ("numeric(5,-2)", 1700, 329730, "numeric(5,-2)"),
    ('"int4"', 23, -1, "integer"),
    ("time(7)", 1083, 6, "time(6) without time zone"),
    ("interval(7)", 1186, 2147418118, "interval(6)"),
    ("char(10485760)", 1042, 10485764, "character(10485760)"),
    ("int4 []", 1007, -1, "integer[]"),
    ("timestamp(3)[]", 1115, 3, "timestamp(3) without time zone[]"),
    ("pg_catalog.float8", 701, -1, "double precision"),
]
LOOKUP_PSEUDO = [
    ("record", 2249),
    ("void", 2278),
    ("cstring", 2275),
    ("anyarray", 2277),
    ("trigger", 2279),
    ("unknown", 705),
    ("anyelement", 2283),
    ("internal", 2281),
]
LOOKUP_ERRORS = [
    ("varchar(0)", "22023"),
    ("numeric(1001)", "22023"),
    ("numeric(0)", "22023"),
    ("float(0)", "22023"),
    ("float(54)", "22023"),
    ("int4(3)", "42601"),
    ("foo", "42704"),
    ("int4[", "42601"),
    ("pg_catalog.int", "42704"),
    ('"INT4"', "42704"),
    ("numeric(10,2,3)", "22023"),
    ("varchar(10485761)", "22023"),
    ("double", "42704"),
    ("public.int4", "42704"),
    ("any", "42601"),
]


def _table(text: str) -> list[list[str]]:
    return [line.split("|") for line in text.strip().splitlines()]


def typ(name: str) -> PgType:
    return BY_NAME[name]


def same_value(a: object, b: object) -> bool:
    """Equality where NaN equals NaN and -0.0 differs from 0.0 (storage floats are exact)."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


# --- the registry ------------------------------------------------------------------------------


def test_registry_rows_are_postgresql_15s() -> None:
    rows = _table(PG_TYPE_ROWS)
    assert {int(row[0]) for row in rows} == set(BY_OID)
    for oid, name, array, typlen, category, elem, byval, align, storage, typtype, pref in rows:
        pgtype = BY_OID[int(oid)]
        assert (pgtype.name, pgtype.array_oid, pgtype.typlen) == (name, int(array), int(typlen))
        assert (pgtype.category, pgtype.elem_oid, pgtype.byval) == (
            category,
            int(elem),
            byval == "t",
        )
        assert (pgtype.align, pgtype.storage, pgtype.typtype) == (align, storage, typtype)
        assert pgtype.preferred == (pref == "t")
        assert pgtype.delim == ","
        assert BY_NAME[name] is pgtype


def test_registry_functions_are_postgresql_15s() -> None:
    for oid, typinput, typoutput, typreceive, typsend in _table(PG_TYPE_FUNCTIONS):
        pgtype = BY_OID[int(oid)]
        assert (pgtype.input_fn, pgtype.output_fn) == (typinput, typoutput)
        assert (pgtype.receive_fn, pgtype.send_fn) == (typreceive, typsend)
    with_typmod = {int(row[0]): row[1:] for row in _table(PG_TYPE_TYPMOD_FUNCTIONS)}
    for pgtype in BY_OID.values():
        expected = with_typmod.get(pgtype.oid, ["-", "-"])
        assert [pgtype.modin_fn, pgtype.modout_fn] == expected


@pytest.mark.parametrize(
    ("name", "oid"),
    [
        ("bool", 16), ("bytea", 17), ("char", 18), ("name", 19), ("int8", 20), ("int2", 21),
        ("int2vector", 22), ("int4", 23), ("regproc", 24), ("text", 25), ("oid", 26),
        ("oidvector", 30), ("json", 114), ("xml", 142), ("pg_node_tree", 194),
        ("float4", 700), ("float8", 701), ("unknown", 705), ("aclitem", 1033),
        ("_aclitem", 1034), ("bpchar", 1042), ("varchar", 1043), ("date", 1082),
        ("time", 1083), ("timestamp", 1114), ("timestamptz", 1184), ("interval", 1186),
        ("timetz", 1266), ("numeric", 1700), ("regclass", 2205), ("regtype", 2206),
        ("record", 2249), ("cstring", 2275), ("any", 2276), ("anyarray", 2277),
        ("void", 2278), ("trigger", 2279), ("uuid", 2950), ("jsonb", 3802),
        ("regnamespace", 4089), ("_int4", 1007), ("_text", 1009), ("_int8", 1016),
        ("_bool", 1000), ("_float8", 1022), ("_varchar", 1015), ("_numeric", 1231),
        ("_timestamptz", 1185), ("_uuid", 2951), ("_jsonb", 3807), ("_oid", 1028),
        ("_name", 1003), ("_int2", 1005), ("_char", 1002), ("_bytea", 1001),
        ("_date", 1182), ("_timestamp", 1115), ("_float4", 1021), ("_json", 199),
        ("_bpchar", 1014), ("_time", 1183), ("_interval", 1187), ("_regtype", 2211),
    ],
)  # fmt: skip
def test_the_oids_other_modules_rely_on(name: str, oid: int) -> None:
    assert BY_NAME[name].oid == oid
    assert BY_OID[oid].name == name


def test_arrays_are_told_apart_from_vectors() -> None:
    assert typ("_int4").is_array and typ("_record").is_array
    assert not typ("int2vector").is_array and not typ("oidvector").is_array
    assert not typ("name").is_array  # name has typelem 18 but is no array
    for pgtype in BY_OID.values():
        if pgtype.array_oid:
            assert BY_OID[pgtype.array_oid].elem_oid == pgtype.oid


def test_pg_type_validates_on_construction() -> None:
    with pytest.raises(ValueError):
        PgType(oid=1, name="x", array_oid=0, typlen=0, category="U")
    with pytest.raises(ValueError):
        PgType(oid=1, name="x", array_oid=0, typlen=4, category="U", byval=False)


# --- lookup() and format_type() ----------------------------------------------------------------


@pytest.mark.parametrize(("spelling", "oid", "typmod", "formatted"), LOOKUP_CASES)
def test_lookup_resolves_spellings_as_postgresql_does(
    spelling: str, oid: int, typmod: int, formatted: str
) -> None:
    pgtype, got_typmod = lookup(spelling)
    assert (pgtype.oid, got_typmod) == (oid, typmod)
    assert format_type(oid, typmod) == formatted


@pytest.mark.parametrize(("spelling", "oid"), LOOKUP_PSEUDO)
def test_lookup_resolves_pseudo_types(spelling: str, oid: int) -> None:
    assert lookup(spelling) == (BY_OID[oid], -1)


@pytest.mark.parametrize(("spelling", "sqlstate"), LOOKUP_ERRORS)
def test_lookup_refuses_what_postgresql_refuses(spelling: str, sqlstate: str) -> None:
    with pytest.raises(PgValueError) as caught:
        lookup(spelling)
    assert caught.value.sqlstate == sqlstate


def test_unknown_type_error_names_the_type() -> None:
    with pytest.raises(UnknownTypeError, match=r'type "nosuchtype\[\]" does not exist') as caught:
        lookup("nosuchtype[]")
    assert caught.value.sqlstate == "42704"
    assert isinstance(caught.value, ValueError)
    with pytest.raises(UnknownTypeError):
        lookup("void[]")  # void has no array type


def test_format_type_matches_postgresql_for_every_type() -> None:
    for oid, with_null, with_minus_one in _table(PG_FORMAT_TYPE):
        assert format_type(int(oid), None) == with_null
        assert format_type(int(oid), -1) == with_minus_one
    assert format_type(99999, -1) == "???"
    assert format_type(114, 5) == "json(5)"  # a typmod for a type without typmodout
    assert format_type(23, 5) == "integer"


# --- the SQLite declared type ------------------------------------------------------------------

SUPPORTED = [t for t in BY_OID.values() if t.typtype != "p"]
TYPMODS = {
    "bpchar": [5, 7, 10485764],
    "varchar": [5, 24, 10485764],
    "numeric": [655366, 327684, 329730, 327690, 65536004],
    "time": [0, 3, 6],
    "timetz": [0, 4],
    "timestamp": [0, 3, 6],
    "timestamptz": [0, 6],
    "interval": [2147418115, 589823, 458751, 470286339, 201392127, 268435458, 402718719],
}


def typmods_for(pgtype: PgType) -> list[int]:
    element = BY_OID[pgtype.elem_oid] if pgtype.is_array else pgtype
    return [-1, *TYPMODS.get(element.name, [])]


@given(
    st.sampled_from(SUPPORTED).flatmap(
        lambda t: st.tuples(st.just(t), st.sampled_from(typmods_for(t)))
    )
)
@settings(max_examples=300)
def test_decltype_reads_back_as_the_type_it_declares(case: tuple[PgType, int]) -> None:
    pgtype, typmod = case
    decltype = sqlite_decltype(pgtype, typmod)
    assert type_from_decltype(decltype) == (pgtype, typmod)
    assert type_from_decltype(decltype.lower()) == (pgtype, typmod)


@pytest.mark.parametrize(
    ("pgtype", "typmod", "decltype"),
    [
        (typ("int4"), -1, "INTEGER"), (typ("int8"), -1, "BIGINT"), (typ("int2"), -1, "SMALLINT"),
        (typ("bool"), -1, "BOOL_INT"), (typ("float4"), -1, "REAL"),
        (typ("float8"), -1, "DOUBLE PRECISION"), (typ("numeric"), 655366, "NUMERIC_TEXT(10,2)"),
        (typ("numeric"), -1, "NUMERIC_TEXT"), (typ("varchar"), 24, "VARCHAR(20)"),
        (typ("bpchar"), 7, "BPCHAR(3)"), (typ("text"), -1, "TEXT"), (typ("bytea"), -1, "BYTEA_BLOB"),
        (typ("timestamptz"), 3, "TIMESTAMPTZ_TEXT(3)"), (typ("interval"), -1, "DURATION_TEXT"),
        (typ("interval"), 470286339, "DURATION_DAY_TO_SECOND_TEXT(3)"),
        (typ("_int4"), -1, "ARRAY_TEXT(1007)"), (typ("_varchar"), 24, "ARRAY_TEXT(1015,24)"),
        (typ("uuid"), -1, "UUID_TEXT"), (typ("jsonb"), -1, "JSONB_TEXT"), (typ("oid"), -1, "OID_INT"),
    ],
)  # fmt: skip
def test_decltype_table(pgtype: PgType, typmod: int, decltype: str) -> None:
    assert sqlite_decltype(pgtype, typmod) == decltype


# https://sqlite.org/datatype3.html section 3.1: the affinity SQLite derives from the text.
AFFINITY_PROBES = {"INTEGER": ("12", "integer"), "REAL": ("12", "real"), "TEXT": ("1.10", "text")}


@pytest.mark.parametrize("pgtype", SUPPORTED, ids=lambda t: t.name)
def test_sqlite_gives_each_declared_type_an_affinity_that_keeps_values_exact(
    pgtype: PgType,
) -> None:
    db = apsw.Connection(":memory:")
    decltype = sqlite_decltype(pgtype, -1)
    db.execute(f"CREATE TABLE t (c {decltype})")
    # The text a NUMERIC or INTEGER affinity would rewrite ('1.10' -> 1.1, '123' -> 123)
    # must come back as it went in wherever the storage value is text or bytes.
    db.execute("INSERT INTO t VALUES ('1.10'), ('123'), (X'00ff')")
    stored = [row[0] for row in db.execute("SELECT c FROM t")]
    description = db.execute("SELECT c FROM t").get_description()
    assert type_from_decltype(description[0][1]) == (pgtype, -1)
    if pgtype.name in ("int2", "int4", "int8", "bool") or pgtype.name.startswith("reg"):
        assert stored[1] == 123
    elif pgtype.name in ("float4", "float8"):
        assert stored[1] == 123.0 and isinstance(stored[1], float)
    elif pgtype.name in ("oid", "xid", "cid", "int2vector"):
        assert isinstance(stored[1], int)
    else:
        assert stored[:2] == ["1.10", "123"]
    assert stored[2] == b"\x00\xff"


def test_int4_stays_the_rowid_alias() -> None:
    db = apsw.Connection(":memory:")
    db.execute(f"CREATE TABLE t (id {sqlite_decltype(typ('int4'), -1)} PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t (v) VALUES ('a')")
    assert list(db.execute("SELECT id, rowid FROM t")) == [(1, 1)]


@pytest.mark.parametrize(
    ("decltype", "expected"),
    [
        (None, None), ("", None), ("   ", None), ("INTEGER", ("int4", -1)), ("INT", ("int4", -1)),
        ("int", ("int4", -1)), ("TEXT", ("text", -1)), ("REAL", ("float4", -1)),
        ("BLOB", ("bytea", -1)), ("VARCHAR(10)", ("varchar", 14)),
        ("varchar(10)", ("varchar", 14)), ("BOOLEAN", ("bool", -1)),
        ("DOUBLE", ("float8", -1)), ("FLOAT", ("float8", -1)), ("CLOB", ("text", -1)),
        ("NVARCHAR(100)", ("text", -1)), ("TINYINT", ("int8", -1)),
        ("UNSIGNED BIG INT", ("int8", -1)), ("DATETIME", ("timestamp", -1)),
        ("DATE", ("date", -1)), ("NUMERIC", ("numeric", -1)),
        ("DECIMAL(10,5)", ("numeric", 655369)), ("CHARACTER(20)", ("bpchar", 24)),
        ("timestamp with time zone", ("timestamptz", -1)), ("FOO", None),
        ("ARRAY_TEXT(23)", ("text", -1)), ("ARRAY_TEXT(2287)", ("text", -1)), ("VARCHAR(0)", ("text", -1)),
        ("integer[]", ("_int4", -1)), ("INTERVAL", ("interval", -1)),
    ],
)  # fmt: skip
def test_type_from_plain_sqlite_and_postgresql_spellings(
    decltype: str | None, expected: tuple[str, int] | None
) -> None:
    found = type_from_decltype(decltype)
    assert (None if found is None else (found[0].name, found[1])) == expected


def test_no_decltype_for_pseudo_types_or_impossible_typmods() -> None:
    for name in ("record", "void", "unknown", "cstring", "_record"):
        with pytest.raises(PgValueError) as caught:
            sqlite_decltype(typ(name), -1)
        assert caught.value.sqlstate == "42P16"
    for name, typmod in (("int4", 3), ("varchar", 2), ("numeric", 3), ("timestamp", 7)):
        with pytest.raises(PgValueError) as caught:
            sqlite_decltype(typ(name), typmod)
        assert caught.value.sqlstate == "22023"


# --- known answers: text and binary output byte for byte ----------------------------------------


@pytest.mark.parametrize(("spelling", "literal", "text", "binary_hex"), WIRE_CASES)
def test_wire_formats_match_postgresql(
    spelling: str, literal: str, text: str, binary_hex: str
) -> None:
    """``SELECT $1::<spelling>`` with the literal, in text and in binary result format."""
    pgtype, typmod = lookup(spelling)
    stored = coerce_to_typmod(pgtype, typmod, decode_text(pgtype, literal.encode()))
    assert encode_text(pgtype, stored) == text.encode()
    assert encode_binary(pgtype, stored) == bytes.fromhex(binary_hex)
    received = coerce_to_typmod(pgtype, typmod, decode_binary(pgtype, bytes.fromhex(binary_hex)))
    assert same_value(received, stored)
    assert same_value(decode_text(pgtype, text.encode()), stored)


# SET IntervalStyle = iso_8601: the storage form of an interval is what PostgreSQL prints.
INTERVAL_STORAGE = [
    ("1 year 2 mons 3 days 04:05:06.5", "P1Y2M3DT4H5M6.5S"), ("0", "PT0S"),
    ("-1 days", "P-1D"), ("1 day -01:00:00", "P1DT-1H"),
    ("-1 year -2 mons +3 days -04:05:06", "P-1Y-2M3DT-4H-5M-6S"), ("3 hours", "PT3H"),
    ("1.5 days", "P1DT12H"), ("1.5 months", "P1M15D"), ("@ 1 day ago", "P-1D"),
    ("-00:00:00.5", "PT-0.5S"), ("10 minutes 5 seconds", "PT10M5S"), ("1 week", "P7D"),
    ("-1 day +1 hour", "P-1DT1H"), ("5", "PT5S"), ("1.5 years", "P1Y6M"),
    ("2 hours 30 minutes ago", "PT-2H-30M"), ("1 microsecond", "PT0.000001S"),
    ("P-1Y-2M3DT-4H-5M-6.5S", "P-1Y-2M3DT-4H-5M-6.5S"), ("25:00:00", "PT25H"),
    ("1:2:3", "PT1H2M3S"), ("-1 days -00:00:00.000001", "P-1DT-0.000001S"),
    ("2147483647 days", "P2147483647D"), ("-2147483648 mons", "P-178956970Y-8M"),
    ("2562047788 hours", "PT2562047788H"), ("0.5 seconds ago", "PT-0.5S"),
]  # fmt: skip


@pytest.mark.parametrize(("literal", "iso"), INTERVAL_STORAGE)
def test_interval_storage_is_postgresqls_iso_8601_output(literal: str, iso: str) -> None:
    assert decode_text(typ("interval"), literal.encode()) == iso


# PostgreSQL's Ryu never prints a decimal that lies exactly halfway to a neighbouring float,
# which Python's repr() does: SELECT '1.111413236844296e+18'::float8 and so on.
@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("float8", 1.111413236844296e18, "1.1114132368442959e+18"),
        ("float8", 3.587991870730024e17, "3.5879918707300237e+17"),
        ("float8", 2.611651458631264e18, "2.6116514586312643e+18"),
        ("float8", 9.25659809893206e16, "9.256598098932061e+16"),
        ("float8", 5.299064834871378e16, "5.2990648348713776e+16"),
        ("float4", 36546872.0, "3.6546872e+07"),
        ("float4", 757657632768.0, "7.5765763e+11"),
        ("float4", 34180848.0, "3.4180848e+07"),
    ],
)
def test_float_output_is_ryus_not_reprs(name: str, value: float, text: str) -> None:
    assert encode_text(typ(name), value) == text.encode()
    assert same_value(decode_text(typ(name), text.encode()), value)


# --- round trips against reference models -------------------------------------------------------


def round_trips(pgtype: PgType, stored: object) -> None:
    text = encode_text(pgtype, stored)
    binary = encode_binary(pgtype, stored)
    assert text is not None and binary is not None
    assert same_value(decode_text(pgtype, text), stored), (text, stored)
    assert same_value(decode_binary(pgtype, binary), stored), (binary, stored)


@given(st.integers(0, 1))
def test_bool_round_trips(value: int) -> None:
    round_trips(typ("bool"), value)
    assert encode_binary(typ("bool"), value) == bytes([value])


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("t", 1), ("TRUE", 1), ("tr", 1), (" yes ", 1), ("y", 1), ("on", 1), ("1", 1),
        ("f", 0), ("False", 0), ("fal", 0), ("no", 0), ("n", 0), ("off", 0), ("of", 0),
        ("0", 0), ("\tOFF\n", 0),
    ],
)  # fmt: skip
def test_bool_text_input(literal: str, value: int) -> None:
    assert decode_text(typ("bool"), literal.encode()) == value


@given(st.sampled_from([("int2", 16), ("int4", 32), ("int8", 64)]).flatmap(
    lambda case: st.tuples(st.just(case[0]), st.integers(-(2 ** (case[1] - 1)), 2 ** (case[1] - 1) - 1))
))  # fmt: skip
def test_integers_round_trip(case: tuple[str, int]) -> None:
    name, value = case
    round_trips(typ(name), value)
    assert encode_text(typ(name), value) == str(value).encode()
    width = {"int2": ">h", "int4": ">i", "int8": ">q"}[name]
    assert encode_binary(typ(name), value) == struct.pack(width, value)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["oid", "xid", "cid", "regclass", "regproc"]))
def test_oids_round_trip(value: int, name: str) -> None:
    round_trips(typ(name), value)
    assert encode_binary(typ(name), value) == struct.pack(">I", value)


def test_reg_types_print_names_they_know() -> None:
    assert encode_text(typ("regtype"), 1015) == b"character varying[]"
    assert encode_text(typ("regtype"), 1042) == b"character"
    assert encode_text(typ("regtype"), 0) == b"-"
    assert encode_text(typ("regclass"), 1259) == b"1259"  # no catalog here: the OID
    assert decode_text(typ("regtype"), b"double precision") == 701
    assert decode_text(typ("regnamespace"), b"pg_catalog") == 11
    assert decode_text(typ("regproc"), b"-") == 0
    with pytest.raises(PgValueError) as caught:
        decode_text(typ("regnamespace"), b"nosuchschema")
    assert caught.value.sqlstate == "3F000"


@given(st.floats(width=64))
@example(-0.0)
@example(5e-324)
@example(1.7976931348623157e308)
@example(1e15)
@example(123456789012345678.0)
def test_float8_round_trips_bit_for_bit(value: float) -> None:
    round_trips(typ("float8"), value)


@given(st.floats(width=32))
@example(-0.0)
@example(1.401298464324817e-45)  # the smallest float4
@example(3.4028234663852886e38)
def test_float4_round_trips_bit_for_bit(value: float) -> None:
    round_trips(typ("float4"), value)


NUMERIC_VALUES: st.SearchStrategy[Decimal] = st.decimals(
    allow_nan=False, allow_infinity=False
).filter(
    lambda d: abs(d.as_tuple().exponent) < 2000  # type: ignore[arg-type]
)


@given(NUMERIC_VALUES)
@example(Decimal("0.00"))
@example(Decimal("-0.000"))
@example(Decimal("1E+30"))
@example(Decimal("-1.23456789E-40"))
@example(Decimal("99999999.99999999"))
def test_numeric_is_exact_and_keeps_its_scale(value: Decimal) -> None:
    stored = decode_text(typ("numeric"), str(value).encode())
    assert isinstance(stored, str)
    assert Decimal(stored) == value  # the reference model: Decimal arithmetic
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    scale = len(stored.partition(".")[2])
    assert scale == max(0, -exponent)
    assert "e" not in stored.lower() and not stored.startswith("-0" if value.is_zero() else "+")
    round_trips(typ("numeric"), stored)
    assert decode_text(typ("numeric"), encode_text(typ("numeric"), value) or b"") == stored


@pytest.mark.parametrize("special", ["NaN", "Infinity", "-Infinity"])
def test_numeric_specials_round_trip(special: str) -> None:
    round_trips(typ("numeric"), special)
    assert decode_text(typ("numeric"), special.lower().encode()) == special


def test_numeric_accepts_other_storage_classes() -> None:
    # SQLite hands back ints and floats for expressions over numeric columns.
    assert encode_text(typ("numeric"), 12) == b"12"
    assert encode_text(typ("numeric"), 3.3000000000000003) == b"3.3"
    assert encode_text(typ("numeric"), Decimal("1.50")) == b"1.50"
    assert encode_binary(typ("numeric"), 10000) == bytes.fromhex("00010001000000000001")


TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))


@given(TEXT, st.sampled_from(["text", "varchar", "bpchar", "json_free", "xml", "unknown"]))
def test_text_round_trips(value: str, name: str) -> None:
    if name == "json_free":
        name = "refcursor"
    round_trips(typ(name), value)
    assert encode_binary(typ(name), value) == value.encode()


@given(TEXT)
def test_name_truncates_to_63_bytes_on_whole_characters(value: str) -> None:
    stored = decode_text(typ("name"), value.encode())
    assert isinstance(stored, str)
    assert value.startswith(stored)
    assert len(stored.encode()) <= 63
    assert len(stored.encode()) >= min(len(value.encode()), 60)
    round_trips(typ("name"), stored)


def test_char_round_trips_every_byte() -> None:
    for code in range(256):
        stored = "" if code == 0 else chr(code)
        round_trips(typ("char"), stored)
        assert encode_binary(typ("char"), stored) == bytes([code])
        text = encode_text(typ("char"), stored)
        assert text == (stored.encode() if code < 0x80 else f"\\{code:03o}".encode())


@given(st.binary())
def test_bytea_round_trips_in_hex_and_escape_formats(value: bytes) -> None:
    round_trips(typ("bytea"), value)
    assert encode_text(typ("bytea"), value) == b"\\x" + value.hex().encode()
    escaped = "".join(
        "\\\\" if byte == 0x5C else chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}"
        for byte in value
    )
    assert decode_text(typ("bytea"), escaped.encode()) == value


@given(st.uuids())
def test_uuid_round_trips_and_reads_every_spelling(value: uuid.UUID) -> None:
    canonical = str(value)
    round_trips(typ("uuid"), canonical)
    assert encode_binary(typ("uuid"), canonical) == value.bytes
    for spelling in (canonical.upper(), "{" + canonical + "}", value.hex, value.hex.upper()):
        assert decode_text(typ("uuid"), spelling.encode()) == canonical


JSON_SCALARS = st.none() | st.booleans() | st.integers() | TEXT
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=8,
)


@given(JSON_VALUES)
def test_json_keeps_its_text_and_jsonb_normalises_like_jsonb_out(value: object) -> None:
    raw = json.dumps(value, ensure_ascii=False)
    assert decode_text(typ("json"), raw.encode()) == raw
    round_trips(typ("json"), raw)
    stored = decode_text(typ("jsonb"), raw.encode())
    assert isinstance(stored, str)
    assert json.loads(stored) == value  # the same document
    assert decode_text(typ("jsonb"), stored.encode()) == stored  # normalised once and for all
    round_trips(typ("jsonb"), stored)
    assert encode_binary(typ("jsonb"), stored) == b"\x01" + stored.encode()


def test_jsonb_keeps_the_last_duplicate_key_and_orders_keys_by_length() -> None:
    stored = decode_text(
        typ("jsonb"), b'{"bb": 1, "a": 2, "a": 3, "\xc3\xa9": 4, "z": [1.50, 1E2]}'
    )
    assert stored == '{"a": 3, "z": [1.50, 100], "bb": 1, "\u00e9": 4}'


def ymd(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def hms(usec: int) -> str:
    seconds, fraction = divmod(usec, 1_000_000)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return text + (f".{fraction:06d}".rstrip("0") if fraction else "")


PG_EPOCH = datetime(2000, 1, 1)


@given(st.dates())
def test_dates_round_trip_over_years_1_to_9999(value: date) -> None:
    stored = ymd(value)
    assert decode_text(typ("date"), value.isoformat().encode()) == stored
    round_trips(typ("date"), stored)
    assert encode_binary(typ("date"), stored) == struct.pack(">i", (value - PG_EPOCH.date()).days)


@given(st.datetimes())
@example(datetime.min)
@example(datetime.max)
def test_timestamps_round_trip_and_sort_as_text(value: datetime) -> None:
    midnight = datetime.combine(value.date(), datetime.min.time())
    stored = f"{ymd(value.date())} {hms((value - midnight) // timedelta(microseconds=1))}"
    assert decode_text(typ("timestamp"), value.isoformat().encode()) == stored
    for name in ("timestamp", "timestamptz"):
        round_trips(typ(name), stored)
        usec = (value - PG_EPOCH) // timedelta(microseconds=1)
        assert encode_binary(typ(name), stored) == struct.pack(">q", usec)
    assert encode_text(typ("timestamptz"), stored) == (stored + "+00").encode()


@given(st.datetimes(), st.datetimes())
def test_timestamp_text_order_is_time_order(a: datetime, b: datetime) -> None:
    stored_a = decode_text(typ("timestamp"), a.isoformat().encode())
    stored_b = decode_text(typ("timestamp"), b.isoformat().encode())
    assert isinstance(stored_a, str) and isinstance(stored_b, str)
    assert (stored_a < stored_b) == (a < b)
    assert (stored_a == stored_b) == (a == b)


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(-(15 * 60 + 59), 15 * 60 + 59),
)
def test_timestamptz_input_is_converted_to_utc(value: datetime, offset_minutes: int) -> None:
    sign = "-" if offset_minutes < 0 else "+"
    zone = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    stored = decode_text(typ("timestamptz"), f"{value.isoformat()}{zone}".encode())
    utc = value.replace(tzinfo=None) - timedelta(minutes=offset_minutes)
    expected = decode_text(typ("timestamp"), utc.isoformat().encode())
    assert stored == expected
    plain = decode_text(typ("timestamp"), f"{value.isoformat()}{zone}".encode())
    assert plain == decode_text(typ("timestamp"), value.isoformat().encode())  # offset ignored


@given(st.integers(0, 86_400_000_000))
def test_times_round_trip(usec: int) -> None:
    stored = hms(usec)
    round_trips(typ("time"), stored)
    assert encode_binary(typ("time"), stored) == struct.pack(">q", usec)


@given(st.integers(0, 86_400_000_000), st.integers(-57599, 57599))
def test_timetz_round_trips(usec: int, offset: int) -> None:
    hours, rest = divmod(abs(offset), 3600)
    zone = f"{'-' if offset < 0 else '+'}{hours:02d}"
    zone += (f":{rest // 60:02d}" if rest else "") + (f":{rest % 60:02d}" if rest % 60 else "")
    stored = hms(usec) + zone
    round_trips(typ("timetz"), stored)
    assert encode_binary(typ("timetz"), stored) == struct.pack(">qi", usec, -offset)


@given(
    st.integers(-(2**31), 2**31 - 1) | st.integers(-30, 30),
    st.integers(-(2**31), 2**31 - 1) | st.integers(-40, 40),
    st.integers(-(2**63), 2**63 - 1) | st.integers(-(10**12), 10**12),
)
@example(0, 0, 0)
@example(-(2**31), -(2**31), -(2**63))
def test_intervals_round_trip_over_the_whole_range(months: int, days: int, usec: int) -> None:
    binary = struct.pack(">qii", usec, days, months)
    stored = decode_binary(typ("interval"), binary)
    assert encode_binary(typ("interval"), stored) == binary
    round_trips(typ("interval"), stored)


ARRAY_TEXT = st.text(
    st.sampled_from(['a', 'b', ' ', '"', "\\", "{", "}", ",", "N", "U", "L", "\t", "é", "x"]),
    max_size=6,
)  # fmt: skip
ARRAY_ELEMENTS = {
    "_text": ARRAY_TEXT | st.sampled_from(["NULL", "null", ""]),
    "_int4": st.integers(-(2**31), 2**31 - 1),
    "_int8": st.integers(-(2**63), 2**63 - 1),
    "_bool": st.integers(0, 1),
    "_float8": st.floats(),
    "_numeric": st.sampled_from(["1.50", "-0.001", "NaN", "0", "12345678901234567890.5"]),
    "_bytea": st.binary(max_size=4),
    "_uuid": st.uuids().map(str),
    "_timestamptz": st.datetimes().map(
        lambda d: decode_text(BY_NAME["timestamp"], d.isoformat().encode())
    ),
    "_jsonb": st.sampled_from(['{"a": 1}', "[1, 2]", '"x y"', "null"]),
    "_interval": st.sampled_from(["P1D", "PT-0.5S", "P-1Y-2M3DT4H"]),
}


def array_storage(name: str, items: list[object]) -> str:
    def to_json(item: object) -> object:
        if isinstance(item, bytes):
            return "\\x" + item.hex()
        if isinstance(item, float) and not math.isfinite(item):
            return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[str(item)]
        return item

    return json.dumps([to_json(item) for item in items], ensure_ascii=False, separators=(",", ":"))


@given(
    st.sampled_from(sorted(ARRAY_ELEMENTS)).flatmap(
        lambda name: st.tuples(
            st.just(name), st.lists(ARRAY_ELEMENTS[name] | st.none(), max_size=6)
        )
    )
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_arrays_round_trip_with_nulls_and_quoting(case: tuple[str, list[object]]) -> None:
    name, items = case
    stored = array_storage(name, items)
    round_trips(typ(name), stored)
    text = encode_text(typ(name), stored)
    assert text is not None and text.startswith(b"{") and text.endswith(b"}")


@given(st.lists(st.lists(ARRAY_TEXT | st.none(), min_size=2, max_size=2), min_size=1, max_size=3))
def test_two_dimensional_arrays_round_trip(rows: list[list[str | None]]) -> None:
    stored = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    round_trips(typ("_text"), stored)


def test_array_text_quoting_matches_array_out() -> None:
    stored = json.dumps(["a b", 'x"y', None, "NULL", "", "back\\slash", "{}", ",", "abc"])
    assert encode_text(typ("_text"), stored) == (
        b'{"a b","x\\"y",NULL,"NULL","","back\\\\slash","{}",",",abc}'
    )


# --- errors --------------------------------------------------------------------------------------

# SQLSTATEs PostgreSQL 15 reported for the same text input.
TEXT_ERRORS = [
    ("int2", "32768", "22003"), ("int2", "abc", "22P02"), ("int4", "2147483648", "22003"),
    ("int4", "1.5", "22P02"), ("int4", "", "22P02"), ("int8", "9223372036854775808", "22003"),
    ("bool", "x", "22P02"), ("bool", "tru e", "22P02"), ("bool", "o", "22P02"),
    ("float8", "1e309", "22003"), ("float8", "1e-400", "22003"), ("float8", "abc", "22P02"),
    ("float4", "1e39", "22003"), ("float4", "1e-50", "22003"), ("numeric", "abc", "22P02"),
    ("timestamp", "garbage", "22007"), ("timestamp", "2024-13-01", "22008"),
    ("timestamp", "2024-02-30 00:00", "22008"), ("timestamp", "2024-01-01 25:00", "22008"),
    ("timestamp", "2024-01-01 23:60:00", "22008"),
    ("timestamptz", "2024-01-01 00:00 Mars/Base", "22023"),
    ("timestamptz", "2024-01-01 00:00+16", "22009"), ("date", "2024-02-30", "22008"),
    ("date", "x", "22007"), ("time", "25:00", "22008"), ("time", "24:00:01", "22008"),
    ("time", "12:60", "22008"), ("interval", "1 fortnight", "22007"), ("interval", "x", "22007"),
    ("uuid", "zz", "22P02"), ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "22P02"),
    ("uuid", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "22P02"),
    ("uuid", "a0eebc999-c0b-4ef8-bb6d-6bb9bd380a11", "22P02"),
    ("uuid", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "22P02"), ("int4[]", "{1,2", "22P02"),
    ("int4[]", "{1,x}", "22P02"), ("int4[]", "{{1},{2,3}}", "22P02"),
    ("text[]", '{a,"b}', "22P02"), ("int4[]", "1,2", "22P02"), ("int4[]", "{1}x", "22P02"),
    ("int4[]", "{{}}", "22P02"), ("bytea", "\\xz1", "22023"), ("bytea", "\\x1", "22023"),
    ("bytea", "\\q", "22P02"), ("json", '{"a":}', "22P02"), ("json", "NaN", "22P02"),
    ("jsonb", "[1,]", "22P02"), ("jsonb", '"\\u0000"', "22P05"), ("jsonb", '"\\ud800"', "22P02"),
    ("oid", "4294967296", "22003"), ("oid", "-2147483649", "22003"),
    ("regtype", "nosuchtype", "42704"), ("regclass", "nosuchtable", "42P01"),
    ("int2vector", "1 x", "22P02"),
]  # fmt: skip


@pytest.mark.parametrize(("spelling", "literal", "sqlstate"), TEXT_ERRORS)
def test_text_input_errors_carry_postgresqls_sqlstate(
    spelling: str, literal: str, sqlstate: str
) -> None:
    with pytest.raises(PgValueError) as caught:
        decode_text(lookup(spelling)[0], literal.encode())
    assert caught.value.sqlstate == sqlstate
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("spelling", "literal", "sqlstate"),
    [
        # Accepted by PostgreSQL, refused here with a clear reason.
        ("timestamp", "10000-01-01", "22008"),  # years beyond 9999
        ("timestamp", "now", "0A000"),  # depends on the clock
        ("date", "2024-01-02 BC", "22008"),
        ("int4[]", "[0:1]={1,2}", "0A000"),  # lower bounds other than 1
        ("int4[]", "{{{{{{{1}}}}}}}", "54000"),  # seven dimensions
        ("record", "(1,2)", "0A000"),
    ],
)
def test_inputs_borealis_does_not_support_are_refused_clearly(
    spelling: str, literal: str, sqlstate: str
) -> None:
    with pytest.raises(PgValueError) as caught:
        decode_text(lookup(spelling)[0], literal.encode())
    assert caught.value.sqlstate == sqlstate


def test_text_input_must_be_utf8_without_nul() -> None:
    for data in (b"\xff", b"a\x00b"):
        with pytest.raises(PgValueError) as caught:
            decode_text(typ("text"), data)
        assert caught.value.sqlstate == "22021"


@pytest.mark.parametrize(
    ("name", "data", "sqlstate"),
    [
        ("int4", b"\x00\x00\x2a", "22P03"), ("int8", b"\x00" * 4, "22P03"),
        ("bool", b"", "22P03"), ("float8", b"\x00" * 4, "22P03"), ("uuid", b"\x00" * 15, "22P03"),
        ("numeric", b"\x00\x01\x00\x00\x00\x00\x00\x00", "22P03"),  # one digit promised, none
        ("numeric", bytes.fromhex("0001000012340000ffff"), "22P03"),  # a bad sign
        ("numeric", bytes.fromhex("00010000000000002710"), "22P03"),  # digit 10000
        ("interval", b"\x00" * 15, "22P03"), ("date", b"\x7f\x00\x00\x00", "22008"),
        ("timestamp", struct.pack(">q", 2**62), "22008"),
        ("time", struct.pack(">q", 86_400_000_001), "22P03"),
        ("timetz", struct.pack(">qi", 0, 57600), "22P03"),
        ("jsonb", b"\x02{}", "22P03"), ("text", b"\xc3", "22021"), ("name", b"x" * 64, "42622"),
        ("_int4", bytes.fromhex("000000010000000000000019" "0000000100000001"), "42804"),
        ("_int4", bytes.fromhex("000000010000000000000017" "7fffffff00000001"), "22P03"),
        ("_int4", bytes.fromhex("000000010000000000000017" "0000000100000000" "00000004"), "0A000"),
        ("_int4", bytes.fromhex("000000070000000000000017"), "22P03"),
        ("aclitem", b"x", "42883"),
    ],
)  # fmt: skip
def test_malformed_binary_is_refused(name: str, data: bytes, sqlstate: str) -> None:
    with pytest.raises(PgValueError) as caught:
        decode_binary(typ(name), data)
    assert caught.value.sqlstate == sqlstate


ALL_TYPES = sorted(BY_OID.values(), key=lambda t: t.oid)


def binary_with_header(pgtype: PgType) -> st.SearchStrategy[bytes]:
    """Random bytes, and random bodies behind a plausible header, so that decoders get past
    their first length check."""
    anything = st.binary(max_size=48)
    if pgtype.is_array or pgtype.name in ("int2vector", "oidvector"):
        header = st.builds(
            lambda ndim, flags, dims: struct.pack(">iiI", ndim, flags, pgtype.elem_oid) + dims,
            st.integers(-1, 7),
            st.integers(0, 2),
            st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 2)), max_size=3).map(
                lambda dims: b"".join(struct.pack(">ii", *dim) for dim in dims)
            ),
        )
        return anything | st.builds(bytes.__add__, header, anything)
    if pgtype.name == "numeric":
        header = st.builds(
            lambda n, w, s, d: struct.pack(">HhHH", n, w, s, d),
            st.integers(0, 4),
            st.integers(-(2**15), 2**15 - 1),
            st.sampled_from([0, 0x4000, 0xC000, 0xD000, 0xF000, 0x1234]),
            st.integers(0, 0x4001),
        )
        digits = st.lists(st.integers(0, 10001), max_size=4).map(
            lambda ds: b"".join(struct.pack(">H", d) for d in ds)
        )
        return anything | st.builds(bytes.__add__, header, digits)
    return anything


FUZZ_BINARY = {pgtype.oid: binary_with_header(pgtype) for pgtype in ALL_TYPES}


@given(st.data())
@settings(max_examples=300)
def test_decoders_raise_only_pg_value_error(draw: st.DataObject) -> None:
    pgtype = draw.draw(st.sampled_from(ALL_TYPES))
    data = draw.draw(FUZZ_BINARY[pgtype.oid])
    for decode in (decode_binary, decode_text):
        try:
            stored = decode(pgtype, data)
        except PgValueError:
            continue
        # Whatever was accepted encodes again without surprises.
        encode_text(pgtype, stored)
        if pgtype.send_fn != "-" and pgtype.typtype != "p":
            try:
                encode_binary(pgtype, stored)
            except PgValueError as exc:
                assert exc.sqlstate in ("42883", "0A000"), exc  # aclitem elements


TEXT_FUZZ = st.text(st.sampled_from(list('0123456789-+:. TtZz{}[]",\\xPYMDHSinfaNUL@go/\n')))


@given(st.sampled_from(ALL_TYPES), TEXT_FUZZ)
@settings(max_examples=300)
def test_text_decoders_raise_only_pg_value_error_on_near_misses(pgtype: PgType, text: str) -> None:
    try:
        stored = decode_text(pgtype, text.encode())
    except PgValueError:
        return
    encoded = encode_text(pgtype, stored)
    if pgtype.typtype != "p" and pgtype.name != "name":
        assert encoded is not None
        assert same_value(decode_text(pgtype, encoded), stored)


# --- storage values of the wrong class -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("int4", "abc", b"abc"), ("int8", 1.5, b"1.5"), ("bool", "yes", b"yes"),
        ("text", 42, b"42"), ("text", b"\x01", b"\\x01"), ("bytea", "plain", b"plain"),
        ("timestamptz", "not a time", b"not a time"), ("uuid", 7, b"7"),
        ("_int4", "[1,", b"[1,"), ("date", 20240102, b"20240102"), ("interval", 5, b"5"),
        ("numeric", "abc", b"abc"), ("float8", "1.5x", b"1.5x"), ("jsonb", 3, b"3"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_class_is_sent_as_its_own_text(
    name: str, value: object, text: bytes
) -> None:
    assert encode_text(typ(name), value) == text
    with pytest.raises(PgValueError) as caught:
        encode_binary(typ(name), value)
    assert caught.value.sqlstate == "42804"
    assert type(value).__name__ in str(caught.value)


def test_null_is_none_both_ways() -> None:
    for pgtype in ALL_TYPES:
        assert encode_text(pgtype, None) is None
        assert encode_binary(pgtype, None) is None


def test_storage_written_by_hand_is_read_as_text_input() -> None:
    # Rows written into SQLite without Borealis: not canonical, still meaningful.
    assert encode_text(typ("timestamptz"), "2024-01-02T03:04:05+02:00") == b"2024-01-02 01:04:05+00"
    assert encode_text(typ("timestamp"), "2024-01-02 03:04:05.500") == b"2024-01-02 03:04:05.5"
    assert encode_text(typ("interval"), "1 day") == b"1 day"
    assert encode_text(typ("uuid"), "A0EEBC999C0B4EF8BB6D6BB9BD380A11") == (
        b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    )
    assert encode_binary(typ("date"), "2000-01-02") == struct.pack(">i", 1)


def test_out_of_range_values_have_no_binary_form() -> None:
    for name, value in (("int2", 40000), ("int4", 2**31), ("oid", -1)):
        with pytest.raises(PgValueError) as caught:
            encode_binary(typ(name), value)
        assert caught.value.sqlstate == "22003"
        assert encode_text(typ(name), value) == str(value).encode()


# --- typmod coercion (SELECT '<value>'::<type>, and INSERT for the refusals) ----------------------


@pytest.mark.parametrize(
    ("spelling", "literal", "stored"),
    [
        ("numeric(5,2)", "1.005", "1.01"), ("numeric(5,2)", "-1.005", "-1.01"),
        ("numeric(7,-2)", "12345.6", "12300"), ("numeric(3,5)", "0.0001", "0.00010"),
        ("numeric(2,0)", "-1.5", "-2"), ("char(4)", "ab", "ab  "), ("varchar(3)", "abc  ", "abc"),
        ("timestamp(3)", "2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123"),
        ("timestamp(0)", "2024-01-02 03:04:05.9999996", "2024-01-02 03:04:06"),
        ("time(0)", "23:59:59.6", "24:00:00"),
        ("interval year to month", "1 year 2 mons 3 days 04:05:06.789", "P1Y2M"),
        ("interval hour to minute", "1 day 04:05:06.789", "P1DT4H5M"),
        ("interval(1)", "1 day 04:05:06.789", "P1DT4H5M6.8S"),
        ("interval day", "1 day 04:05:06.789", "P1D"), ("numeric(5,2)[]", "{1.005,NULL}", '["1.01",null]'),
    ],
)  # fmt: skip
def test_typmod_coercion_matches_postgresql(spelling: str, literal: str, stored: str) -> None:
    pgtype, typmod = lookup(spelling)
    assert coerce_to_typmod(pgtype, typmod, decode_text(pgtype, literal.encode())) == stored


@pytest.mark.parametrize(
    ("spelling", "literal", "sqlstate"),
    [
        ("numeric(5,2)", "999.995", "22003"),
        ("numeric(5,2)", "Infinity", "22003"),
        ("varchar(3)", "abcd", "22001"),
        ("char(3)", "abcd", "22001"),
    ],
)
def test_typmod_coercion_refuses_what_does_not_fit(
    spelling: str, literal: str, sqlstate: str
) -> None:
    pgtype, typmod = lookup(spelling)
    with pytest.raises(PgValueError) as caught:
        coerce_to_typmod(pgtype, typmod, decode_text(pgtype, literal.encode()))
    assert caught.value.sqlstate == sqlstate


def test_an_explicit_cast_truncates_strings() -> None:
    pgtype, typmod = lookup("varchar(3)")
    assert coerce_to_typmod(pgtype, typmod, "abcd", explicit=True) == "abc"


def test_module_constants_are_the_registry_rows() -> None:
    assert pgt.INT4 is BY_OID[23] and pgt.TIMESTAMPTZ is BY_OID[1184]
    assert pgt.UNKNOWN.typtype == "p"
    assert datetime(2000, 1, 1, tzinfo=UTC).timestamp() == 946684800  # PostgreSQL's epoch
