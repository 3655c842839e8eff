"""Headless Chromium in a waiting room that asks for proof: the widget solves the work in a
Web Worker and shows the provider's CAPTCHA (the local stand-in's script and siteverify), then
takes its place. The server is real (tests/servers.py) and checks both."""

import pytest

from ticketqueue.models import Entry, Queue

from ..siteverify import captcha_settings, siteverify_server  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30_000


@pytest.fixture
def server_settings(siteverify_server):  # noqa: F811
    return captcha_settings(siteverify_server)


def test_the_widget_brings_work_and_a_captcha(
    asgi_server,
    browser_page,
    off_loop,
    siteverify_server,  # noqa: F811
):
    from playwright.sync_api import expect

    page = browser_page
    workers = []
    page.on("worker", lambda worker: workers.append(worker.url))
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    off_loop(
        Queue.objects.create,
        slug="guarded",
        name="Guarded",
        mode="always",
        work_difficulty=12,
        captcha_required=True,
    )
    page.goto(f"{asgi_server}/queue/guarded/wait/")
    widget = page.locator("[data-ticketqueue]")
    # The provider's CAPTCHA shows in the widget (the stand-in renders a button).
    human = widget.locator('[data-tq="captcha"] button')
    expect(human).to_be_visible(timeout=WAIT)
    assert human.get_attribute("data-sitekey") == "site-key-1"
    expect(widget.locator('[data-tq="status"]')).to_contain_text("Checking your browser")
    assert off_loop(Entry.objects.count) == 0
    human.click()
    expect(widget).to_have_attribute("data-state", "waiting", timeout=WAIT)
    expect(widget.locator('[data-tq="position"]')).to_have_text("1")
    expect(widget.locator('[data-tq="captcha"]')).to_be_hidden()
    assert [url.rsplit("/", 1)[-1] for url in workers] == ["work.js"]
    assert [form["response"] for form in siteverify_server.forms] == ["good-site-key-1"]
    assert off_loop(lambda: list(Entry.objects.values_list("state", flat=True))) == ["waiting"]
    # A reload keeps the place without a new proof.
    page.reload()
    expect(widget).to_have_attribute("data-state", "waiting", timeout=WAIT)
    assert len(siteverify_server.forms) == 1
    assert not errors


def test_an_invite_link_opens_a_line_of_invited_people(asgi_server, browser_page, off_loop):
    from playwright.sync_api import expect

    from ticketqueue import invites

    page = browser_page
    queue = off_loop(
        Queue.objects.create, slug="presale", name="Presale", mode="always", who_may_join="invited"
    )
    page.goto(f"{asgi_server}/queue/presale/wait/")
    widget = page.locator("[data-ticketqueue]")
    expect(widget.locator('[data-tq="error"]')).to_contain_text("by invitation", timeout=WAIT)
    assert off_loop(Entry.objects.count) == 0
    token = invites.make_invite(queue)
    page.goto(f"{asgi_server}/queue/presale/wait/?invite={token}")
    expect(widget).to_have_attribute("data-state", "waiting", timeout=WAIT)
    # Used up: someone else cannot come in on the same link.
    other = page.context.browser.new_context().new_page()
    other.goto(f"{asgi_server}/queue/presale/wait/?invite={token}")
    expect(other.locator('[data-tq="error"]')).to_contain_text("used up", timeout=WAIT)
    other.context.close()
    assert off_loop(Entry.objects.count) == 1
