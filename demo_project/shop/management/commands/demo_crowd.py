"""Put simulated people in an event's line, so a visitor sees the position fall."""

from django.core.management.base import BaseCommand, CommandError

from ...demo import add_crowd
from ...models import Event


class Command(BaseCommand):
    help = "Add simulated people to the line of an event's queue."

    def add_arguments(self, parser):
        parser.add_argument("event", help="Slug of the event.")
        parser.add_argument("--count", type=int, default=20, help="How many (default 20).")

    def handle(self, *args, event, count, **options):
        try:
            obj = Event.objects.get(slug=event)
        except Event.DoesNotExist:
            raise CommandError(f"No event {event!r}.") from None
        crowd = add_crowd(obj, count)
        self.stdout.write(f"{crowd.joined} people joined the line of {obj.slug}")
