"""Django against a Borealis writer (tests/compat/test_django.py runs a copy of this
directory in a process of its own: Django's settings are global). Makes and runs the
migrations of Django's own apps and a small one (``shop``), then uses the ORM as
applications do; prints one JSON line of results."""

import datetime as dt
import decimal
import json
import sys
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).parent))
host, port = sys.argv[1], sys.argv[2]
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                    "django.contrib.sessions", "django.contrib.admin",
                    "django.contrib.messages", "shop"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "HOST": host,
                           "PORT": port, "NAME": "postgres", "USER": "postgres"}},
    USE_TZ=True, SECRET_KEY="test", DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, transaction  # noqa: E402
from django.db.models import Count, F, Q, Sum  # noqa: E402
from shop.models import Customer, Order  # noqa: E402

call_command("makemigrations", "shop", verbosity=0)   # into this copy of the app
call_command("migrate", verbosity=0, interactive=False)

out = {}
user = User.objects.create_user("alice", "alice@example.org", "secret")
user.groups.add(Group.objects.create(name="staff"))
out["staff"] = User.objects.filter(groups__name="staff").count()
out["iexact"] = User.objects.get(username__iexact="ALICE").email
out["password_ok"] = User.objects.get(username="alice").check_password("secret")

ann = Customer.objects.create(name="Ann", email="ann@example.org", vip=True,
                              profile={"tier": "gold", "tags": ["a", "b"]})
bob = Customer.objects.create(name="Bob", profile={"tier": "silver"})
Order.objects.bulk_create([
    Order(customer=ann, total=decimal.Decimal("10.50"), placed=dt.date(2024, 1, 5)),
    Order(customer=ann, total=decimal.Decimal("4.25"), placed=dt.date(2024, 2, 1), note="gift"),
    Order(customer=bob, total=decimal.Decimal("99.99"), placed=dt.date(2023, 12, 31)),
])
out["totals"] = [(c.name, str(c.spent), c.n) for c in Customer.objects.annotate(
    spent=Sum("orders__total"), n=Count("orders")).order_by("name")]
out["gold"] = list(Customer.objects.filter(profile__tier="gold").values_list("name", flat=True))
out["in_2024"] = Order.objects.filter(placed__year=2024).count()
out["either"] = sorted(Order.objects.filter(Q(note__isnull=False) | Q(total__gt=50))
                       .values_list("customer__name", flat=True))
out["startswith"] = list(Customer.objects.filter(name__startswith="A").values_list("name",
                                                                                   flat=True))
Order.objects.filter(customer=ann).update(total=F("total") + 1)
out["after_update"] = [str(t) for t in Order.objects.filter(customer=ann)
                       .values_list("total", flat=True)]
out["prefetch"] = [(c.name, len(c.orders.all())) for c in
                   Customer.objects.prefetch_related("orders").order_by("name")]
out["select_related"] = [o.customer.name for o in Order.objects.select_related("customer")]
try:
    with transaction.atomic():
        Customer.objects.create(name="Ann")
except IntegrityError:
    out["unique"] = "refused"
with transaction.atomic():
    Customer.objects.create(name="Cy")
    try:
        with transaction.atomic():   # a savepoint
            Customer.objects.create(name="Cy")
    except IntegrityError:
        out["savepoint"] = "rolled back"
