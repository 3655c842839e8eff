"""Headless Chromium in the app's own waiting room: its place falls as ticks admit the people
ahead, it is granted, it holds the pass (cookie and sessionStorage) and reaches checkout."""

import json
import re

import pytest
from django.urls import reverse

from ticketqueue import services
from ticketqueue.models import Queue
from ticketqueue.place import Place

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20_000  # ms; every wait ends as soon as the page shows what is awaited


def make_queue_with_four_waiting():
    queue = Queue.objects.create(slug="big-gig", name="The big gig", mode="always")
    services.configure(queue)
    for i in range(4):
        services.join(queue, f"user:{1000 + i}")
    return queue


def test_the_widget_walks_a_visitor_from_the_line_to_checkout(asgi_server, browser_page, off_loop):
    from playwright.sync_api import expect

    page = browser_page
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    queue = off_loop(make_queue_with_four_waiting)

    # The "checkout" of this stand-alone test is the REST status call: it answers for the
    # identity the browser holds, so reaching it with the pass proves the way through.
    checkout = reverse("ticketqueue:api:status", kwargs={"queue": queue.slug})
    page.goto(f"{asgi_server}/queue/{queue.slug}/wait/?next={checkout}")
    widget = page.locator("[data-ticketqueue]")
    position = widget.locator('[data-tq="position"]')

    expect(position).to_have_text("5", timeout=WAIT)  # auto-joined behind the four
    expect(widget.locator('[data-tq="ahead"]')).to_have_text("4")
    expect(widget.locator('[data-tq="eta"]')).not_to_have_text("–")
    assert page.locator('[data-tq="progress"]').evaluate("p => p.value") == 0

    off_loop(services.tick, queue, limit=2)
    expect(position).to_have_text("3", timeout=WAIT)
    expect(widget.locator('[data-tq="ahead"]')).to_have_text("2")
    assert page.locator('[data-tq="progress"]').evaluate("p => p.value") == 50
    # The site says one ticket is left: two pass holders and two people are ahead of it.
    likely = widget.locator('[data-tq="likely"]')
    expect(likely).to_be_hidden()
    off_loop(services.set_stock, queue, 1)
    off_loop(services.tick, queue, limit=0)
    expect(likely).to_be_visible(timeout=WAIT)
    expect(likely).to_contain_text("Tickets will likely run out before your turn")
    off_loop(services.set_stock, queue, None)
    off_loop(services.tick, queue, limit=2)
    expect(position).to_have_text("1", timeout=WAIT)
    expect(likely).to_be_hidden()  # the site no longer says
    # Screen readers were told (the polite live region holds the place).
    assert "5" in page.locator('[data-tq="announce"]').inner_text()

    off_loop(services.tick, queue, limit=1)
    link = widget.locator('[data-tq="checkout"][data-ready="true"]')
    expect(link).to_be_visible(timeout=WAIT)
    expect(widget).to_have_attribute("data-state", "granted")
    assert page.locator('[data-tq="alert"]').inner_text()  # announced at once

    stored = json.loads(page.evaluate("sessionStorage.getItem('ticketqueue.pass.big-gig')"))
    cookies = {c["name"]: c for c in page.context.cookies()}
    pass_cookie = cookies[f"tq_pass_{queue.store_id}"]
    assert pass_cookie["httpOnly"] and pass_cookie["value"] == stored["pass"]

    link.click()
    page.wait_for_url(f"**{checkout}", timeout=WAIT)
    answer = json.loads(page.locator("body").inner_text())
    assert (answer["state"], answer["pass"]) == ("admitted", stored["pass"])
    assert errors == []  # no script error, no failed request on the way


def test_a_first_visit_on_the_sites_own_page_takes_a_place(asgi_server, browser_page, off_loop):
    """No view of ticketqueue's sets the visitor cookie on the way to a site's own page: the
    widget gets the visitor its id from the REST status call and joins."""
    from playwright.sync_api import expect

    page = browser_page
    queue = off_loop(make_queue_with_four_waiting)
    assert not page.context.cookies()
    page.goto(f"{asgi_server}/event/{queue.slug}/")
    widget = page.locator("[data-ticketqueue]")
    expect(widget.locator('[data-tq="position"]')).to_have_text("5", timeout=WAIT)
    expect(widget.locator('[data-tq="error"]')).to_be_hidden()
    assert "tq_visitor" in {c["name"] for c in page.context.cookies()}


