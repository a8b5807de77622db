"""Django 5 (its PostgreSQL backend on psycopg 3) against a Borealis writer: migrations of
django.contrib's apps and of a small app (``django_site/shop``: CharField, EmailField,
BooleanField, DateTimeField, JSONField, UUIDField, DecimalField, DateField, a ForeignKey,
an index), then the ORM: users and groups, bulk_create (Django 5.2 inserts through
``unnest()`` of one array per field), annotate/aggregate, JSON lookups, date lookups, Q,
F() updates, prefetch_related, select_related, unique violations, savepoints,
get_or_create, cascading deletes; 25 query constructs (DISTINCT ON, Subquery/OuterRef,
Exists, window functions, ArrayAgg/StringAgg, TruncMonth, regex lookups, JSON containment,
select_for_update, explain(), server-side iteration...); then a second migration (``shop/models_v2.py``: a field
added with an index, fields widened, one renamed, one made NOT NULL with a default, a
foreign key added) and the ORM on the new models. The expected values are what the same script printed
against PostgreSQL 15 on this machine (2026-11-27).

Django's settings are global to a process, so the app runs in a process of its own, from a
copy of ``django_site`` (makemigrations writes the app's migrations there).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from compat_cluster import Cluster

pytest.importorskip("django", reason="Django is a test dependency (pyproject)")

ORM = {  # each construct's repr, as the script printed it against PostgreSQL 15
    "distinct_on": "[Decimal('11.50'), Decimal('99.99')]",
    "subquery": "[('Ann', datetime.date(2024, 2, 1)), ('Bob', datetime.date(2023, 12, 31)), ('Cy', None), ('Dee', None)]",
    "exists": "['Ann']",
    "window": "[1, 2, 1]",
    "rank": "[2, 3, 1]",
    "arrayagg": "[[Decimal('5.25'), Decimal('11.50')], [Decimal('99.99')], [None], [None]]",
    "stringagg": "['gift', None, None, None]",
    "functions": "[('ann', 'ANN', 3), ('bob', 'BOB', 3), ('cy', 'CY', 2), ('dee', 'DEE', 3)]",
    "truncmonth": "[datetime.date(2024, 1, 1), datetime.date(2024, 2, 1), datetime.date(2023, 12, 1)]",
    "extractyear": "[(2023, 1), (2024, 2)]",
    "concat": "['Ann!', 'Bob!', 'Cy!', 'Dee!']",
    "case": "['small', 'small', 'big']",
    "aggregate": "{'s': Decimal('116.74'), 'a': Decimal('38.9133333333333333'), 'mx': datetime.date(2024, 2, 1), 'mn': Decimal('5.25')}",
    "json_has_key": "['Ann']",
    "json_contains": "['Ann']",
    "icontains": "['Ann']",
    "regex": "['Ann', 'Bob']",
    "iregex": "['Bob']",
    "in_subquery": "['Bob']",
    "select_for_update": "['Ann']",
    "date_range": "2",
    "explain": "True",
    "iterator": "[Decimal('11.50'), Decimal('5.25'), Decimal('99.99')]",
    "values_annotate": "[('Ann', 2), ('Bob', 1)]",
    "cast": "['11.50', '5.25', '99.99']"
}

EXPECTED = {  # PostgreSQL 15
    "staff": 1, "iexact": "alice@example.org", "password_ok": True,
    "totals": [["Ann", "14.75", 2], ["Bob", "99.99", 1]], "gold": ["Ann"], "in_2024": 2,
    "either": ["Ann", "Bob"], "startswith": ["Ann"], "after_update": ["11.50", "5.25"],
    "prefetch": [["Ann", 2], ["Bob", 1]], "select_related": ["Ann", "Ann", "Bob"],
    "unique": "refused", "savepoint": "rolled back", "customers": 3,
    "get_or_create": [True, False], "after_delete": [False, 2],
    "v2_settings": "gold", "v2_city": "EEE", "v2_notes": ["", "", "gift"], "v2_referred": 1,
    "orm": ORM}


def run_site(tmp_path: Path, host: str, port: int) -> dict[str, object]:
    site = tmp_path / "django_site"
    shutil.copytree(Path(__file__).parent / "django_site", site)
    done = subprocess.run([sys.executable, str(site / "run.py"), host, str(port)],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-5000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_django_migrates_and_its_orm_works(cluster: Cluster, tmp_path: Path) -> None:
    host, port = cluster.writer_address
    assert run_site(tmp_path, host, port) == EXPECTED
