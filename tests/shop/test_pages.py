"""The shop's pages: the event list, checkout behind queue_pass_required, the order page."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from demo_project.shop.models import Order
from ticketqueue import gate, services
from ticketqueue.identity import VISITOR_COOKIE, new_visitor_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _demo_urls(settings):
    settings.ROOT_URLCONF = "demo_project.urls"


def browser_with_pass(event):
    """A browser (session login) admitted to the event's queue, holding the pass cookie."""
    user = get_user_model().objects.create_user("fan")
    client = Client()
    client.force_login(user)
    status = services.join(event.queue, f"user:{user.pk}")
    client.cookies[gate.pass_cookie_name(event.queue.store_id)] = status.pass_token
    return client, user


def test_checkout_without_a_pass_is_refused(make_event):
    event = make_event()
    response = Client().get(f"/events/{event.slug}/checkout/", HTTP_ACCEPT="application/json")
    assert response.status_code == 429
    assert response.json()["code"] == "pass_missing"


def test_checkout_with_a_pass_buys_and_shows_the_order(make_event):
    event = make_event(stock=2)
    client, user = browser_with_pass(event)
    page = client.get(f"/events/{event.slug}/checkout/")
    assert page.status_code == 200
    assert b'id="buy"' in page.content
    response = client.post(f"/events/{event.slug}/checkout/", {"quantity": "1"})
    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    assert order.user == user
    done = client.get(response["Location"])
    assert done.status_code == 200 and b"Thank you" in done.content
    # Someone else cannot look at it.
    assert Client().get(response["Location"]).status_code == 404


def test_anonymous_browser_checks_out_with_its_visitor_cookie(make_event):
    event = make_event()
    visitor, signed = new_visitor_cookie()
    client = Client()
    client.cookies[VISITOR_COOKIE] = signed
    status = services.join(event.queue, f"anon:{visitor}")
    client.cookies[gate.pass_cookie_name(event.queue.store_id)] = status.pass_token
    response = client.post(f"/events/{event.slug}/checkout/", {"quantity": "1"})
    assert response.status_code == 302
    assert Order.objects.get().identity == f"anon:{visitor}"


def test_a_sold_out_checkout_sends_back_to_the_event(make_event):
    event = make_event(stock=1, capacity=5)
    first, _ = browser_with_pass(event)
    assert first.post(f"/events/{event.slug}/checkout/", {"quantity": "1"}).status_code == 302
    second = Client()
    other = get_user_model().objects.create_user("late")
    second.force_login(other)
    # The queue closed with the last ticket: no new passes, and none for the late fan.
    event.queue.refresh_from_db()
    assert event.queue.state == "closed"
    assert Order.objects.count() == 1


def test_event_list_and_event_page(make_event):
    event = make_event(stock=7)
    listing = Client().get("/")
    assert listing.status_code == 200 and event.name.encode() in listing.content
    page = Client().get(f"/events/{event.slug}/")
    assert page.status_code == 200
    assert b"7 of 7 tickets left" in page.content


def test_api_lists_events_with_their_stock(make_event):
    event = make_event(stock=4)
    data = Client().get("/api/events/").json()
    assert {"slug": event.slug, "stock": 4, "queue": event.slug}.items() <= data[0].items()


def test_the_event_page_gives_an_anonymous_visitor_its_id_once(make_event):
    event = make_event()
    client = Client()
    first = client.get(f"/events/{event.slug}/")
    assert VISITOR_COOKIE in first.cookies
    again = client.get(f"/events/{event.slug}/")
    assert VISITOR_COOKIE not in again.cookies  # kept, not replaced
