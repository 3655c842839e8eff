"""A person buying a ticket in the demo shop, in headless Chromium.

Starts ``manage.py rundemo`` (the embedded default) on a free port with a fresh database,
or uses the shop at TICKETQUEUE_E2E_URL (then the crowd comes from ``manage.py demo_crowd``
run by whoever started it). Chromium is Debian's package driven by Playwright for Python:
never ``playwright install``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EVENT = "opening-night"  # always queues; 60 admissions a minute
CROWD = 6

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"rundemo exited:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - localhost
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


class Served:
    """A server process a test started; ``log`` is its output once it stopped."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.log = ""


@contextlib.contextmanager
def serving(argv: list[str], cwd: Path, env: dict[str, str], ready_url: str):
    """Start a server, wait until ``ready_url`` answers, stop it (and read its output) after."""
    proc = subprocess.Popen(  # noqa: S603 - our own command
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    served = Served(proc)
    try:
        wait_for(ready_url, proc)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            served.log = proc.stdout.read()
            proc.stdout.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The base URL of a running demo shop."""
    external = os.environ.get("TICKETQUEUE_E2E_URL")
    if external:
        wait_for(external.rstrip("/") + "/", None)
        yield external.rstrip("/")
        return
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo_project.settings",
        "DEMO_VAR_DIR": str(tmp_path_factory.mktemp("demo_var")),
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "manage.py", "rundemo", f"127.0.0.1:{port}"]
    with serving(argv, ROOT, env, base + "/"):
        yield base


@pytest.fixture
def page(tmp_path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        try:
            yield page
        finally:
            with_shot = os.environ.get("TICKETQUEUE_E2E_SHOTS")
            if with_shot:
                page.screenshot(path=str(Path(with_shot) / "last.png"), full_page=True)
            context.close()
            browser.close()


def position_of(page) -> int | None:
    text = page.locator("[data-tq=position]").first.inner_text().strip()
    return int(text) if re.fullmatch(r"\d+", text) else None


def test_a_visitor_waits_is_granted_and_buys(shop, page):
    page.goto(shop + "/")
    crowd = page.locator(f"form[action='/events/{EVENT}/crowd/']")
    if crowd.count():
        # Fewer simulated people than the button's default, to keep the test short.
        crowd.locator("input[name=count]").evaluate(f"e => e.value = '{CROWD}'")
        crowd.locator("button").click()
    else:
        page.goto(f"{shop}/events/{EVENT}/")
    page.wait_for_url(re.compile(rf"/events/{EVENT}/$"))

    # The widget joins on load and shows the exact place in line, falling as people ahead
    # are admitted; then the pass arrives and the visitor continues to checkout.
    positions: list[int] = []
    checkout = page.locator("[data-tq=checkout]")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if "/checkout/" in page.url or checkout.is_visible():
            break
        position = position_of(page)
        if position is not None and (not positions or positions[-1] != position):
            positions.append(position)
            shots = os.environ.get("TICKETQUEUE_E2E_SHOTS")
            if shots and len(positions) == 2:
                page.screenshot(path=str(Path(shots) / "waiting.png"), full_page=True)
        page.wait_for_timeout(150)
    else:
        pytest.fail(f"never granted; positions seen: {positions}")
    assert positions, "the widget never showed a position"
    assert positions == sorted(positions, reverse=True), f"the position rose: {positions}"
    if not os.environ.get("TICKETQUEUE_E2E_URL"):
        assert positions[0] > positions[-1], f"the position never fell: {positions}"

    if "/checkout/" not in page.url:
        checkout.click()
    page.wait_for_url(re.compile(rf"/events/{EVENT}/checkout/$"))
    page.locator("#buy").click()
    page.wait_for_url(re.compile(r"/orders/\d+/$"))
    assert page.locator("#order-done").inner_text() == "Thank you!"
