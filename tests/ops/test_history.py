"""Each queue's history at one-minute resolution, as the real tick samples it (real store and
database): joins, admissions, abandons, completions and wait percentiles per minute; the
control room's charts and audit; the CSV and JSON exports of the admin and the operator API."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

import ticketqueue
from ticketqueue import analytics, apikeys, services, ticker
from ticketqueue.models import Entry, OperatorKey, QueueSample, Tenant

from .conftest import T0

pytestmark = pytest.mark.django_db


def minute(n):
    return datetime.fromtimestamp(T0 + 60 * n, tz=UTC)


def tick(now):
    ticker.run_tick(batches=1, timer=now, sleep=lambda s: None)


def pass_of(queue, identity):
    entry = Entry.objects.get(queue=queue, identity=identity, state="admitted")
    return services.issue_pass(
        queue, entry.seq, identity, entry.admitted_at.timestamp(), entry.pass_expires_at.timestamp()
    )


@pytest.fixture
def sale(make_queue, now):
    """Four minutes of a sale, each ticked by the real tick loop.

    minute 0: six join; two are admitted at once (capacity 2).
    minute 1: one order completes, one more joins; the next in line is admitted (waited 60 s).
    minute 2: nothing happens.
    minute 3: everyone still waiting was last seen at minute 0 or 1, past the 75 s grace at
              minute 3: four are abandoned; nobody is admitted (the holders still buy).
    """
    queue = make_queue(mode="always", capacity=2, disconnect_grace=75, purchase_window=900)
    for i in range(6):
        services.join(queue, f"user:{i}")
    tick(now)
    now.advance(60)
    ticketqueue.release(pass_of(queue, "user:0"))
    services.join(queue, "user:6")
    tick(now)
    now.advance(60)
    tick(now)
    now.advance(60)
    services.abandon_unseen(queue)
    tick(now)
    return queue


def test_the_history_has_each_minutes_numbers(sale):
    rows = analytics.history(sale)
    assert [r.at for r in rows] == [minute(0), minute(1), minute(2), minute(3)]
    table = [(r.waiting, r.active, r.joins, r.admissions, r.abandons, r.completions) for r in rows]
    assert table == [
        (4, 2, None, None, None, None),  # the first minute has no minute before it
        (4, 2, 1, 1, 0, 1),
        (4, 2, 0, 0, 0, 0),
        (0, 2, 0, 0, 4, 0),
    ]
    assert (rows[1].wait_p50, rows[1].wait_p90, rows[1].wait_p99) == (60.0, 60.0, 60.0)
    assert rows[2].wait_p50 is None  # nobody was admitted in that minute


def test_a_missing_minute_is_a_gap_not_a_spike(sale):
    QueueSample.objects.filter(queue=sale, at=minute(2)).delete()
    rows = analytics.history(sale, since=minute(1))
    assert [(r.at, r.joins, r.abandons) for r in rows] == [
        (minute(1), 1, 0),
        (minute(3), None, None),
    ]


def test_the_wait_percentiles_read_an_even_sample_of_a_busy_minute(make_queue, now, monkeypatch):
    monkeypatch.setattr(analytics, "MAX_WAITS_READ", 10)
    queue = make_queue(mode="always", capacity=200)
    for i in range(100):
        now.now = T0 + i  # user:i joins i seconds in
        services.join(queue, f"user:{i}")
    now.now = T0 + 60
    tick(now)  # the first sample: no minute before it
    now.now = T0 + 120
    services.tick(queue)  # nothing waits: no admissions, but a round
    # Admitted at T0 + 60 after joining at T0 + i: waits 60 - i, from 60 down to -39 -> 0.
    waits = analytics.waits_since(queue, 0, 100)
    assert len(waits) == 10 and waits == sorted(waits)
    assert waits[-1] == 60.0 and waits[0] == 0.0


def test_the_control_room_charts_each_series_on_its_own_scale(sale, client, admin_user):
    client.force_login(admin_user)
    response = client.get(f"/admin/ticketqueue/queue/{sale.pk}/control/")
    charts = response.context["charts"]
    assert [c.title for c in charts] == [
        "waiting",
        "active passes",
        "joins per minute",
        "admissions per minute",
        "abandons per minute",
        "completed orders per minute",
        "wait of those admitted (s)",
    ]
    by_title = {c.title: c for c in charts}
    assert [label for _y, label in by_title["waiting"].y_ticks] == ["0", "2.5", "5"]
    assert [label for _y, label in by_title["abandons per minute"].y_ticks] == ["0", "2.5", "5"]
    assert [label for _y, label in by_title["wait of those admitted (s)"].y_ticks] == [
        "0",
        "50",
        "100",
    ]
    assert by_title["waiting"].x_ticks[-1][1] == minute(3).strftime("%H:%M")
    page = response.content.decode()
    assert page.count('<svg class="tq-chart"') == 7
    week = client.get(f"/admin/ticketqueue/queue/{sale.pk}/control/?hours=168")
    assert week.context["hours"] == 168
    assert client.get(f"/admin/ticketqueue/queue/{sale.pk}/control/?hours=5").context["hours"] == 1


def test_the_control_room_shows_audit_changes_as_field_before_after(make_queue, client):
    from django.contrib.auth import get_user_model

    queue = make_queue(mode="always", capacity=1)
    ops = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    ops.user_permissions.set(
        Permission.objects.filter(codename__in=["view_queue", "change_queue", "operate_queue"])
    )
    _row, key = apikeys.issue("shop", access=OperatorKey.Access.OPERATE)
    Client().patch(
        "/queue/api/operator/queues/sale/",
        data='{"capacity": 3, "purchase_window": 60}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    client.force_login(ops)
    response = client.get(f"/admin/ticketqueue/queue/{queue.pk}/control/")
    [(row, changes)] = response.context["audit"]
    assert changes == ["capacity: 1 → 3", "purchase_window: 900 → 60"]
    assert "capacity: 1 → 3" in response.content.decode()


def test_the_admin_exports_csv_and_json(sale, admin_client):
    csv_response = admin_client.get(f"/admin/ticketqueue/queue/{sale.pk}/history.csv")
    assert csv_response["Content-Type"] == "text/csv"
    assert "attachment" in csv_response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(csv_response.content.decode())))
    assert [(r["joins"], r["abandons"], r["wait_p50"]) for r in rows] == [
        ("", "", ""),
        ("1", "0", "60.0"),
        ("0", "0", ""),
        ("0", "4", ""),
    ]
    since = minute(2).isoformat()
    data = admin_client.get(
        f"/admin/ticketqueue/queue/{sale.pk}/history.json", {"since": since}
    ).json()
    assert data["queue"] == "sale"
    assert [(m["at"], m["joins"]) for m in data["minutes"]] == [
        (minute(2).isoformat(), 0),
        (minute(3).isoformat(), 0),
    ]
    bad = admin_client.get(f"/admin/ticketqueue/queue/{sale.pk}/history.json?since=soon")
    assert bad.status_code == 400
    assert admin_client.get(f"/admin/ticketqueue/queue/{sale.pk}/history.xml").status_code == 404


def test_the_operator_api_exports_the_history_within_its_tenant(sale, make_queue):
    _row, key = apikeys.issue("analytics")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    api = Client()
    data = api.get("/queue/api/operator/queues/sale/history/", **auth).json()
    assert [m["abandons"] for m in data["minutes"]] == [None, 0, 0, 4]
    as_csv = api.get("/queue/api/operator/queues/sale/history/?format=csv", **auth)
    assert as_csv["Content-Type"].startswith("text/csv")
    assert as_csv.content.decode().splitlines()[0].split(",") == analytics.COLUMNS
    assert len(as_csv.content.decode().splitlines()) == 5
    bad = api.get("/queue/api/operator/queues/sale/history/?until=later", **auth)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"

    other = Tenant.objects.create(slug="other", name="Other")
    _row, theirs = apikeys.issue("theirs", tenant=other)
    refused = api.get(
        "/queue/api/operator/queues/sale/history/", HTTP_AUTHORIZATION=f"Bearer {theirs}"
    )
    assert refused.status_code == 404
