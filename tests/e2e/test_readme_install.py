"""The README's "Install into your site", followed literally in a brand-new project.

The wheel and the sdist are built from this checkout; the wheel goes into a fresh venv (its
dependencies pinned by requirements/base.txt); ``django-admin startproject`` makes a new site
and exactly the snippets README.md shows are applied to it (read from it, so the README cannot
drift), plus the site's own event page with the README's widget line and its checkout form.
Then ``runserver``, and headless Chromium as the visitors: an anonymous one and a logged-in
user take their places through the widget, are admitted by the web process itself (nothing
else is configured) and buy, one through the ``@queue_pass_required`` page and one through the
``HasQueuePass`` API; a used pass opens neither again.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

from .test_demo_browser import CHROMIUM, CHROMIUM_ARGS, free_port, serving, sync_api

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30_000  # ms; every wait ends as soon as the page shows what it waits for
ENV = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def install_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Install into your site", 1)[1].split("\n## ", 1)[0]


def readme_blocks() -> list[str]:
    """The code blocks of the README's install section, in order."""
    return re.findall(r"```(?:python|bash)\n(.*?)```", install_section(), re.S)


def block_starting(first_line: str) -> str:
    (block,) = [b for b in readme_blocks() if b.startswith(first_line)]
    return block


def run(argv: list[str], cwd: Path, timeout: int = 300) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> Path:
    """A new venv with nothing but the wheel built from this checkout (and its dependencies).

    Built as pip users get it: the sdist, then the wheel from the sdist (so a stale build/
    directory in the checkout cannot leak into it, and the sdist is proven complete)."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(dist), "."], ROOT)
    (wheel,) = dist.glob("ticketqueue-*.whl")
    (sdist,) = dist.glob("ticketqueue-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    for needed in ("LICENSE", "README.md"):
        assert any(n.endswith("/" + needed) for n in names), f"the sdist lacks {needed}"
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    # The pins CI tests with (constraints name no extras).
    pins = (ROOT / "requirements" / "base.txt").read_text()
    constraints = home / "constraints.txt"
    constraints.write_text(re.sub(r"\[[\w,]+\]", "", pins))
    run([str(python), "-m", "pip", "install", "-q", "-c", str(constraints), str(wheel)], ROOT, 600)
    return python


def apply_the_readme(project: Path) -> None:
    """Edit a fresh ``mysite`` as the README says."""
    settings_block = block_starting("# settings.py")
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
    text += block_starting('DATABASES["default"]["OPTIONS"]')  # a new project is on SQLite
    # The site's own templates (not part of the README): the event page and the checkout form.
    text = text.replace("'DIRS': [],", "'DIRS': [BASE_DIR / 'mysite' / 'templates'],")
    text = text.replace('"DIRS": [],', '"DIRS": [BASE_DIR / "mysite" / "templates"],')
    settings.write_text(text)

    (project / "mysite" / "views.py").write_text(block_starting("# views.py"))
    urls_block = block_starting("# urls.py")
    imports = [line for line in urls_block.splitlines() if line.startswith("from ")]
    routes = [line.strip() for line in urls_block.splitlines() if line.strip().startswith("path(")]
    assert any("ticketqueue.urls" in route for route in routes)
    urls = project / "mysite" / "urls.py"
    head = "from django.urls import include, path\n" + "\n".join(imports)
    text = urls.read_text().replace("from django.urls import path", head)
    text = text.replace("urlpatterns = [", "urlpatterns = [\n    " + "\n    ".join(routes), 1)
    text += (
        "\nfrom django.shortcuts import render\n"
        "from ticketqueue.models import Queue\n\n"
        "def event(request, slug):\n"
        "    return render(request, 'event.html', {'queue': Queue.objects.get(slug=slug)})\n\n"
        "urlpatterns.append(path('event/<slug:slug>/', event))\n"
    )
    urls.write_text(text)
    (project / "mysite" / "asgi.py").write_text(block_starting("# asgi.py"))

    widget = re.search(r"`(\{% load ticketqueue %\}\{% queue_widget .*?%\})`", install_section())
    assert widget, "the README shows the widget line"
    templates = project / "mysite" / "templates"
    templates.mkdir()
    (templates / "event.html").write_text(f"<!doctype html><title>Gig</title>{widget.group(1)}")
    (templates / "buy.html").write_text(
        '<!doctype html><title>Checkout</title><form method="post">{% csrf_token %}'
        '<button type="submit">Pay</button></form>'
    )


def test_the_readme_install_gives_a_working_waiting_room(fresh_python, tmp_path):
    project = tmp_path / "site"
    project.mkdir()
    run([str(fresh_python), "-m", "django", "startproject", "mysite", str(project)], tmp_path)
    apply_the_readme(project)

    def manage(*args: str) -> str:
        return run([str(fresh_python), "manage.py", *args], project, 120)

    assert "no issues" in manage("check")
    manage("migrate", "-v", "0")
    manage(
        "shell",
        "-c",
        "from ticketqueue.models import Queue; "
        "Queue.objects.create(slug='gig', name='Gig', mode='always', capacity=2); "
        "from django.contrib.auth.models import User; "
        "User.objects.create_user('fan', password='fan-pass-123', is_staff=True)",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(fresh_python), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    ready = base + "/event/gig/"
    with serving(argv, project, ENV, ready) as server, sync_api.sync_playwright() as p:
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
                checkout = widget.locator('[data-tq="checkout"][data-ready="true"]')
                sync_api.expect(checkout).to_have_attribute("href", "/buy/", timeout=WAIT)

            # The anonymous visitor buys through the @queue_pass_required page.
            anonymous.locator('[data-tq="checkout"]').click()
            anonymous.wait_for_url(base + "/buy/")
            anonymous.click("button[type=submit]")
            sync_api.expect(anonymous.locator("body")).to_have_text("Thank you for your order!")
            again = anonymous.request.post(base + "/buy/", max_redirects=0)
            assert again.status in (302, 403, 429), "a released pass still opened the page"

            # The logged-in user buys through the HasQueuePass API, as the site's script would.
            def order(page) -> tuple[int, str]:
                return page.evaluate(
                    """async () => {
                        const csrf = document.cookie.match(/csrftoken=([^;]+)/);
                        const r = await fetch('/api/order/', {method: 'POST',
                          headers: {'X-CSRFToken': csrf ? csrf[1] : '',
                                    'Accept': 'application/json'}});
                        return [r.status, await r.text()];
                    }"""
                )

            fan.goto(base + "/admin/")  # a page that sets the CSRF cookie
            status, body = order(fan)
            assert (status, body) == (201, '{"ordered":true}')
            status, body = order(fan)
            assert status == 403 and "pass_not_active" in body, (status, body)
        finally:
            browser.close()
    assert "Traceback" not in server.log, server.log
