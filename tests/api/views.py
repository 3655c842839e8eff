"""Purchase views a site would write, guarded each way the gate offers."""

from django.http import JsonResponse
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

import ticketqueue
from ticketqueue.api import HasQueuePass
from ticketqueue.gate import queue_pass_required
from ticketqueue.models import Queue


def _bought(request):
    claims = request.queue_pass
    return {"queue": claims.queue_id, "seq": claims.seq, "identity": claims.identity}


class PurchaseView(APIView):
    """The queue comes from the <slug:queue> URL argument."""

    permission_classes = [HasQueuePass]

    def get(self, request, queue):
        return Response(_bought(request))

    post = get


class CompleteOrderView(APIView):
    """An order completes behind the gate: the view frees the slot with the claims it holds."""

    permission_classes = [HasQueuePass]

    def post(self, request, queue):
        change = ticketqueue.release(request.queue_pass)
        return Response({"state": change.state.value, "seq": change.seq})


class FixedQueuePurchaseView(APIView):
    permission_classes = [HasQueuePass]
    queue_pass_queue = "sale"

    def get(self, request):
        return Response(_bought(request))


class ObjectPurchaseView(GenericAPIView):
    """No queue up front: the object (a Queue here) names it."""

    permission_classes = [HasQueuePass]
    queryset = Queue.objects.all()
    lookup_field = "pk"

    def get(self, request, pk):
        self.get_object()
        return Response(_bought(request))


class UnnamedQueueView(APIView):
    permission_classes = [HasQueuePass]

    def get(self, request):
        return Response({})


class UnprotectedView(APIView):
    def get(self, request, queue):
        return Response({"ok": True})


@queue_pass_required
def plain_purchase(request, queue):
    return JsonResponse(_bought(request))


@queue_pass_required(queue="sale")
def plain_fixed_purchase(request):
    return JsonResponse(_bought(request))


@queue_pass_required
async def async_purchase(request, queue):
    return JsonResponse(_bought(request))


def checkout(request, queue):
    """Gated by the middleware only."""
    return JsonResponse(_bought(request))


def open_page(request):
    return JsonResponse({"open": True})


class NoSuchQueueView(APIView):
    permission_classes = [HasQueuePass]

    def queue_pass_queue(self, request, view):
        return None  # e.g. the event sells without a queue

    def get(self, request):
        return Response({})


@queue_pass_required(queue=lambda request: None)
def plain_no_such_queue(request):
    return JsonResponse({})


class NoQueueObjectView(GenericAPIView):
    """Neither the view nor its object names a queue: a configuration error, never any queue."""

    permission_classes = [HasQueuePass]

    def get_object(self):
        obj = object()
        self.check_object_permissions(self.request, obj)
        return obj

    def get(self, request):
        self.get_object()
        return Response({})
