"""The API's URLs, included by ticketqueue.urls under ``api/`` (names: ``ticketqueue:api:*``)."""

from django.urls import include, path, re_path

from . import views
from .access import access
from .exceptions import not_found

app_name = "api"

urlpatterns = [
    path("queues/<slug:queue>/", views.QueueInfoView.as_view(), name="queue"),
    path("queues/<slug:queue>/join/", views.JoinView.as_view(), name="join"),
    path("queues/<slug:queue>/status/", views.StatusView.as_view(), name="status"),
    path("queues/<slug:queue>/leave/", views.LeaveView.as_view(), name="leave"),
    path("queues/<slug:queue>/heartbeat/", views.HeartbeatView.as_view(), name="heartbeat"),
    path("queues/<slug:queue>/release/", views.ReleaseView.as_view(), name="release"),
    path("queues/<slug:queue>/devices/", views.DevicesView.as_view(), name="devices"),
    path("access/", access, name="access"),
    path("operator/", include("ticketqueue.api.operator.urls")),
    path("jwks.json", views.JWKSView.as_view(), name="jwks"),
    path("schema/", views.QueueSchemaView.as_view(), name="schema"),
    # Last: whatever else is asked under the API is JSON not_found, not Django's HTML 404.
    re_path(r"", not_found),
]
