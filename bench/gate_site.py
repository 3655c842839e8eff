"""The site bench/gate_bench.py (and access_bench.py) serves: one purchase view with and
without HasQueuePass, a bare DRF view, a bare Django view, and ticketqueue's own URLs (the REST
join, the access check)."""

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
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


def bare_plain(request):
    """The floor of a plain Django view (the access check is one): JSON and nothing else."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bare-plain/", bare_plain),
    path("purchase/", PurchaseView.as_view()),
    path("purchase-open/", OpenPurchaseView.as_view()),
    path("bare/", BareView.as_view()),
    path("queue/", include("ticketqueue.urls")),
]