out["customers"] = Customer.objects.count()
obj, created = Customer.objects.get_or_create(name="Dee", defaults={"vip": True})
out["get_or_create"] = [created, Customer.objects.get_or_create(name="Dee")[1]]
# Query constructs applications use, each printed as its repr (compared with PostgreSQL's).
from django.contrib.postgres.aggregates import ArrayAgg, StringAgg  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import (  # noqa: E402
    Avg,
    Case,
    CharField,
    Exists,
    Max,
    Min,
    OuterRef,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import (  # noqa: E402
    Cast,
    Concat,
    ExtractYear,
    Length,
    Lower,
    Rank,
    RowNumber,
    TruncMonth,
    Upper,
)


def locked() -> list[str]:
    with transaction.atomic():
        return list(Customer.objects.select_for_update().filter(name="Ann")
                    .values_list("name", flat=True))


orm = {
    "distinct_on": lambda: list(Order.objects.order_by("customer_id", "-total")
                                .distinct("customer_id").values_list("total", flat=True)),
    "subquery": lambda: list(Customer.objects.annotate(last=Subquery(
        Order.objects.filter(customer=OuterRef("pk")).order_by("-placed").values("placed")[:1]
    )).order_by("name").values_list("name", "last")),
    "exists": lambda: list(Customer.objects.filter(Exists(Order.objects.filter(
        customer=OuterRef("pk"), note__isnull=False))).values_list("name", flat=True)),
    "window": lambda: list(Order.objects.annotate(rn=Window(
        RowNumber(), partition_by=[F("customer_id")], order_by=F("total").desc()))
        .order_by("id").values_list("rn", flat=True)),
    "rank": lambda: list(Order.objects.annotate(r=Window(Rank(), order_by=F("total").desc()))
                         .order_by("id").values_list("r", flat=True)),
    "arrayagg": lambda: list(Customer.objects.annotate(t=ArrayAgg(
        "orders__total", ordering="orders__total")).order_by("name").values_list("t", flat=True)),
    "stringagg": lambda: list(Customer.objects.annotate(t=StringAgg(
        "orders__note", delimiter=",")).order_by("name").values_list("t", flat=True)),
    "functions": lambda: list(Customer.objects.annotate(
        lo=Lower("name"), up=Upper("name"), n=Length("name")).order_by("lo")
        .values_list("lo", "up", "n")),
    "truncmonth": lambda: list(Order.objects.annotate(m=TruncMonth("placed")).order_by("id")
                               .values_list("m", flat=True)),
    "extractyear": lambda: list(Order.objects.annotate(y=ExtractYear("placed")).values("y")
                                .annotate(c=Count("id")).order_by("y").values_list("y", "c")),
    "concat": lambda: list(Customer.objects.annotate(c=Concat(
        "name", Value("!"), output_field=CharField())).order_by("name")
        .values_list("c", flat=True)),
    "case": lambda: list(Order.objects.annotate(big=Case(
        When(total__gt=50, then=Value("big")), default=Value("small")))
        .order_by("id").values_list("big", flat=True)),
    "aggregate": lambda: Order.objects.aggregate(s=Sum("total"), a=Avg("total"),
                                                 mx=Max("placed"), mn=Min("total")),
    "json_has_key": lambda: list(Customer.objects.filter(profile__has_key="tags")
                                 .values_list("name", flat=True)),
    "json_contains": lambda: list(Customer.objects.filter(profile__contains={"tier": "gold"})
                                  .values_list("name", flat=True)),
    "icontains": lambda: list(Customer.objects.filter(name__icontains="NN")
                              .values_list("name", flat=True)),
    "regex": lambda: list(Customer.objects.filter(name__regex=r"^[AB]").order_by("name")
                          .values_list("name", flat=True)),
    "iregex": lambda: list(Customer.objects.filter(name__iregex=r"^b").values_list("name",
                                                                                  flat=True)),
    "in_subquery": lambda: list(Customer.objects.filter(id__in=Order.objects.filter(
        total__gt=50).values("customer_id")).values_list("name", flat=True)),
    "select_for_update": locked,
    "date_range": lambda: Order.objects.filter(
        placed__range=(dt.date(2024, 1, 1), dt.date(2024, 12, 31))).count(),
    "explain": lambda: bool(Order.objects.filter(total__gt=1).explain()),
    "iterator": lambda: [o.total for o in Order.objects.order_by("id").iterator(chunk_size=1)],
    "values_annotate": lambda: list(Order.objects.values("customer__name").annotate(
        n=Count("id")).order_by("customer__name").values_list("customer__name", "n")),
    "cast": lambda: list(Order.objects.annotate(c=Cast("total", output_field=CharField()))
                         .order_by("id").values_list("c", flat=True)),
}
out["orm"] = {}
for name, query in orm.items():
    try:
        out["orm"][name] = repr(query())
    except Exception as error:
        out["orm"][name] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        connection.rollback() if connection.in_atomic_block else None

bob.delete()
out["after_delete"] = [Customer.objects.filter(name="Bob").exists(), Order.objects.count()]
# A second migration: the models of models_v2.py (RenameField is asked interactively by
# makemigrations, so it is answered here: profile became settings).
models_file = Path(__file__).parent / "shop" / "models.py"
Order.objects.filter(note__isnull=True).update(note="")
models_file.write_text((models_file.parent / "models_v2.py").read_text())
from django.db.migrations.questioner import InteractiveMigrationQuestioner  # noqa: E402

InteractiveMigrationQuestioner.ask_rename = lambda *args, **kwargs: True  # type: ignore
import importlib  # noqa: E402

import shop.models  # noqa: E402
from django.apps import apps  # noqa: E402

apps.all_models["shop"].clear()
apps.clear_cache()
importlib.reload(shop.models)
call_command("makemigrations", "shop", verbosity=0, interactive=True)
call_command("migrate", verbosity=0, interactive=False)
from shop.models import Customer as Customer2  # noqa: E402
from shop.models import Order as Order2  # noqa: E402

cy = Customer2.objects.get(name="Cy")
Customer2.objects.create(name="E" * 150, city="Oslo", settings={"x": 1})
Order2.objects.create(customer=cy, total=decimal.Decimal("1234567890.12"),
                      placed=dt.date(2024, 5, 5), referrer=Customer2.objects.get(name="Ann"))
out["v2_settings"] = Customer2.objects.get(name="Ann").settings["tier"]
out["v2_city"] = Customer2.objects.get(city="Oslo").name[:3]
out["v2_notes"] = sorted(Order2.objects.values_list("note", flat=True))
out["v2_referred"] = Order2.objects.filter(referrer__name="Ann").count()
print(json.dumps(out))
