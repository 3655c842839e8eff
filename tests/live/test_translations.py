"""The shipped catalogs: a site whose LANGUAGE_CODE is hu, hr or th shows no English in the
waiting page (what the server renders and the strings it hands the widget), in its error
messages or in the admin."""

from __future__ import annotations

import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from ticketqueue.models import Queue

pytestmark = pytest.mark.django_db
LANGUAGES = ["hu", "hr", "th"]
NAME = "Koncert"  # the queue's own name is the site's text, not ours


class Texts(HTMLParser):
    """What a person reads or hears: text outside <script>/<style>, the accessible labels and
    titles, and the widget's catalog (it shows those strings itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: set[str] = set()
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        for name, value in attrs:
            if name in ("aria-label", "title", "placeholder", "alt") and value:
                self.found.add(value)
            elif name == "data-i18n":
                self.found.update(json.loads(value).values())

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.found.add(data)


def words(html: str) -> set[str]:
    """The texts with a word in them (three letters or more), whitespace normalised."""
    parser = Texts()
    parser.feed(html)
    texts = {" ".join(text.split()) for text in parser.found}
    texts = {re.sub(r"%\(\w+\)[sd]", "", text) for text in texts}
    return {text for text in texts if re.search(r"[^\W\d_]{3,}", text) and NAME not in text}


@pytest.fixture
def page_html(client):
    queue = Queue.objects.create(
        slug="koncert",
        name=NAME,
        state=Queue.State.SCHEDULED,
        opens_at=timezone.now() + timedelta(hours=2),
    )

    def render(language: str) -> str:
        with override_settings(LANGUAGE_CODE=language):
            response = client.get(reverse("ticketqueue:waiting", kwargs={"slug": queue.slug}))
        assert response.status_code == 200
        return response.content.decode()

    return render


def test_the_english_page_has_the_strings_the_check_looks_for(page_html):
    english = words(page_html("en"))
    # The check below is only as good as this set: the page, the figures and the catalog.
    assert {"Waiting room", "Your place in line", "Leave the line"} <= english
    assert "The sale has opened: your random place is being drawn…" in english
    assert len(english) > 40


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_waiting_page_shows_no_english(page_html, language):
    english = words(page_html("en"))
    shown = words(page_html(language))
    assert len(shown) >= len(english) - 2  # translated, not dropped
    assert not shown & english, sorted(shown & english)
    assert f'lang="{language}"' in page_html(language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_error_messages_are_translated(client, language):
    Queue.objects.create(slug="gone", name=NAME, state=Queue.State.CLOSED)
    with override_settings(LANGUAGE_CODE="en"):
        english = client.post("/queue/api/queues/gone/join/").json()
    with override_settings(LANGUAGE_CODE=language):
        body = client.post("/queue/api/queues/gone/join/").json()
        missing = client.post("/queue/api/queues/nope/join/").json()
    assert body["code"] == english["code"] == "queue_closed"  # codes never change
    assert body["message"] != english["message"] and re.search(r"[^\W\d_]{3,}", body["message"])
    assert missing["code"] == "queue_not_found"
    assert missing["message"] != "There is no such queue."


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_admin_speaks_the_language(client, language):
    User.objects.create_superuser("boss", password="boss-pass-123")
    client.login(username="boss", password="boss-pass-123")
    Queue.objects.create(slug="koncert", name=NAME)

    def admin(language: str) -> str:
        with override_settings(LANGUAGE_CODE=language):
            index = client.get("/admin/").content.decode()
            return index + client.get("/admin/ticketqueue/queue/").content.decode()

    english, shown = admin("en"), admin(language)
    for text in ("Waiting rooms", "Open the selected queues", "Close the selected queues"):
        assert text in english and text not in shown, text


LOCALE = Path(__file__).resolve().parents[2] / "ticketqueue" / "locale"


def msgids(po: str) -> set[str]:
    """The messages of a .po file's text (a long one is split over several quoted lines)."""
    found = re.findall(r'^msgid ((?:".*"\n)+)', po, re.M)
    return {"".join(re.findall(r'"(.*)"', quoted)) for quoted in found} - {""}


def catalog(mo: Path) -> dict:
    with mo.open("rb") as f:
        return dict(gettext.GNUTranslations(f)._catalog)


@pytest.mark.skipif(not shutil.which("xgettext"), reason="GNU gettext is not installed")
def test_the_catalogs_hold_every_marked_string_translated_and_compiled(tmp_path):
    """A string marked since the catalogs were made, one left untranslated, or a .po edited
    without compiling its .mo fails here (``manage.py makemessages`` / ``compilemessages``)."""
    app = tmp_path / "ticketqueue"
    shutil.copytree(LOCALE.parent, app, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "hu", "--no-location"],
        cwd=app,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(LOCALE.parents[1])},
    )
    made = (app / "locale" / "hu" / "LC_MESSAGES" / "django.po").read_text()
    marked = msgids(made)
    assert len(marked) > 200
    for language in [*LANGUAGES, "en"]:
        po = LOCALE / language / "LC_MESSAGES" / "django.po"
        shipped = msgids(po.read_text())
        assert marked <= shipped, f"{language}: not in the catalog: {sorted(marked - shipped)}"
        assert not re.search(r'^msgstr ""\n\n', po.read_text(), re.M), f"{language}: untranslated"
        assert "#, fuzzy" not in po.read_text()
        compiled = tmp_path / f"{language}.mo"
        subprocess.run(["msgfmt", "--check", "-o", str(compiled), str(po)], check=True)
        assert catalog(compiled) == catalog(po.with_suffix(".mo")), f"{language}: compile it"