def test_every_tab_shows_the_same_progress(asgi_server, browser_page, off_loop):
    """A second tab opened after the line moved shows the progress of the one place, not a
    progress of its own from where it first saw it."""
    from playwright.sync_api import expect

    first = browser_page
    queue = off_loop(make_queue_with_four_waiting)
    first.goto(f"{asgi_server}/queue/{queue.slug}/wait/")
    expect(first.locator('[data-tq="position"]')).to_have_text("5", timeout=WAIT)
    off_loop(services.tick, queue, limit=2)
    expect(first.locator('[data-tq="position"]')).to_have_text("3", timeout=WAIT)

    second = first.context.new_page()
    second.goto(f"{asgi_server}/queue/{queue.slug}/wait/")
    expect(second.locator('[data-tq="position"]')).to_have_text("3", timeout=WAIT)
    progress = '[data-tq="progress"]'
    assert second.locator(progress).evaluate("p => p.value") == 50
    assert first.locator(progress).evaluate("p => p.value") == 50

    # A place that ended is forgotten: a new place starts its progress afresh.
    second.locator('[data-tq="leave"]').click()
    expect(second.locator("[data-ticketqueue]")).to_have_attribute("data-ended", "left_left")
    second.locator('[data-tq="join"]').click()
    expect(second.locator('[data-tq="position"]')).to_have_text("3", timeout=WAIT)
    assert second.locator(progress).evaluate("p => p.value") == 0


def test_a_scheduled_sale_counts_down_to_its_opening(asgi_server, browser_page, off_loop):
    from datetime import timedelta

    from django.utils import timezone
    from playwright.sync_api import expect

    page = browser_page
    opens = timezone.now() + timedelta(hours=1, minutes=30)
    off_loop(
        Queue.objects.create,
        slug="gala",
        name="Gala",
        mode="always",
        state=Queue.State.SCHEDULED,
        opens_at=opens,
    )
    page.goto(f"{asgi_server}/queue/gala/wait/")
    widget = page.locator("[data-ticketqueue]")
    expect(widget).to_have_attribute("data-state", "waiting", timeout=WAIT)  # in the pre-queue
    clock = widget.locator('[data-tq="clock"]')
    expect(clock).to_have_text(re.compile(r"^01:(29|30):\d\d$"))
    before = clock.inner_text()
    expect(clock).not_to_have_text(before, timeout=WAIT)  # it ticks
    # The place is drawn at opening: no figures until then.
    expect(widget.locator('[data-tq="figures"]')).to_be_hidden()
    expect(widget.locator('[data-tq="status"]')).to_contain_text("has not opened yet")


def test_the_wait_counts_down_between_updates_and_each_update_resyncs_it(
    asgi_server, browser_page, off_loop
):
    from playwright.sync_api import expect

    def make():
        queue = Queue.objects.create(slug="club", name="Club", mode="always", rate_per_minute=6)
        services.configure(queue)
        for i in range(3):
            services.join(queue, f"user:{2000 + i}")
        return queue

    queue = off_loop(make)
    page = browser_page
    said = []  # the wait the server's frames give this page's place
    place = Place()  # what the page should work out from them (protocol version 2)

    def heard(payload):
        message = json.loads(payload) if isinstance(payload, str) else {}
        place.apply(message)
        if message.get("type") in ("queue_update", "line") and place.eta_seconds is not None:
            said.append(place.eta_seconds)

    page.on("websocket", lambda ws: ws.on("framereceived", heard))
    page.goto(f"{asgi_server}/queue/club/wait/")
    widget = page.locator("[data-ticketqueue]")
    expect(widget.locator('[data-tq="position"]')).to_have_text("4", timeout=WAIT)
    eta = widget.locator('[data-tq="eta"]')
    expect(eta).to_have_attribute("data-seconds", re.compile(r"^\d+$"), timeout=WAIT)
    assert said and said[-1] > 5
    # Nobody is admitted, so no new figure comes: the page counts down on its own.
    page.wait_for_function(
        f"() => +document.querySelector('[data-tq=eta]').dataset.seconds <= {said[-1] - 2}",
        timeout=WAIT,
    )
    # An update (two admitted: a line frame with the line's rate) resyncs it.
    heard_before = len(said)
    off_loop(services.tick, queue, limit=2, use_rate=False)
    expect(widget.locator('[data-tq="position"]')).to_have_text("2", timeout=WAIT)
    assert len(said) > heard_before
    shown = int(eta.get_attribute("data-seconds"))
    assert said[-1] - 2 <= shown <= said[-1], (shown, said[-1])


