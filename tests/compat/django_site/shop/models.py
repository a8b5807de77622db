"""A small Django app for tests/compat/test_django.py: the field types applications use."""

import uuid

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100, unique=True)
    email = models.EmailField(blank=True)
    vip = models.BooleanField(default=False)
    joined = models.DateTimeField(auto_now_add=True)
    profile = models.JSONField(default=dict)
    token = models.UUIDField(default=uuid.uuid4, editable=False)

    class Meta:
        app_label = "shop"
        indexes = [models.Index(fields=["email"])]


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    total = models.DecimalField(max_digits=10, decimal_places=2)
    placed = models.DateField()
    note = models.TextField(null=True)

    class Meta:
        app_label = "shop"
        ordering = ["id"]
