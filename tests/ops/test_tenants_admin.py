"""Tenants in the admin: each operator sees and runs their tenant's queues only, and operator API
keys are made (shown once), scoped and revoked there."""

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from ticketqueue import apikeys, services
from ticketqueue.models import Admission, Entry, OperatorAction, OperatorKey, Queue, Tenant

pytestmark = pytest.mark.django_db

ADMIN = "/admin/ticketqueue"
PERMS = (
    "view_queue",
    "change_queue",
    "add_queue",
    "operate_queue",
    "revoke_pass",
    "view_entry",
    "view_admission",
    "view_operatoraction",
    "view_operatorkey",
    "add_operatorkey",
    "change_operatorkey",
)


def login(username, tenants=()):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=PERMS))
    for tenant in tenants:
        tenant.members.add(user)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(make_queue):
    acme = Tenant.objects.create(slug="acme", name="Acme")
    globex = Tenant.objects.create(slug="globex", name="Globex")
    queues = {
        "acme": make_queue(slug="acme-final", name="Acme final", tenant=acme, mode="always"),
        "globex": make_queue(slug="globex-final", name="Globex final", tenant=globex),
        "own": make_queue(slug="own", name="Own sale"),
    }
    for queue in queues.values():
        for i in range(3):
            services.join(queue, f"anon:{queue.slug}-{i}")
        services.tick(queue, limit=1, use_rate=False)
    return acme, globex, queues


def listed(client, path):
    response = client.get(path)
    assert response.status_code == 200
    return response


def test_each_operator_sees_their_tenants_queues_and_rows_only(world):
    acme, globex, queues = world
    acme_ops = login("acme-ops", [acme])
    page = listed(acme_ops, f"{ADMIN}/queue/").content.decode()
    assert "Acme final" in page and "Globex final" not in page and "Own sale" not in page

    entries = listed(acme_ops, f"{ADMIN}/entry/").context["cl"].result_list
    assert {e.queue_id for e in entries} == {queues["acme"].pk}
    admissions = listed(acme_ops, f"{ADMIN}/admission/").context["cl"].result_list
    assert {a.queue_id for a in admissions} == {queues["acme"].pk}
    # The queue filter offers their queues only: no other tenant's names leak through it.
    filters = listed(acme_ops, f"{ADMIN}/entry/").content.decode()
    assert "Globex final" not in filters and "Own sale" not in filters

    for queue in (queues["globex"], queues["own"]):
        assert acme_ops.get(f"{ADMIN}/queue/{queue.pk}/change/").status_code == 302  # "no such"
        assert acme_ops.get(f"{ADMIN}/queue/{queue.pk}/control/").status_code == 404
        assert acme_ops.get(f"{ADMIN}/queue/{queue.pk}/live/").status_code == 404
        other_entry = Entry.objects.filter(queue=queue).first()
        assert acme_ops.get(f"{ADMIN}/entry/{other_entry.pk}/change/").status_code == 302

    # Nobody in a tenant reaches the installation's own queues, and its staff none of theirs.
    own_ops = login("own-ops")
    page = listed(own_ops, f"{ADMIN}/queue/").content.decode()
    assert "Own sale" in page and "Acme final" not in page
    superuser = get_user_model().objects.create_superuser("root", password="pw")
    root = Client()
    root.force_login(superuser)
    assert len(listed(root, f"{ADMIN}/queue/").context["cl"].result_list) == 3


def test_actions_on_another_tenants_queue_do_nothing(world):
    acme, _globex, queues = world
    acme_ops = login("acme-ops", [acme])
    target = queues["globex"]
    data = {"action": "close_queues", ACTION_CHECKBOX_NAME: [target.pk], "apply": "1"}
    acme_ops.post(f"{ADMIN}/queue/", data)
    posted = acme_ops.post(f"{ADMIN}/queue/{target.pk}/control/", {"op": "close"})
    assert posted.status_code == 404
    revoke = {
        "action": "revoke_entries",
        ACTION_CHECKBOX_NAME: list(Entry.objects.filter(queue=target).values_list("pk", flat=True)),
    }
    acme_ops.post(f"{ADMIN}/entry/", revoke)
    target.refresh_from_db()
    assert target.state == "open"
    assert Entry.objects.filter(queue=target, state="revoked").count() == 0
    assert not OperatorAction.objects.filter(queue=target).exists()


