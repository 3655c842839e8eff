"""Make invite links for a queue of invited people:
``manage.py ticketqueue_invites <slug> [--count 100] [--uses 1] [--days 30] [--group NAME]
[--base URL] [--codes]``."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from ... import invites
from ...models import Queue


class Command(BaseCommand):
    help = (
        "Print invite links (or, with --codes, the bare tokens), one per line: for a queue "
        "whose 'who may join' is holders of an invite, or into one of a queue's priority "
        "groups (--group; then in any queue)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug")
        parser.add_argument("--count", type=int, default=1, help="How many invites (1).")
        parser.add_argument("--uses", type=int, default=1, help="Places each may give (1).")
        parser.add_argument("--days", type=float, default=30.0, help="Days they last (30).")
        parser.add_argument(
            "--base", default="", help="The site's origin, e.g. https://tickets.example.com."
        )
        parser.add_argument("--codes", action="store_true", help="Tokens only, no links.")
        parser.add_argument("--group", default="", help="The priority group they join.")

    def handle(self, *args: Any, slug: str, **options: Any) -> None:
        queue = Queue.objects.filter(slug=slug).first()
        if queue is None:
            raise CommandError(f"No queue {slug!r}.")
        group = None
        if options["group"]:
            group = queue.priority_groups.filter(name=options["group"]).first()
            if group is None:
                raise CommandError(f"{slug!r} has no priority group {options['group']!r}.")
        elif queue.who_may_join != Queue.WhoMayJoin.INVITED:
            self.stderr.write(
                f"Note: {slug!r} lets {queue.get_who_may_join_display()} join; invites are "
                "only asked for once 'who may join' is holders of an invite."
            )
        if options["count"] < 1 or options["uses"] < 1 or options["days"] <= 0:
            raise CommandError("--count, --uses and --days must be positive.")
        expires = time.time() + options["days"] * 86400
        page = options["base"].rstrip("/") + reverse("ticketqueue:waiting", kwargs={"slug": slug})
        for _ in range(options["count"]):
            token = invites.make_invite(queue, uses=options["uses"], expires=expires, group=group)
            self.stdout.write(token if options["codes"] else f"{page}?invite={token}")
