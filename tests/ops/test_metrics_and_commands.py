"""The Prometheus endpoint, the JSON log formatter, the management commands, the embedded
ticker's start rules and the operations settings checks."""

import importlib
import json
import logging
import sys
import threading
from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command

from ticketqueue import logs, metrics, services, tick_loop, ticker
from ticketqueue.checks import Codes

pytestmark = pytest.mark.django_db


def scrape(client, **headers):
    response = client.get("/queue/metrics/", **headers)
    return response.status_code, response.content.decode()


def sample(text, name, queue):
    for line in text.splitlines():
        if line.startswith(f'{name}{{queue="{queue}"}} '):
            return float(line.split()[-1])
    return None


def test_the_prometheus_endpoint_shows_gauges_and_counters_per_queue(admin_client, make_queue, now):
    queue = make_queue(slug="tour", mode="always", capacity=2, purchase_window=60)
    for i in range(5):
        services.join(queue, f"anon:{i}")
    services.leave(queue, "anon:4")
    result = services.tick(queue)
    services.release_entry(queue, result.admitted[0].seq)  # lets anon:2 in at once
    now.advance(61)
    services.tick(queue)  # anon:1's and anon:2's passes expire, anon:3 is admitted
    status, text = scrape(admin_client)  # no METRICS_TOKEN: logged-in staff
    assert status == 200
    assert sample(text, "ticketqueue_waiting", "tour") == 0
    assert sample(text, "ticketqueue_active_passes", "tour") == 1
    assert sample(text, "ticketqueue_joins_total", "tour") == 5
    assert sample(text, "ticketqueue_admissions_total", "tour") == 4
    assert sample(text, "ticketqueue_releases_total", "tour") == 1
    assert sample(text, "ticketqueue_expirations_total", "tour") == 2
    assert sample(text, "ticketqueue_departures_total", "tour") == 1
    assert "# TYPE ticketqueue_joins_total counter" in text


def test_without_a_token_only_staff_may_read_the_metrics(client, django_user_model):
    assert scrape(client) == (403, "metrics_forbidden")  # anyone who reaches the URL
    user = django_user_model.objects.create_user("buyer")
    client.force_login(user)
    assert scrape(client)[0] == 403
    user.is_staff = True
    user.save()
    assert scrape(client)[0] == 200


def test_a_tenants_staff_read_the_metrics_of_their_queues_only(
    client, make_queue, django_user_model
):
    from ticketqueue.models import Tenant

    acme = Tenant.objects.create(slug="acme", name="Acme")
    make_queue(slug="acme-final", tenant=acme)
    make_queue(slug="other", name="Other")
    user = django_user_model.objects.create_user("acme-ops", is_staff=True)
    acme.members.add(user)
    client.force_login(user)
    status, text = scrape(client)
    assert status == 200
    assert sample(text, "ticketqueue_waiting", "acme-final") == 0
    assert 'queue="other"' not in text


def test_the_metrics_token_guards_the_endpoint(client, make_queue, settings):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "METRICS_TOKEN": "s3cret"}
    make_queue(slug="tour")
    assert scrape(client)[0] == 403
    assert scrape(client, HTTP_AUTHORIZATION="Bearer wrong")[0] == 403
    status, text = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret")
    assert status == 200 and sample(text, "ticketqueue_waiting", "tour") == 0


def test_json_logs_carry_the_extra_fields_that_follow_an_entry(make_queue, now, caplog):
    queue = make_queue(slug="tour", mode="always", capacity=5)
    caplog.set_level(logging.INFO, logger="ticketqueue")
    seq = services.join(queue, "anon:1").seq
    ticker.run_tick(batches=1, timer=now, sleep=now.advance)
    services.release_entry(queue, seq)
    formatter = logs.JsonFormatter()
    records = [json.loads(formatter.format(r)) for r in caplog.records]
    trail = [
        r["message"]
        for r in records
        if r.get("queue") == "tour" and (r.get("seq") == seq or seq in r.get("seqs", []))
    ]
    assert trail == ["entry joined", "passes granted", "pass released"]
    granted = next(r for r in records if r["message"] == "passes granted")
    assert granted["level"] == "INFO" and granted["event"] == "passes_granted"


def test_live_numbers_of_an_unloaded_queue(make_queue, live_store):
    queue = make_queue()
    live_store.delete(queue.store_id)
    numbers = metrics.live_numbers(queue)
    assert not numbers.loaded and numbers.waiting is None