def test_the_page_shows_a_milestone_and_tells_the_site(asgi_server, browser_page, off_loop):
    from playwright.sync_api import expect

    from ticketqueue import ticker

    def make():
        queue = Queue.objects.create(
            slug="arena", name="Arena", mode="always", capacity=1, notify_within=3
        )
        services.configure(queue)
        for i in range(4):
            services.join(queue, f"user:{3000 + i}")
        return queue

    queue = off_loop(make)
    page = browser_page
    page.goto(f"{asgi_server}/queue/arena/wait/")
    page.evaluate(
        "window.heard = []; document.addEventListener('ticketqueue:milestone',"
        " e => window.heard.push(e.detail))"
    )
    widget = page.locator("[data-ticketqueue]")
    expect(widget.locator('[data-tq="position"]')).to_have_text("5", timeout=WAIT)
    milestone = widget.locator('[data-tq="milestone"]')
    expect(milestone).to_be_hidden()

    def admit_two():
        for _ in range(2):
            ticker.run_tick(queues=[queue], batches=1, sleep=lambda s: None)
            services.release_entry(queue, queue.entries.filter(state="admitted").get().seq)
        ticker.run_tick(queues=[queue], batches=1, sleep=lambda s: None)

    off_loop(admit_two)  # three admitted: this page is 2nd, within 3 of the front
    expect(milestone).to_have_text(
        "You are within 3 places of the front. Stay close: your turn is coming.", timeout=WAIT
    )
    heard = page.evaluate("window.heard")
    assert [(h["queue"], h["milestone"], h["within"]) for h in heard] == [("arena", "near", 3)]

    def admit_page():
        for _ in range(2):
            services.release_entry(queue, queue.entries.filter(state="admitted").get().seq)
            ticker.run_tick(queues=[queue], batches=1, sleep=lambda s: None)

    off_loop(admit_page)  # its turn: "near the front" is over
    expect(widget).to_have_attribute("data-state", "granted", timeout=WAIT)
    expect(milestone).to_be_hidden()


def test_a_visitor_is_asked_to_log_in_for_a_queue_of_users(asgi_server, browser_page, off_loop):
    from playwright.sync_api import expect

    page = browser_page
    off_loop(Queue.objects.create, slug="members", name="Members", who_may_join="users")
    page.goto(f"{asgi_server}/queue/members/wait/")
    widget = page.locator("[data-ticketqueue]")
    login = widget.locator('[data-tq="login"]')
    expect(login).to_be_visible(timeout=WAIT)
    assert login.get_attribute("href").endswith("?next=%2Fqueue%2Fmembers%2Fwait%2F")
    expect(widget.locator('[data-tq="error"]')).to_contain_text("Log in")
    expect(widget).to_have_attribute("data-state", "none")


def test_the_widgets_place_keeps_the_same_arithmetic_as_the_python_one(
    asgi_server, browser_page, off_loop
):
    """The widget's Place (JavaScript) and ticketqueue.place.Place, fed the same frames of
    random sales (tests/live/test_place.py's model, frames lost included), agree after each."""
    from tests.live.test_place import a_sale

    queue = off_loop(make_queue_with_four_waiting)
    page = browser_page
    page.goto(f"{asgi_server}/queue/{queue.slug}/wait/")
    page.wait_for_function("() => window.TicketQueue && window.TicketQueue.Place")
    for seed in range(40):
        frames = [frame for _, frame, _ in a_sale(seed)]
        if seed % 2:  # a slow reader: every third line frame never arrives
            frames = [f for i, f in enumerate(frames) if f["type"] != "line" or i % 3]
        place = Place()
        expected = []
        for frame in frames:
            place.apply(frame)
            expected.append([place.state, place.position, place.eta_seconds, place.sold_out_likely])
        shown = page.evaluate(
            """(frames) => {
                const place = new window.TicketQueue.Place();
                return frames.map((frame) => {
                    place.apply(frame);
                    return [place.state, place.position, place.eta, place.soldOutLikely];
                });
            }""",
            frames,
        )
        assert shown == expected, seed
