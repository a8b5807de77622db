"""Django 5 (its PostgreSQL backend on psycopg 3) against a Borealis writer: migrations of
django.contrib's apps and of a small app (``django_site/shop``: CharField, EmailField,
BooleanField, DateTimeField, JSONField, UUIDField, DecimalField, DateField, a ForeignKey,
an index), then the ORM: users and groups, bulk_create (Django 5.2 inserts through
``unnest()`` of one array per field), annotate/aggregate, JSON lookups, date lookups, Q,
F() updates, prefetch_related, select_related, unique violations, savepoints,
get_or_create, cascading deletes; then a second migration (``shop/models_v2.py``: a field
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

EXPECTED = {  # PostgreSQL 15
    "staff": 1, "iexact": "alice@example.org", "password_ok": True,
    "totals": [["Ann", "14.75", 2], ["Bob", "99.99", 1]], "gold": ["Ann"], "in_2024": 2,
    "either": ["Ann", "Bob"], "startswith": ["Ann"], "after_update": ["11.50", "5.25"],
    "prefetch": [["Ann", 2], ["Bob", 1]], "select_related": ["Ann", "Ann", "Bob"],
    "unique": "refused", "savepoint": "rolled back", "customers": 3,
    "get_or_create": [True, False], "after_delete": [False, 2],
    "v2_settings": "gold", "v2_city": "EEE", "v2_notes": ["", "", "gift"], "v2_referred": 1}


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