# -- commands ----------------------------------------------------------------------------


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_ticker_command_ticks_and_prints_a_count(make_queue, live_store):
    if not hasattr(live_store, "client"):
        pytest.skip("a ticker process of its own needs the Redis store")
    queue = make_queue(mode="always", capacity=2)
    for i in range(3):
        services.join(queue, f"anon:{i}")
    out = run("ticketqueue_ticker", "--ticks", "1", "--batches", "1", "--cleanup-every", "0")
    assert out.strip() == "1 ticks, 2 admitted."


def test_ticker_command_refuses_to_tick_a_private_copy_of_the_line(settings):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "STORE": "ticketqueue.store.memory.MemoryStore"}
    with pytest.raises(CommandError, match="cannot tick the in-process MemoryStore"):
        run("ticketqueue_ticker", "--ticks", "1")


def test_rebuild_command_reloads_the_store_from_the_rows(make_queue, live_store):
    queue = make_queue(mode="always", capacity=1)
    for i in range(3):
        services.join(queue, f"anon:{i}")
    services.tick(queue)
    live_store.delete(queue.store_id)  # Redis flushed
    assert run("ticketqueue_rebuild").strip() == "1 queues rebuilt, 3 live entries loaded."
    counts = live_store.counts(queue.store_id, services.clock())
    assert (counts.waiting, counts.active) == (2, 1)
    with pytest.raises(CommandError, match="No such queue: nope"):
        run("ticketqueue_rebuild", "sale", "nope")


def test_stats_command_prints_each_queue(make_queue, live_store):
    queue = make_queue(slug="tour", mode="always", rate_per_minute=60)
    for i in range(3):
        services.join(queue, f"anon:{i}")
    lost = make_queue(slug="lost")
    live_store.delete(lost.store_id)
    lines = run("ticketqueue_stats").splitlines()
    assert lines == [
        "lost: open, not loaded in the store",
        "tour: open, 3 waiting, 0 active, 0 admitted (-/min), last in line in 3s",
        "2 queues.",
    ]
    data = json.loads(run("ticketqueue_stats", "tour", "--json"))
    assert (data["slug"], data["waiting"], data["eta_last_seconds"]) == ("tour", 3, 3)


# -- the embedded ticker ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "environ", "serving"),
    [
        (["manage.py", "runserver"], {}, False),  # the reloader's watcher
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # its child serves
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["/venv/bin/daphne", "demo_project.asgi:application"], {}, True),
        (["/venv/lib/python3.11/site-packages/daphne/__main__.py"], {}, True),
        (["/venv/bin/gunicorn", "demo_project.wsgi"], {}, True),
        (["/venv/bin/uvicorn", "demo_project.asgi:application"], {}, True),
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "test"], {}, False),
        (["/venv/bin/pytest"], {}, False),
        (["/venv/bin/celery", "-A", "demo_project", "worker"], {}, False),
        ([], {}, False),
    ],
)
def test_the_embedded_ticker_starts_only_in_a_serving_process(argv, environ, serving):
    assert tick_loop.is_serving_process(argv, environ) is serving


def test_the_embedded_ticker_never_starts_in_a_pytest_run(settings, monkeypatch):
    """The ticketqueue.testing plugin (loaded by its entry point) says this is a test run:
    even in a process that looks like a server, no ticker thread starts."""
    from ticketqueue import conf

    assert conf.embedded_ticker_allowed is False
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "EMBEDDED_TICKER": True}
    monkeypatch.setattr(sys, "argv", ["uvicorn", "shop.asgi:application"])
    assert tick_loop.start_embedded_if_serving() is False
    assert not tick_loop.embedded.running


def test_the_embedded_ticker_thread_starts_once_and_stops(monkeypatch):
    ran = threading.Event()

    def loop(stop, **kwargs):
        ran.set()
        stop.wait(30)
        return tick_loop.LoopReport()

    monkeypatch.setattr(tick_loop, "run_loop", loop)
    embedded = tick_loop.EmbeddedTicker()
    assert embedded.ensure_started() is True
    assert embedded.ensure_started() is False  # already running in this process
    assert ran.wait(5) and embedded.running
    embedded.stop()
    assert not embedded.running


def test_run_loop_ticks_until_told_to_stop(make_queue):
    queue = make_queue(mode="always", capacity=5)
    services.join(queue, "anon:1")
    report = tick_loop.run_loop(
        threading.Event(), ticks=3, interval=0.01, batches=1, cleanup_every=0
    )
    assert (report.ticks, report.admitted) == (3, 1)


