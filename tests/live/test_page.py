"""The waiting-room page, the template tag and the settings checks of the live layer."""

import json
import re

import pytest
from django.core.checks import run_checks
from django.template import Context, Template
from django.urls import reverse

from ticketqueue.checks import Codes
from ticketqueue.identity import VISITOR_COOKIE, new_visitor_cookie
from ticketqueue.models import Queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    return Queue.objects.create(slug="big-gig", name="The big gig")


def widget_data(html):
    (tag,) = re.findall(r"<section[^>]*data-ticketqueue[^>]*>", html, re.S)
    return dict(re.findall(r'data-([a-z0-9-]+)="([^"]*)"', tag))


def test_the_page_shows_the_widget_and_gives_a_new_visitor_a_cookie(client, queue):
    response = client.get(reverse("ticketqueue:waiting", kwargs={"slug": queue.slug}))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    cookie = response.cookies[VISITOR_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    html = response.content.decode()
    data = widget_data(html)
    assert data["queue"] == "big-gig"
    assert data["ws-url"] == "/ws/queue/big-gig/"
    assert data["status-url"] == reverse("ticketqueue:api:status", kwargs={"queue": "big-gig"})
    assert data["auto-join"] == "true"
    assert "ticketqueue/widget.js" in html and 'aria-live="polite"' in html


def test_a_known_visitor_keeps_the_cookie(client, queue):
    _, signed = new_visitor_cookie()
    client.cookies[VISITOR_COOKIE] = signed
    response = client.get(reverse("ticketqueue:waiting", kwargs={"slug": queue.slug}))
    assert VISITOR_COOKIE not in response.cookies


def test_an_unknown_queue_is_404(client):
    assert client.get(reverse("ticketqueue:waiting", kwargs={"slug": "nope"})).status_code == 404


@pytest.mark.parametrize(
    ("next_url", "checkout"),
    [
        ("/checkout/?x=1", "/checkout/?x=1"),
        ("https://evil.example/steal", "/"),
        ("//evil.example/steal", "/"),
        ("", "/"),
    ],
)
def test_the_checkout_link_is_a_safe_next_url(client, queue, next_url, checkout):
    url = reverse("ticketqueue:waiting", kwargs={"slug": queue.slug})
    response = client.get(url, {"next": next_url} if next_url else {})
    assert widget_data(response.content.decode())["checkout-url"] == checkout.replace("&", "&amp;")


def test_the_tag_takes_a_slug_and_options(settings):
    html = Template(
        "{% load ticketqueue %}{% queue_widget 'sale' checkout_url='/buy/' auto_join=False %}"
    ).render(Context())
    data = widget_data(html)
    assert (data["queue"], data["checkout-url"], data["auto-join"]) == ("sale", "/buy/", "false")
    catalog = json.loads(data["i18n"].replace("&quot;", '"').replace("&#x27;", "'"))
    assert "%(position)s" in catalog["position"] and catalog["error_queue_full"]
    assert 'data-tq="checkout" href="/buy/"' in html
    # Without a checkout URL there is no link to nowhere: the page may listen for the event.
    bare = Template("{% load ticketqueue %}{% queue_widget 'sale' %}").render(Context())
    assert 'data-tq="checkout"' not in bare and 'href="#"' not in bare


def test_every_widget_string_goes_through_gettext(monkeypatch):
    from ticketqueue.templatetags import ticketqueue as tags

    monkeypatch.setattr(tags, "gettext", lambda text: f"<{text}>")
    assert all(text.startswith("<") and text.endswith(">") for text in tags.catalog().values())


def ids(settings, **ticketqueue):
    settings.DEBUG = True
    settings.TICKETQUEUE = {"STORE": "ticketqueue.store.memory.MemoryStore", **ticketqueue}
    return {m.id for m in run_checks() if m.id.startswith("ticketqueue.")}


def test_live_settings_are_checked(settings):
    assert ids(settings) == set()
    assert ids(settings, LIVE_BROADCAST="carrier-pigeon") == {Codes.LIVE_BROADCAST}
    assert ids(settings, LIVE_BROADCAST="local") == set()
    assert ids(settings, LIVE_BROADCAST="redis") == {Codes.LIVE_BROADCAST}  # now 'store'
    for key in (
        "RESYNC_INTERVAL",
        "HEARTBEAT_INTERVAL",
        "WS_MAX_MESSAGE",
        "WS_MESSAGE_RATE",
        "WS_MESSAGE_BURST",
    ):
        assert ids(settings, **{key: 0}) == {Codes.POSITIVE}, key
