"""The site bench/gate_bench.py (and access_bench.py) serves: one purchase view with and
without HasQueuePass, a bare DRF view, the floor of a durable join, a bare Django view, and
ticketqueue's own URLs (the REST join, the access check)."""

import functools

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from ticketqueue.api import HasQueuePass

application = get_wsgi_application()
asgi_application = get_asgi_application()


class PurchaseView(APIView):
    """The purchase view a site writes: the gate is its only difference from OpenPurchaseView."""

    permission_classes = [HasQueuePass]
    queue_pass_queue = "bench"

    def get(self, request):
        return Response({"ok": True})


class OpenPurchaseView(PurchaseView):
    permission_classes = []


class BareView(APIView):
    """The floor: a DRF view that does nothing."""

    def get(self, request):
        return Response({"ok": True})

    post = get


class FloorJoinView(APIView):
    """The floor of a new visitor's REST join, what its guarantee costs at least: one Redis
    script (the next number in line) and one committed INSERT (the entry's row, in autocommit:
    its own commit). No identity, limits, counts or cookie."""

    def post(self, request):
        seq = _next_number()(keys=[f"{settings.TICKETQUEUE['KEY_PREFIX']}:floor"])
        with connection.cursor() as cursor:
            cursor.execute(
                'INSERT INTO ticketqueue_entry (queue_id, identity, seq, "order", state,'
                " joined_at) VALUES (%s, %s, %s, %s, 'waiting', now())",
                [_floor_queue(), f"floor:{seq}", seq, float(seq)],
            )
        return Response({"seq": seq})  # as the join answers


@functools.cache
def _next_number():
    import redis

    client = redis.Redis.from_url(settings.TICKETQUEUE["REDIS_URL"])
    return client.register_script("return redis.call('INCR', KEYS[1])")


@functools.cache
def _floor_queue():
    from ticketqueue.models import Queue

    return Queue.objects.get(slug="bench-floor").pk


def bare_plain(request):
    """The floor of a plain Django view (the access check is one): JSON and nothing else."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bare-plain/", bare_plain),
    path("purchase/", PurchaseView.as_view()),
    path("purchase-open/", OpenPurchaseView.as_view()),
    path("bare/", BareView.as_view()),
    path("join-floor/", FloorJoinView.as_view()),
    path("queue/", include("ticketqueue.urls")),
]