# -- checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("NOTIFIERS", "ticketqueue.notifications.EmailNotifier", Codes.NOTIFIERS),
        ("NOTIFIERS", ["no.such.Notifier"], Codes.NOTIFIERS),
        ("NOTIFIERS", ["ticketqueue.services.join"], Codes.NOTIFIERS),
        ("EMAIL_RESOLVER", "no.such.resolver", Codes.IMPORTABLE),
        ("ENTRY_ARCHIVER", "no.such.archiver", Codes.IMPORTABLE),
        ("ENTRY_RETENTION", -1, Codes.RETENTION),
        ("METRICS_TOKEN", "", Codes.METRICS_AUTH),
        ("PRESENCE_TIMEOUT", 0, Codes.POSITIVE),
        ("SAMPLE_RETENTION", "week", Codes.POSITIVE),
        ("DISCONNECT_GRACE", 15, Codes.HEARTBEAT),
        ("PRESENCE_TIMEOUT", 40, Codes.HEARTBEAT),
        ("PRESENCE_TIMEOUT", 120, Codes.PRESENCE_OVER_GRACE),
    ],
)
def test_nonsense_operations_settings_are_reported(settings, key, value, code):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, key: value}
    assert code in {e.id for e in run_checks()}


@pytest.mark.parametrize(
    ("store", "embedded", "on"),
    [
        ("ticketqueue.store.memory.MemoryStore", "auto", True),
        ("ticketqueue.store.redis.RedisStore", "auto", False),
        ("ticketqueue.store.memory.MemoryStore", False, False),
        ("ticketqueue.store.redis.RedisStore", True, True),
    ],
)
def test_the_embedded_ticker_is_on_by_default_only_with_the_in_process_store(
    settings, store, embedded, on
):
    from ticketqueue.conf import embedded_ticker_on

    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "STORE": store, "EMBEDDED_TICKER": embedded}
    assert embedded_ticker_on() is on


def test_checks_say_when_nothing_would_admit_anyone(settings):
    memory = "ticketqueue.store.memory.MemoryStore"
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "STORE": memory, "EMBEDDED_TICKER": False}
    assert Codes.NOBODY_TICKS in {e.id for e in run_checks()}
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "EMBEDDED_TICKER": "auto"}
    assert Codes.NOBODY_TICKS not in {e.id for e in run_checks()}
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "EMBEDDED_TICKER": "yes"}
    assert Codes.EMBEDDED_TICKER in {e.id for e in run_checks()}


def test_checks_say_when_runserver_has_no_asgi_application(settings):
    assert not {Codes.ASGI_APPLICATION, Codes.NO_ASGI} & {e.id for e in run_checks()}
    del settings.ASGI_APPLICATION
    assert Codes.ASGI_APPLICATION in {e.id for e in run_checks()}
    # Without daphne runserver starts, but the widget's socket has no server.
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "daphne"]
    ids = {e.id for e in run_checks()}
    assert Codes.NO_ASGI in ids and Codes.ASGI_APPLICATION not in ids


def test_checks_say_when_the_waiting_pages_base_has_no_content_block(settings, tmp_path):
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path]},
    ]
    (tmp_path / "plain.html").write_text("<main>{% block main %}{% endblock %}</main>")
    (tmp_path / "site.html").write_text("<main>{% block content %}{% endblock %}</main>")
    (tmp_path / "section.html").write_text(
        '{% extends "site.html" %}{% block title %}{% endblock %}'
    )
    for base, warned in [
        (None, False),  # ticketqueue/base.html: this project has no base.html of its own
        ("plain.html", True),
        ("site.html", False),
        ("section.html", False),  # the block comes from the template it extends
        ("missing.html", True),
    ]:
        settings.TICKETQUEUE = {**settings.TICKETQUEUE, "WAITING_BASE_TEMPLATE": base}
        assert (Codes.WAITING_BASE in {e.id for e in run_checks()}) is warned, base


def test_the_operations_defaults_pass_the_checks():
    ids = {e.id for e in run_checks()}
    assert not ids & {
        Codes.NOTIFIERS,
        Codes.IMPORTABLE,
        Codes.RETENTION,
        Codes.METRICS_AUTH,
        Codes.HEARTBEAT,
    }


@pytest.mark.parametrize(
    "module",
    [
        "ticketqueue.ticker",
        "ticketqueue.tasks",
        "ticketqueue.presence",
        "ticketqueue.notifications",
        "ticketqueue.metrics",
    ],
)
def test_the_operations_modules_export_what_they_name(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name) and not name.startswith("_"), f"{module}.{name}"
