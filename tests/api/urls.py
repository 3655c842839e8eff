from django.urls import path

from tests.urls import urlpatterns as base

from . import views

urlpatterns = [
    *base,
    path("buy/<slug:queue>/", views.PurchaseView.as_view()),
    path("buy-fixed/", views.FixedQueuePurchaseView.as_view()),
    path("complete/<slug:queue>/", views.CompleteOrderView.as_view()),
    path("buy-object/<int:pk>/", views.ObjectPurchaseView.as_view()),
    path("buy-unnamed/", views.UnnamedQueueView.as_view()),
    path("free/<slug:queue>/", views.UnprotectedView.as_view()),
    path("plain/<slug:queue>/", views.plain_purchase),
    path("plain-fixed/", views.plain_fixed_purchase),
    path("async/<slug:queue>/", views.async_purchase),
    path("checkout/<slug:queue>/", views.checkout),
    path("open/", views.open_page),
    path("buy-none/", views.NoSuchQueueView.as_view()),
    path("buy-no-queue-object/", views.NoQueueObjectView.as_view()),
    path("plain-none/", views.plain_no_such_queue),
]
