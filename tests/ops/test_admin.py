"""The control room through the Django test client: every action and live edit, their audit
rows, and the permissions (a staff user without the queue permissions cannot act)."""

from datetime import UTC, datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core import mail

from ticketqueue import services, ticker
from ticketqueue.models import Entry, OperatorAction, Queue, QueueSample

from .conftest import T0

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/ticketqueue/queue/"
ENTRIES = "/admin/ticketqueue/entry/"


def staff(username, *codenames):
    user = get_user_model().objects.create_user(
        username, email=f"{username}@example.com", password="pw", is_staff=True
    )
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def operator(client):
    user = staff(
        "ops",
        "view_queue",
        "change_queue",
        "add_queue",
        "operate_queue",
        "revoke_pass",
        "view_entry",
        "view_operatoraction",
        "view_prioritygroup",
        "add_prioritygroup",
        "change_prioritygroup",
        "delete_prioritygroup",
    )
    client.force_login(user)
    return user


def act(client, action, queues, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [q.pk for q in queues], **extra}
    return client.post(CHANGELIST, data, follow=True)


def audit(queue):
    return list(
        OperatorAction.objects.filter(queue=queue)
        .order_by("pk")
        .values_list("username", "action", "before", "after", "count")
    )


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def fill(queue, n):
    return [services.join(queue, f"anon:{i}").seq for i in range(n)]


def test_the_changelist_shows_each_queue_live(client, operator, make_queue):
    queue = make_queue(
        slug="tour", name="Arena tour", mode="always", capacity=1, rate_per_minute=60
    )
    fill(queue, 4)
    services.tick(queue)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    row = response.content.decode()
    assert "Arena tour" in row and f"/admin/ticketqueue/queue/{queue.pk}/control/" in row
    numbers = response.context["cl"].model_admin._live(response.context["cl"].result_list[0])
    assert (numbers.waiting, numbers.active, numbers.admitted_total) == (3, 1, 1)
    assert numbers.abandon_rate == 0


def test_open_pause_resume_with_an_audit_row_each(client, operator, make_queue):
    opens = datetime.fromtimestamp(T0 + 3600, tz=UTC)
    queue = make_queue(state="scheduled", opens_at=opens, mode="always", capacity=5)
    fill(queue, 3)
    response = act(client, "open_queues", [queue])
    assert messages_of(response) == ["1 queue opened."]
    queue.refresh_from_db()
    assert queue.state == "open" and queue.prequeue_seed is not None
    assert act(client, "pause_queues", [queue]).status_code == 200
    assert Queue.objects.get(pk=queue.pk).state == "paused"
    assert services.tick(queue).admitted == []  # paused in the store as well
    assert messages_of(act(client, "resume_queues", [queue])) == ["1 queue resumed."]
    # Resuming an open queue is refused, and nothing is audited for it.
    assert messages_of(act(client, "resume_queues", [queue])) == [
        "The sale: Only a paused queue can be resumed."
    ]
    rows = audit(queue)
    assert [(r[0], r[1], r[2]["state"], r[3]["state"]) for r in rows] == [
        ("ops", "open", "scheduled", "open"),
        ("ops", "pause", "open", "paused"),
        ("ops", "resume", "paused", "open"),
    ]


def test_close_asks_first_then_turns_the_line_away(client, operator, make_queue):
    queue = make_queue(mode="always", capacity=1)
    fill(queue, 4)
    services.tick(queue)
    response = act(client, "close_queues", [queue])
    assert "Close these queues?" in response.content.decode()
    assert Queue.objects.get(pk=queue.pk).state == "open"  # only asked so far
    response = act(client, "close_queues", [queue], apply="1")
    assert messages_of(response) == ["1 queue closed, 3 waiting entries turned away."]
    assert Queue.objects.get(pk=queue.pk).state == "closed"
    assert Entry.objects.filter(queue=queue, state="revoked").count() == 3
    assert Entry.objects.filter(queue=queue, state="admitted").count() == 1  # passes stay
    ((user, action, before, after, count),) = audit(queue)
    assert (user, action, before["state"], after["state"], count) == (
        "ops",
        "close",
        "open",
        "closed",
        3,
    )


