"""Load queues into the store from their rows: ``manage.py ticketqueue_rebuild [slug ...]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ... import services
from ...models import Queue


class Command(BaseCommand):
    help = (
        "Rebuild queues in the store from the database (after a Redis flush or loss): same "
        "entries, same order, same passes. Without slugs, every queue that is not closed."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slugs", nargs="*", help="Queues to rebuild (default: all running).")

    def handle(self, *args: Any, slugs: list[str], **options: Any) -> None:
        queues = (
            Queue.objects.filter(slug__in=slugs) if slugs else Queue.objects.running()
        ).order_by("pk")
        missing = set(slugs) - {q.slug for q in queues}
        if missing:
            raise CommandError(f"No such queue: {', '.join(sorted(missing))}")
        loaded = [services.rebuild(queue) for queue in queues]
        self.stdout.write(f"{len(loaded)} queues rebuilt, {sum(loaded)} live entries loaded.")
