"""The README's "Install into your site", followed literally in a brand-new project.

``django-admin startproject``, then exactly the snippets README.md shows (read from it, so the
README cannot drift), a page of the site's own with the widget line the README gives, and
``runserver``. An anonymous visitor and a logged-in user open that page in headless Chromium,
take their places and are admitted by the web process itself (nothing else is configured).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_demo_browser import CHROMIUM, CHROMIUM_ARGS, free_port, serving, sync_api

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30_000  # ms; every wait ends as soon as the page shows what it waits for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def readme_blocks() -> list[str]:
    """The README's code blocks of its install section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Install into your site", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:python|bash)\n(.*?)```", section, re.S)


def block_starting(blocks: list[str], first_line: str) -> str:
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


def apply_the_readme(project: Path) -> str:
    """Edit a fresh ``mysite`` as the README says; returns its widget line."""
    blocks = readme_blocks()
    settings_block = block_starting(blocks, "# settings.py")
    apps = re.findall(r'^\s+"([\w.]+)",', settings_block, re.M)
    assert apps[0] == "daphne", "the README puts daphne first"
    settings = project / "mysite" / "settings.py"
    text = settings.read_text()
    text = text.replace("INSTALLED_APPS = [\n", f'INSTALLED_APPS = [\n    "{apps[0]}",\n', 1)
    text = re.sub(
        r"(INSTALLED_APPS = \[.*?)(\n\])",
        lambda m: m.group(1) + "".join(f'\n    "{app}",' for app in apps[1:]) + m.group(2),
        text,
        count=1,
        flags=re.S,
    )
    (asgi_line,) = [line for line in settings_block.splitlines() if "ASGI_APPLICATION" in line]
    text += f"\n{asgi_line}\nALLOWED_HOSTS = ['127.0.0.1']\n"
    settings.write_text(text)

    urls_block = block_starting(blocks, "# urls.py")
    (route,) = [line.strip() for line in urls_block.splitlines() if "ticketqueue.urls" in line]
    urls = project / "mysite" / "urls.py"
    text = urls.read_text().replace(
        "from django.urls import path", "from django.urls import include, path"
    )
    text = text.replace("urlpatterns = [", f"urlpatterns = [\n    {route}", 1)
    # The site's own page, with the widget line of the README (not part of the README).
    text += (
        "\nfrom django.shortcuts import render\n"
        "from ticketqueue.models import Queue\n\n"
        "def event(request, slug):\n"
        "    return render(request, 'event.html', {'queue': Queue.objects.get(slug=slug)})\n\n"
        "urlpatterns.append(path('event/<slug:slug>/', event))\n"
    )
    urls.write_text(text)
    (project / "mysite" / "asgi.py").write_text(block_starting(blocks, "# asgi.py"))

    install = (ROOT / "README.md").read_text().split("## Install into your site", 1)[1]
    widget = re.search(r"`(\{% load ticketqueue %\}\{% queue_widget .*?%\})`", install, re.S)
    assert widget, "the README shows the widget line"
    return " ".join(widget.group(1).split())


def manage(project: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_readme_install_gives_a_working_waiting_room(tmp_path):
    project = tmp_path / "site"
    project.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(project)],
        check=True,
        timeout=60,
    )
    widget_line = apply_the_readme(project)
    templates = project / "mysite" / "templates"
    templates.mkdir()
    (templates / "event.html").write_text(f"<!doctype html><title>Gig</title>{widget_line}")
    settings = project / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        .replace("'DIRS': [],", "'DIRS': [BASE_DIR / 'mysite' / 'templates'],")
        .replace('"DIRS": [],', '"DIRS": [BASE_DIR / "mysite" / "templates"],')
    )

    assert "no issues" in manage(project, "check")
    manage(project, "migrate", "-v", "0")
    manage(
        project,
        "shell",
        "-c",
        "from ticketqueue.models import Queue; "
        "Queue.objects.create(slug='gig', name='Gig', mode='always', capacity=2); "
        "from django.contrib.auth.models import User; "
        "User.objects.create_user('fan', password='fan-pass-123', is_staff=True)",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    ready = base + "/event/gig/"
    with serving(argv, project, env, ready) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            anonymous = browser.new_context().new_page()
            anonymous.goto(base + "/event/gig/")
            fan = browser.new_context().new_page()
            fan.goto(base + "/admin/login/?next=/event/gig/")
            fan.fill("#id_username", "fan")
            fan.fill("#id_password", "fan-pass-123")
            fan.click("input[type=submit]")
            for page in (anonymous, fan):
                widget = page.locator("[data-ticketqueue]")
                sync_api.expect(widget).to_have_attribute("data-state", "granted", timeout=WAIT)
                checkout = widget.locator('[data-tq="checkout"]')
                sync_api.expect(checkout).to_have_attribute("href", "/buy/")
        finally:
            browser.close()
    assert "Traceback" not in server.log, server.log
