"""Operator API keys from the command line (the admin does the same):
``manage.py ticketqueue_keys create <name> [--tenant SLUG] [--queue SLUG ...] [--operate]``,
``ticketqueue_keys list``, ``ticketqueue_keys revoke <prefix>``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ... import apikeys
from ...models import OperatorKey, Queue, Tenant


class Command(BaseCommand):
    help = (
        "Make, list and revoke operator API keys. 'create' prints the key once: only its "
        "digest is stored."
    )

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        create = sub.add_parser("create", help="Make a key and print it.")
        create.add_argument("name", help="What uses the key.")
        create.add_argument("--tenant", default="", help="The tenant's slug (none: the own).")
        create.add_argument(
            "--queue", action="append", default=[], help="A queue it reaches (repeat; none: all)."
        )
        create.add_argument(
            "--operate", action="store_true", help="May change, admit and close (else read)."
        )
        sub.add_parser("list", help="The keys: prefix, name, tenant, access, state.")
        revoke = sub.add_parser("revoke", help="Revoke the key with this prefix.")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, command: str, **options: Any) -> None:
        getattr(self, f"_{command}")(**options)

    def _create(self, name: str, tenant: str, queue: list[str], operate: bool, **_: Any) -> None:
        owner = None
        if tenant:
            owner = Tenant.objects.filter(slug=tenant).first()
            if owner is None:
                raise CommandError(f"No tenant {tenant!r}.")
        queues = list(Queue.objects.filter(slug__in=queue))
        missing = sorted(set(queue) - {q.slug for q in queues})
        if missing:
            raise CommandError(f"No queue {', '.join(map(repr, missing))}.")
        access = OperatorKey.Access.OPERATE if operate else OperatorKey.Access.READ
        try:
            _row, raw = apikeys.issue(name, tenant=owner, queues=queues, access=access)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(raw)

    def _list(self, **_: Any) -> None:
        for key in OperatorKey.objects.select_related("tenant").order_by("created_at"):
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            tenant = key.tenant.slug if key.tenant else "-"
            self.stdout.write(f"{key.prefix}  {key.name}  {tenant}  {key.access}  {state}")

    def _revoke(self, prefix: str, **_: Any) -> None:
        key = OperatorKey.objects.filter(prefix=prefix).first()
        if key is None:
            raise CommandError(f"No key {prefix!r}.")
        if not apikeys.revoke(key):
            raise CommandError(f"The key {prefix!r} was already revoked.")
        self.stdout.write(f"Revoked {key}.")
