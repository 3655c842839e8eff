"""Headless Chromium, two devices of one person in a line with one device per person: the
newest device takes the waiting place, the other is told and may take it back; once admitted,
the pass stays on its device. A real server (tests/servers.py), two browser contexts."""

import pytest

from ticketqueue import services
from ticketqueue.models import Queue

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20_000


def test_one_device_per_person(asgi_server, browser_page, off_loop):
    from playwright.sync_api import expect

    phone = browser_page
    queue = off_loop(
        Queue.objects.create, slug="members", name="Members", mode="always", device_policy="one"
    )
    off_loop(services.configure, queue)
    url = f"{asgi_server}/queue/members/wait/"
    phone.goto(url)
    on_phone = phone.locator("[data-ticketqueue]")
    expect(on_phone).to_have_attribute("data-state", "waiting", timeout=WAIT)
    # The same person on a second device (its visitor cookie there; its own device id).
    visitor = next(c for c in phone.context.cookies() if c["name"] == "tq_visitor")
    laptop_context = phone.context.browser.new_context()
    laptop_context.add_cookies([visitor])
    laptop = laptop_context.new_page()
    laptop.goto(url)
    on_laptop = laptop.locator("[data-ticketqueue]")
    expect(on_laptop).to_have_attribute("data-state", "waiting", timeout=WAIT)
    expect(on_laptop.locator('[data-tq="position"]')).to_have_text("1")
    error = on_phone.locator('[data-tq="error"]')
    expect(error).to_contain_text("your place moved there", timeout=WAIT)
    takeover = on_phone.locator('[data-tq="takeover"]')
    expect(takeover).to_be_visible()
    # Take it back on the phone; the laptop is told now.
    takeover.click()
    expect(on_phone).to_have_attribute("data-state", "waiting", timeout=WAIT)
    expect(on_laptop.locator('[data-tq="takeover"]')).to_be_visible(timeout=WAIT)
    # Admitted on the phone: the laptop cannot take it any more.
    off_loop(services.tick, queue)
    expect(on_phone).to_have_attribute("data-state", "granted", timeout=WAIT)
    on_laptop.locator('[data-tq="takeover"]').click()
    expect(on_laptop.locator('[data-tq="error"]')).to_contain_text(
        "finish your purchase there", timeout=WAIT
    )
    expect(on_laptop).not_to_have_attribute("data-state", "granted")
    laptop_context.close()
