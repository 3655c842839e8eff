"""One command for the demo: migrate, load the events, print the admin login, serve.

Serves HTTP and WebSockets from one ASGI process (daphne's runserver) on the embedded
default: SQLite, the in-process store and channel layer, and the ticker thread.
"""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from ...demo import load_events, reset_admin_password


class Command(BaseCommand):
    help = "Set up the demo ticket shop (migrate, events, admin) and serve it."

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="Where to listen."
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="Set up and print the login, do not serve."
        )

    def handle(self, *args, addrport, no_serve=False, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database ready.")
        events = load_events()
        username, password = reset_admin_password()
        host, _, port = addrport.rpartition(":")
        base = f"http://{host or '127.0.0.1'}:{port}"
        lines = [
            "",
            f"  Demo ticket shop:  {base}/",
            f"  Events:            {', '.join(e.slug for e in events)}",
            f"  Admin:             {base}/admin/",
            f"  Admin login:       {username} / {password}",
            f"  Store:             {settings.TICKETQUEUE.get('STORE', 'default')}",
            "",
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
        if no_serve:
            return
        call_command("runserver", addrport, use_reloader=False, use_threading=True)
