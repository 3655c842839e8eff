"""Which queues an operator reaches: the one rule the admin and the operator API both apply.

- A superuser reaches every queue.
- Staff who belong to tenants reach those tenants' queues.
- Staff who belong to none reach the queues that belong to none (a site serving one
  organisation has no tenants, so its staff see everything, as before tenants existed).
- An API key reaches its tenant's queues (or those of none), narrowed to its list if it has one.

So a tenant's queue is reached only by its own members and keys, and by superusers.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import OperatorKey, Queue, Tenant

__all__ = ["owned", "queues_for_key", "queues_for_user", "scoped", "tenants_for_user"]


def tenants_for_user(user: Any) -> QuerySet[Tenant]:
    if getattr(user, "is_superuser", False):
        return Tenant.objects.all()
    if not getattr(user, "is_authenticated", False):
        return Tenant.objects.none()
    return Tenant.objects.filter(members=user)


def owned(queryset: QuerySet[Any], user: Any) -> QuerySet[Any]:
    """``queryset`` of rows with a ``tenant`` (queues, API keys) narrowed to ``user``'s: their
    tenants' rows, or the rows of none when they belong to no tenant."""
    if getattr(user, "is_superuser", False):
        return queryset
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    tenants = list(tenants_for_user(user).values_list("pk", flat=True))
    if tenants:
        return queryset.filter(tenant__in=tenants)
    return queryset.filter(tenant__isnull=True)


def queues_for_user(user: Any) -> QuerySet[Queue]:
    return owned(Queue.objects.all(), user)


def scoped(queryset: QuerySet[Any], user: Any, through: str = "queue") -> QuerySet[Any]:
    """``queryset`` (of queues, or of rows with a ``through`` queue) narrowed to ``user``'s."""
    if getattr(user, "is_superuser", False):
        return queryset
    reached = queues_for_user(user)
    if queryset.model is Queue:
        return queryset.filter(pk__in=reached)
    return queryset.filter(**{f"{through}__in": reached})


def queues_for_key(key: OperatorKey) -> QuerySet[Queue]:
    queues = Queue.objects.filter(tenant=key.tenant_id)  # None: tenant IS NULL
    listed = list(key.queues.values_list("pk", flat=True))
    return queues.filter(pk__in=listed) if listed else queues
