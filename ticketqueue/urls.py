"""URLs of the app; the REST API and the waiting page hang off here."""

from django.urls import include, path

from . import views
from .prometheus import metrics_view

app_name = "ticketqueue"
urlpatterns: list = [
    path("api/", include("ticketqueue.api.urls")),
    path("<slug:slug>/wait/", views.waiting_room, name="waiting"),
    path("metrics/", metrics_view, name="metrics"),
]