def test_a_tenants_operator_makes_queues_for_their_tenant_only(world):
    acme, globex, _queues = world
    acme_ops = login("acme-ops", [acme])
    form = listed(acme_ops, f"{ADMIN}/queue/add/").context["adminform"].form
    assert list(form.fields["tenant"].queryset) == [acme]
    assert form.fields["tenant"].required
    base = {
        "name": "New",
        "slug": "new",
        "state": "open",
        "mode": "auto",
        "purchase_window": 900,
        "disconnect_grace": 1800,
        "who_may_join": "anyone",
        "device_policy": "shared",
        "work_difficulty": 0,
        "passes_per_identity": 1,
        "priority_groups-TOTAL_FORMS": 0,
        "priority_groups-INITIAL_FORMS": 0,
    }
    acme_ops.post(f"{ADMIN}/queue/add/", {**base, "tenant": globex.pk})
    acme_ops.post(f"{ADMIN}/queue/add/", base)  # no tenant: refused too
    assert not Queue.objects.filter(slug="new").exists()
    acme_ops.post(f"{ADMIN}/queue/add/", {**base, "tenant": acme.pk})
    assert Queue.objects.get(slug="new").tenant == acme


def test_a_key_made_in_the_admin_is_shown_once_and_stored_as_a_digest(world):
    acme, _globex, queues = world
    acme_ops = login("acme-ops", [acme])
    form = listed(acme_ops, f"{ADMIN}/operatorkey/add/").context["adminform"].form
    assert list(form.fields["queues"].queryset) == [queues["acme"]]

    refused = acme_ops.post(
        f"{ADMIN}/operatorkey/add/",
        {"name": "stray", "tenant": acme.pk, "access": "read", "queues": [queues["globex"].pk]},
    )
    assert refused.status_code == 200 and not OperatorKey.objects.exists()

    made = acme_ops.post(
        f"{ADMIN}/operatorkey/add/", {"name": "backend", "tenant": acme.pk, "access": "operate"}
    )
    assert made.status_code == 200 and "no-store" in made["Cache-Control"]
    raw = re.search(r"tqk_[0-9a-f]+_[A-Za-z0-9_-]+", made.content.decode()).group()
    key = OperatorKey.objects.get()
    assert (key.tenant, key.access, key.created_by.username) == (acme, "operate", "acme-ops")
    assert raw not in str(OperatorKey.objects.values().get())
    assert raw not in acme_ops.get(f"{ADMIN}/operatorkey/{key.pk}/change/").content.decode()

    api = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    listed_queues = api.get("/queue/api/operator/queues/", **auth).json()
    assert [q["slug"] for q in listed_queues] == ["acme-final"]

    acme_ops.post(
        f"{ADMIN}/operatorkey/", {"action": "revoke_keys", ACTION_CHECKBOX_NAME: [key.pk]}
    )
    assert api.get("/queue/api/operator/queues/", **auth).status_code == 401

    # Another tenant's operator does not see the key.
    globex_ops = login("globex-ops", [_globex])
    assert not listed(globex_ops, f"{ADMIN}/operatorkey/").context["cl"].result_list


def test_api_and_admin_changes_share_one_audit(world):
    acme, _globex, queues = world
    acme_ops = login("acme-ops", [acme])
    queue = queues["acme"]
    data = {"action": "pause_queues", ACTION_CHECKBOX_NAME: [queue.pk]}
    acme_ops.post(f"{ADMIN}/queue/", data)
    _row, raw = apikeys.issue("backend", tenant=acme, access=OperatorKey.Access.OPERATE)
    Client().patch(
        "/queue/api/operator/queues/acme-final/",
        data='{"state": "open"}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    rows = OperatorAction.objects.filter(queue=queue).order_by("pk")
    assert [(r.username, r.action, r.after["state"]) for r in rows] == [
        ("acme-ops", "pause", "paused"),
        ("key:backend", "resume", "open"),
    ]
    page = listed(acme_ops, f"{ADMIN}/queue/{queue.pk}/control/").content.decode()
    assert "key:backend" in page
    assert Admission.objects.filter(queue=queue).count() == 1
