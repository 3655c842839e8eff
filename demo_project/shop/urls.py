from django.urls import path

from . import api, views

app_name = "shop"

urlpatterns = [
    path("", views.event_list, name="events"),
    path("events/<slug:slug>/", views.event_detail, name="event"),
    path("events/<slug:slug>/checkout/", views.checkout, name="checkout"),
    path("events/<slug:slug>/crowd/", views.demo_crowd, name="crowd"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("api/events/", api.EventListView.as_view(), name="api-events"),
    path("api/events/<slug:slug>/purchase/", api.PurchaseView.as_view(), name="api-purchase"),
]
