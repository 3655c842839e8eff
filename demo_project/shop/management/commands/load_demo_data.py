"""Load the demo shop's events (each with its queue) and create or reset the admin account."""

from django.core.management.base import BaseCommand

from ...demo import load_events, reset_admin_password


class Command(BaseCommand):
    help = "Create the demo events with their queues, and the admin account with a new password."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-admin", action="store_true", help="Leave the admin account alone."
        )

    def handle(self, *args, no_admin=False, **options):
        events = load_events()
        self.stdout.write(f"{len(events)} events on sale: {', '.join(e.slug for e in events)}")
        if not no_admin:
            username, password = reset_admin_password()
            self.stdout.write(f"Admin login: {username} / {password}")
