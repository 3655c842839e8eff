"""A site's own page with the widget on it, as the README shows (no view of ticketqueue's in
between: nothing on the page's way sets the visitor cookie)."""

from django.http import HttpRequest, HttpResponse
from django.template import engines

OWN_PAGE = "<!doctype html><title>{{ slug }}</title>{% load ticketqueue %}{% queue_widget slug %}"


def own_page(request: HttpRequest, slug: str) -> HttpResponse:
    template = engines["django"].from_string(OWN_PAGE)
    return HttpResponse(template.render({"slug": slug}, request))
