"""Print each queue's live numbers: ``manage.py ticketqueue_stats [slug ...] [--json]``."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from ... import metrics
from ...models import Queue


class Command(BaseCommand):
    help = "Waiting, active passes, admissions per minute, ETA of the last in line, per queue."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slugs", nargs="*", help="Queues to show (default: all shown).")
        parser.add_argument("--json", action="store_true", help="One JSON object per line.")

    def handle(self, *args: Any, slugs: list[str], **options: Any) -> None:
        queues = Queue.objects.filter(slug__in=slugs).order_by("slug") if slugs else None
        numbers = metrics.snapshot(queues)
        for n in numbers:
            if options["json"]:
                self.stdout.write(json.dumps(n.as_dict()))
            elif not n.loaded:
                self.stdout.write(f"{n.slug}: {n.state}, not loaded in the store")
            else:
                rate = "-" if n.admitted_per_minute is None else f"{n.admitted_per_minute:.0f}"
                eta = "-" if n.eta_last_seconds is None else f"{n.eta_last_seconds}s"
                self.stdout.write(
                    f"{n.slug}: {n.state}, {n.waiting} waiting, {n.active} active, "
                    f"{n.admitted_total} admitted ({rate}/min), last in line in {eta}"
                )
        if not options["json"]:
            self.stdout.write(f"{len(numbers)} queues.")