def test_admit_now_goes_past_the_rate_but_never_past_capacity(client, operator, make_queue):
    queue = make_queue(mode="always", capacity=3, rate_per_minute=1)
    fill(queue, 6)
    assert len(services.tick(queue).admitted) == 1  # one a minute: the bucket is empty now
    assert services.tick(queue).admitted == []
    response = act(client, "admit_now", [queue])
    assert response.context["form"].fields["count"].initial == 100
    response = act(client, "admit_now", [queue], apply="1", count="0")
    assert response.context["form"].errors  # a count of 0 is refused, nothing admitted
    response = act(client, "admit_now", [queue], apply="1", count="5")
    assert messages_of(response) == ["2 entries admitted."]  # capacity 3: two more only
    (row,) = audit(queue)
    assert (row[1], row[4]) == ("admit", 2)


def test_admit_now_tells_an_admitted_person_who_is_away(client, operator, make_queue):
    queue = make_queue(mode="always", capacity=5)
    buyers = [staff(f"buyer{i}") for i in range(2)]
    for buyer in buyers:
        services.join(queue, f"user:{buyer.pk}")
    services.open_connections(queue, [f"user:{buyers[0].pk}"])  # what a socket does on opening
    act(client, "admit_now", [queue], apply="1", count="2")
    assert [m.to for m in mail.outbox] == [["buyer1@example.com"]]


def test_rebuild_reloads_a_lost_queue(client, operator, make_queue, live_store):
    queue = make_queue(mode="always", capacity=2)
    fill(queue, 5)
    services.tick(queue)
    live_store.delete(queue.store_id)
    response = act(client, "rebuild_queues", [queue])
    assert messages_of(response) == ["1 queue rebuilt (5 live entries)."]
    assert live_store.counts(queue.store_id, services.clock()).waiting == 3
    assert audit(queue)[0][1::3] == ("rebuild", 5)


def form_data(queue, **changes):
    data = {
        "name": queue.name,
        "slug": queue.slug,
        "opens_at_0": "",
        "opens_at_1": "",
        "mode": queue.mode,
        "capacity": queue.capacity or "",
        "rate_per_minute": queue.rate_per_minute or "",
        "purchase_window": queue.purchase_window,
        "max_size": queue.max_size or "",
        "disconnect_grace": queue.disconnect_grace,
        "who_may_join": queue.who_may_join,
        "work_difficulty": queue.work_difficulty,
        "device_policy": queue.device_policy,
        "content_type": "",
        # The priority groups inline: none.
        "priority_groups-TOTAL_FORMS": "0",
        "priority_groups-INITIAL_FORMS": "0",
        "object_id": "",
    }
    data.update(changes)
    return data


def test_outflow_edited_while_the_sale_runs_acts_on_the_next_tick(
    client, operator, make_queue, live_store
):
    queue = make_queue(mode="always", capacity=1, purchase_window=900)
    fill(queue, 5)
    assert len(services.tick(queue).admitted) == 1
    url = f"/admin/ticketqueue/queue/{queue.pk}/change/"
    page = client.get(url).content.decode()
    assert f"/admin/ticketqueue/queue/{queue.pk}/control/" in page  # the control room link
    response = client.post(url, form_data(queue, capacity=3, purchase_window=300))
    assert response.status_code == 302, response.context["adminform"].form.errors
    config = live_store.dump(queue.store_id).config
    assert (config.capacity, config.purchase_window) == (3, 300)
    assert len(services.tick(queue).admitted) == 2
    ((user, action, before, after, count),) = audit(queue)
    assert (user, action, count) == ("ops", "edit", None)
    assert before == {"capacity": 1, "purchase_window": 900}
    assert after == {"capacity": 3, "purchase_window": 300}
    # Saving with nothing changed writes no audit row; the state cannot be edited here.
    queue.refresh_from_db()
    client.post(url, form_data(queue, state="closed"))
    assert len(audit(queue)) == 1 and Queue.objects.get(pk=queue.pk).state == "open"


