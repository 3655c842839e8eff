"""Headless Chromium against a real ASGI server (tests/servers.py: daphne in a subprocess on
the test database and Redis, or uvicorn in a thread on the embedded store)."""

import shutil

import pytest

from ..servers import asgi_server, server_settings, store_for_server  # noqa: F401 - fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def off_loop():
    """Runs database work in a thread of its own: Playwright's sync API keeps an event loop
    running in the test's thread, where Django refuses synchronous queries."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    with ThreadPoolExecutor(max_workers=1) as pool:

        def run(func, *args, **kwargs):
            return pool.submit(func, *args, **kwargs).result()

        yield run
        pool.submit(connections.close_all).result()


@pytest.fixture
def browser_page():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives the browser a fresh temporary profile (user data dir) every time.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context()
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()
            browser.close()
