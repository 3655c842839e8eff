"""The operator API's URLs, under ``api/operator/`` (names: ``ticketqueue:api:operator-*``)."""

from django.urls import path

from . import views
from .tokens import TokenObtainView, TokenRefreshView

urlpatterns = [
    path("token/", TokenObtainView.as_view(), name="operator-token"),
    path("token/refresh/", TokenRefreshView.as_view(), name="operator-token-refresh"),
    path("queues/", views.OperatorQueuesView.as_view(), name="operator-queues"),
    path("queues/<slug:queue>/", views.OperatorQueueView.as_view(), name="operator-queue"),
    path("queues/<slug:queue>/admit/", views.AdmitView.as_view(), name="operator-admit"),
    path("queues/<slug:queue>/close/", views.CloseView.as_view(), name="operator-close"),
    path("queues/<slug:queue>/entries/", views.EntriesView.as_view(), name="operator-entries"),
    path(
        "queues/<slug:queue>/admissions/",
        views.AdmissionsView.as_view(),
        name="operator-admissions",
    ),
    path("queues/<slug:queue>/actions/", views.ActionsView.as_view(), name="operator-actions"),
    path("queues/<slug:queue>/history/", views.HistoryView.as_view(), name="operator-history"),
]