def test_raising_the_bot_defence_during_an_attack_is_audited(client, operator, make_queue):
    queue = make_queue(mode="always")
    url = f"/admin/ticketqueue/queue/{queue.pk}/change/"
    changes = {"work_difficulty": 20, "captcha_required": "on", "who_may_join": "users"}
    response = client.post(url, form_data(queue, **changes))
    assert response.status_code == 302, response.context["adminform"].form.errors
    ((user, action, before, after, _),) = audit(queue)
    assert (user, action) == ("ops", "edit")
    assert before == {"work_difficulty": 0, "captcha_required": False, "who_may_join": "anyone"}
    assert after == {"work_difficulty": 20, "captcha_required": True, "who_may_join": "users"}
    too_hard = client.post(url, form_data(queue, work_difficulty=33))
    assert "work_difficulty" in too_hard.context["adminform"].form.errors


def test_priority_groups_edited_in_the_admin_are_audited(client, operator, make_queue):
    queue = make_queue(mode="always")
    url = f"/admin/ticketqueue/queue/{queue.pk}/change/"
    inline = {
        "priority_groups-TOTAL_FORMS": "1",
        "priority_groups-0-name": "presale",
        "priority_groups-0-priority": "2",
    }
    response = client.post(url, form_data(queue, **inline))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(queue.priority_groups.values_list("name", "priority")) == [("presale", 2)]
    ((user, action, before, after, _),) = audit(queue)
    assert (user, action) == ("ops", "edit")
    assert (before, after) == ({"priority_groups": []}, {"priority_groups": [["presale", 2]]})
    # Saving again with the same group writes nothing more.
    group = queue.priority_groups.get()
    same = {
        "priority_groups-TOTAL_FORMS": "1",
        "priority_groups-INITIAL_FORMS": "1",
        "priority_groups-0-id": str(group.pk),
        "priority_groups-0-queue": str(queue.pk),
        "priority_groups-0-name": "presale",
        "priority_groups-0-priority": "2",
    }
    assert client.post(url, form_data(queue, **same)).status_code == 302
    assert len(audit(queue)) == 1


def test_the_admin_refuses_a_grace_shorter_than_three_heartbeats(client, operator, make_queue):
    queue = make_queue(mode="always", disconnect_grace=1800)
    url = f"/admin/ticketqueue/queue/{queue.pk}/change/"
    response = client.post(url, form_data(queue, disconnect_grace=15))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["disconnect_grace"]
    assert errors == [
        "The disconnect grace must be at least 75 seconds: three heartbeats of an open page "
        "(HEARTBEAT_INTERVAL), or people whose page is open would lose their place."
    ]
    queue.refresh_from_db()
    assert queue.disconnect_grace == 1800 and audit(queue) == []
    response = client.post(url, form_data(queue, disconnect_grace=75))
    assert response.status_code == 302


