"""Run as a script (tests/shop/test_sqlite.py starts it): the demo's own settings, so its
SQLite file database, and rounds of buyers purchasing at the same moment through the
purchase API, each on its own thread as under runserver. Prints one JSON line of outcomes."""

import json
import os
import sys
import threading
from collections import Counter

os.environ["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

from demo_project.shop.models import Event, open_sale  # noqa: E402
from ticketqueue import services  # noqa: E402


def main(rounds: int, buyers: int) -> None:
    call_command("migrate", verbosity=0)
    outcomes: Counter[str] = Counter()
    for round_no in range(rounds):
        event = Event.objects.create(
            slug=f"round-{round_no}",
            name=f"Round {round_no}",
            starts_at=timezone.now(),
            total=buyers,
            stock=buyers,
        )
        queue = open_sale(event, mode="auto", capacity=buyers)
        clients = []
        for i in range(buyers):
            user = get_user_model().objects.create_user(f"r{round_no}b{i}")
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
            client.token = services.join(queue, f"user:{user.pk}").pass_token
            clients.append(client)
        start = threading.Barrier(buyers)

        def buy(client: APIClient, url: str, start: threading.Barrier) -> None:
            start.wait()
            try:
                response = client.post(
                    url,
                    {},
                    format="json",
                    HTTP_X_QUEUE_PASS=client.token,
                )
                outcomes[str(response.status_code)] += 1
            except Exception as exc:  # a 500 the test client re-raised
                outcomes[f"{type(exc).__name__}: {exc}"] += 1
            finally:
                connection.close()

        url = f"/api/events/{event.slug}/purchase/"
        threads = [threading.Thread(target=buy, args=(c, url, start)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print(json.dumps(dict(outcomes)))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
