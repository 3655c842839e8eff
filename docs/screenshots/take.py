"""The waiting page in each of its states, at 1280 and 375 px wide (docs/waiting-page.md).

    .venv/bin/python docs/screenshots/take.py [--out docs/screenshots]

Serves the demo project with uvicorn in this process (a throwaway SQLite database, the
in-process store, the embedded ticker, and the default look: ticketqueue/base.html), puts
people in line through ticketqueue's own services, and photographs ``/queue/<slug>/wait/`` in
headless Chromium (Debian's chromium, driven by Playwright). Each shot waits until the widget
shows its state, so a state the page cannot reach fails here instead of being photographed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = (1280, 375)
WAIT = 30_000  # ms


def serve(port: int):
    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from demo_project.asgi import application

    # Static files as runserver serves them (the widget's script and style).
    config = uvicorn.Config(
        ASGIStaticFilesHandler(application), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def off_loop(fn, *args):
    """Run ``fn`` in another thread: Playwright's sync API runs an event loop in this one,
    where Django refuses database work."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def make_queues():
    from django.utils import timezone

    import ticketqueue
    from ticketqueue import services
    from ticketqueue.models import Queue

    line = Queue.objects.create(
        slug="summer-festival", name="Summer Festival 2027", mode="always", capacity=1
    )
    services.join(line, "anon:" + "0" * 32)  # holds the one pass: everyone else waits
    for i in range(1, 1248):
        services.join(line, f"anon:{i:032d}")
    ticketqueue.set_stock(line, None)
    Queue.objects.create(
        slug="new-year-gala",
        name="New Year's Gala",
        mode="always",
        state=Queue.State.SCHEDULED,
        opens_at=timezone.now() + timedelta(hours=2, minutes=14, seconds=5),
    )
    Queue.objects.create(slug="jazz-night", name="Jazz Night", mode="always", capacity=100)
    Queue.objects.create(
        slug="stadium-tour", name="Stadium Tour", mode="always", state=Queue.State.CLOSED
    )
    return line


def shoot(out: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    import ticketqueue
    from ticketqueue import tick_loop

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server, thread = serve(port)
    tick_loop.embedded.ensure_started()
    line = make_queues()
    shots: list[Path] = []
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--font-render-hinting=none"]

    def photograph(page, name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900 if width > 600 else 780})
            page.wait_for_timeout(300)  # the layout settles at the new width
            path = out / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
            page = browser.new_context(locale="en-GB").new_page()
            widget = page.locator("[data-ticketqueue]")

            page.goto(base + "/queue/summer-festival/wait/")
            expect(page.locator('[data-tq="position"]')).to_have_text("1,248", timeout=WAIT)
            photograph(page, "waiting")

            off_loop(ticketqueue.set_stock, line, 40)  # fewer tickets than people ahead
            expect(page.locator('[data-tq="likely"]')).to_be_visible(timeout=WAIT)
            photograph(page, "likely-sold-out")

            page.locator('[data-tq="leave"]').click()
            expect(widget).to_have_attribute("data-ended", "left_left", timeout=WAIT)
            photograph(page, "left")

            page.goto(base + "/queue/new-year-gala/wait/")
            expect(page.locator('[data-tq="countdown"]')).to_be_visible(timeout=WAIT)
            expect(page.locator('[data-tq="position"]')).not_to_have_text("–", timeout=WAIT)
            photograph(page, "scheduled")

            page.goto(base + "/queue/jazz-night/wait/")
            expect(widget.locator('[data-tq="checkout"][data-ready="true"]')).to_be_visible(
                timeout=WAIT
            )
            page.locator('[data-tq="checkout"]').blur()
            photograph(page, "granted")

            page.goto(base + "/queue/stadium-tour/wait/")
            expect(widget).to_have_attribute("data-ended", "closed", timeout=WAIT)
            photograph(page, "sold-out")
            browser.close()
    finally:
        tick_loop.embedded.stop()
        server.should_exit = True
        thread.join(timeout=10)
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    var = tempfile.mkdtemp(prefix="tq-shots-")
    os.environ.update(DJANGO_SETTINGS_MODULE="demo_project.settings", DEMO_VAR_DIR=var)
    sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    # The default look, not the demo shop's: the page ticketqueue ships.
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "WAITING_BASE_TEMPLATE": None}
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        for path in shoot(args.out):
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    finally:
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