def test_a_queue_added_in_the_admin_is_ready_in_the_store(client, operator, live_store, now):
    response = client.post(
        "/admin/ticketqueue/queue/add/",
        form_data(Queue(name="New sale", slug="new-sale", mode="always", capacity=2), state="open"),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    queue = Queue.objects.get(slug="new-sale")
    assert live_store.dump(queue.store_id).config.capacity == 2
    assert audit(queue)[0][1] == "create"


def test_entries_are_filtered_searched_and_revoked(client, operator, make_queue):
    queue = make_queue(mode="always", capacity=2)
    seqs = fill(queue, 4)
    services.tick(queue)
    response = client.get(ENTRIES, {"state__exact": "waiting"})
    assert [e.seq for e in response.context["cl"].result_list] == seqs[2:]
    response = client.get(ENTRIES, {"q": "anon:1"})
    assert [e.identity for e in response.context["cl"].result_list] == ["anon:1"]
    # Whether each live entry's identity has a socket open now (what the notifier goes by).
    services.open_connections(queue, ["anon:2"])  # what a socket does on opening
    response = client.get(ENTRIES, {"queue__id__exact": queue.pk})
    shown = {e.identity: e.tq_connected for e in response.context["cl"].result_list}
    assert shown == {"anon:0": False, "anon:1": False, "anon:2": True, "anon:3": False}
    picked = Entry.objects.filter(queue=queue, seq__in=[seqs[0], seqs[3]])
    response = client.post(
        ENTRIES,
        {"action": "revoke_entries", ACTION_CHECKBOX_NAME: [e.pk for e in picked]},
        follow=True,
    )
    assert messages_of(response) == ["2 entries revoked."]
    assert dict(Entry.objects.filter(queue=queue).values_list("seq", "state")) == {
        seqs[0]: "revoked",
        seqs[1]: "admitted",
        seqs[2]: "waiting",
        seqs[3]: "revoked",
    }
    ((user, action, before, after, count),) = audit(queue)
    assert (action, before, after, count) == (
        "revoke",
        {"seqs": [seqs[0], seqs[3]]},
        {"revoked": [seqs[0], seqs[3]]},
        2,
    )
    assert client.get(f"{ENTRIES}{picked[0].pk}/change/").status_code == 200  # read-only view


def test_the_control_room_shows_numbers_chart_and_acts(client, operator, make_queue, now):
    queue = make_queue(mode="always", capacity=2)
    fill(queue, 5)
    for _minute in range(3):
        ticker.run_tick(batches=1, timer=now, sleep=now.advance)
        now.advance(60)
    assert QueueSample.objects.filter(queue=queue).count() == 3
    url = f"/admin/ticketqueue/queue/{queue.pk}/control/"
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    waiting = response.context["charts"][0]
    assert waiting.title == "waiting" and len(waiting.lines[0].points.split()) == 3
    assert '<polyline class="s1"' in page
    assert response.context["live"].waiting == 3 and response.context["can_operate"]
    assert [op for op, _label in response.context["operations"]] == ["pause", "close", "rebuild"]
    response = client.post(url, {"op": "admit", "count": "1"}, follow=True)
    assert messages_of(response) == ["0 entries admitted."]  # capacity 2 is full
    response = client.post(url, {"op": "pause"}, follow=True)
    assert messages_of(response) == ["1 queue paused."]
    response = client.post(url, {"op": "close"}, follow=True)
    assert Queue.objects.get(pk=queue.pk).state == "closed"
    assert [r[1] for r in audit(queue)] == ["admit", "pause", "close"]
    live = client.get(f"/admin/ticketqueue/queue/{queue.pk}/live/").json()
    assert (live["slug"], live["waiting"], live["active"]) == ("sale", 0, 2)


def test_a_staff_user_without_the_queue_permissions_cannot_act(client, make_queue):
    queue = make_queue(mode="always", capacity=1)
    fill(queue, 3)
    services.tick(queue)
    watcher = staff("watcher", "view_queue", "view_entry")
    client.force_login(watcher)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action is offered to a watcher
    for action in ("open_queues", "pause_queues", "close_queues", "admit_now", "rebuild_queues"):
        act(client, action, [queue], apply="1", count="5")
    control = f"/admin/ticketqueue/queue/{queue.pk}/control/"
    assert client.get(control).context["can_operate"] is False
    assert client.post(control, {"op": "close"}).status_code == 403
    assert client.post(control, {"op": "admit", "count": "5"}).status_code == 403
    edit = client.post(f"/admin/ticketqueue/queue/{queue.pk}/change/", form_data(queue, capacity=9))
    assert edit.status_code == 403
    entry = Entry.objects.filter(queue=queue, state="admitted").get()
    client.post(ENTRIES, {"action": "revoke_entries", ACTION_CHECKBOX_NAME: [entry.pk]})
    # Nothing happened, nothing was audited.
    queue.refresh_from_db()
    assert (queue.state, queue.capacity) == ("open", 1)
    assert Entry.objects.get(pk=entry.pk).state == "admitted"
    assert Entry.objects.filter(queue=queue, state="admitted").count() == 1
    assert not OperatorAction.objects.exists()
    # Without even the view permissions, the control room is closed.
    client.force_login(staff("nobody"))
    assert client.get(control).status_code == 403
    assert client.get(CHANGELIST).status_code == 403


def test_the_audit_log_is_read_only_and_append_only(client, operator, make_queue):
    queue = make_queue()
    act(client, "pause_queues", [queue])
    row = OperatorAction.objects.get()
    response = client.get("/admin/ticketqueue/operatoraction/")
    assert response.status_code == 200 and "pause" in response.content.decode()
    assert client.post(f"/admin/ticketqueue/operatoraction/{row.pk}/delete/").status_code == 403
    with pytest.raises(ValueError, match="append-only"):
        row.save()
    with pytest.raises(ValueError, match="append-only"):
        row.delete()
