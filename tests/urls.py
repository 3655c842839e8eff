from django.contrib import admin
from django.urls import include, path

from .pages import own_page

urlpatterns = [
    path("admin/", admin.site.urls),
    path("queue/", include("ticketqueue.urls")),
    path("event/<slug:slug>/", own_page),
]
