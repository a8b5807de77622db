"""The ``shop`` models after a second migration (tests/compat/test_django.py): a field
added, one widened, one made NOT NULL with a default, one renamed, one removed, an index
and a foreign key added."""

import uuid

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=200, unique=True)       # widened
    email = models.EmailField(blank=True)
    vip = models.BooleanField(default=False)
    joined = models.DateTimeField(auto_now_add=True)
    settings = models.JSONField(default=dict)                  # renamed from profile
    token = models.UUIDField(default=uuid.uuid4, editable=False)
    city = models.CharField(max_length=50, default="", db_index=True)   # added

    class Meta:
        app_label = "shop"
        indexes = [models.Index(fields=["email"])]


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    total = models.DecimalField(max_digits=12, decimal_places=2)     # widened
    placed = models.DateField()
    note = models.TextField(default="")                              # NOT NULL now
    referrer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True,
                                 related_name="referred")            # added

    class Meta:
        app_label = "shop"
        ordering = ["id"]
