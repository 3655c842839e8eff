"""The operator API over HTTP (the Django test client, real store and database): keys and staff
tokens, what each may do, every change audited, and the queues of one tenant out of another's
reach."""

import json
import warnings

import jwt
import jwt.warnings
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from ticketqueue import apikeys, services
from ticketqueue.models import Admission, OperatorAction, OperatorKey, Queue, Tenant

from .conftest import Visitor

pytestmark = pytest.mark.django_db

API = "/queue/api/operator"


def call(client, method, path, key=None, body=None, **headers):
    if key is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    kwargs = {"content_type": "application/json"}
    if body is not None:
        kwargs["data"] = json.dumps(body)
    return getattr(client, method)(f"{API}{path}", **kwargs, **headers)


def staff(username, *codenames, tenants=()):
    user = get_user_model().objects.create_user(username, password="pw-" + username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    for tenant in tenants:
        tenant.members.add(user)
    return user


def status(visitor, slug):
    return visitor.client.get(f"/queue/api/queues/{slug}/status/").json()


def audit(queue):
    return list(
        OperatorAction.objects.filter(queue=queue)
        .order_by("pk")
        .values_list("username", "action", "before", "after", "count")
    )


@pytest.fixture
def operate_key(db):
    return apikeys.issue("backend", access=OperatorKey.Access.OPERATE)


@pytest.fixture
def read_key(db):
    return apikeys.issue("dashboard")


# -- keys -------------------------------------------------------------------------------------


def test_a_key_is_stored_as_a_digest_and_works_until_revoked(client, queue, operate_key):
    row, raw = operate_key
    assert raw.startswith("tqk_" + row.prefix + "_")
    stored = OperatorKey.objects.filter(pk=row.pk).values().get()
    assert raw not in json.dumps(stored, default=str)
    secret = raw.removeprefix(f"tqk_{row.prefix}_")  # may hold '_' itself
    assert len(secret) >= 43 and secret not in json.dumps(stored, default=str)

    assert call(client, "get", "/queues/sale/", raw).status_code == 200
    assert OperatorKey.objects.get(pk=row.pk).last_used_at is not None

    apikeys.revoke(row)
    refused = call(client, "get", "/queues/sale/", raw)
    assert refused.status_code == 401
    assert refused.json()["code"] == "api_key_invalid"
    assert refused["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: raw[:-1] + ("A" if raw[-1] != "A" else "B"),  # wrong secret
        lambda raw: "tqk_000000000000_" + raw.split("_", 2)[2],  # unknown prefix
        lambda raw: "tqk_",
        lambda raw: raw + "x" * 300,
    ],
)
def test_a_wrong_key_is_refused(client, queue, operate_key, mangle):
    response = call(client, "get", "/queues/sale/", mangle(operate_key[1]))
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_invalid"


def test_a_post_to_no_api_url_is_a_json_404_not_a_csrf_page(queue, operate_key):
    browserish = Client(enforce_csrf_checks=True)
    response = browserish.post(f"{API}/queues/not%20a%20slug/close/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_no_credential_is_refused(client, queue):
    response = call(client, "get", "/queues/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_read_key_reads_and_changes_nothing(client, queue, read_key):
    _row, raw = read_key
    assert call(client, "get", "/queues/", raw).json()[0]["slug"] == "sale"
    for method, path, body in [
        ("patch", "/queues/sale/", {"capacity": 3}),
        ("post", "/queues/sale/admit/", {"count": 1}),
        ("post", "/queues/sale/close/", None),
        ("post", "/queues/", {"slug": "new", "name": "New"}),
    ]:
        response = call(client, method, path, raw, body)
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "permission_denied"
    queue.refresh_from_db()
    assert (queue.capacity, queue.state) == (10, "open")
    assert not Queue.objects.filter(slug="new").exists()
    assert audit(queue) == []


def test_a_key_naming_queues_reaches_those_only_and_creates_none(client, make_queue):
    mine, other = make_queue("mine"), make_queue("other")
    _row, raw = apikeys.issue("one", queues=[mine], access=OperatorKey.Access.OPERATE)
    assert [q["slug"] for q in call(client, "get", "/queues/", raw).json()] == ["mine"]
    assert call(client, "get", "/queues/other/", raw).status_code == 404
    assert call(client, "patch", "/queues/other/", raw, {"capacity": 1}).status_code == 404
    assert call(client, "patch", "/queues/mine/", raw, {"capacity": 1}).status_code == 200
    created = call(client, "post", "/queues/", raw, {"slug": "x", "name": "X"})
    assert created.status_code == 403
    other.refresh_from_db()
    assert other.capacity == 10


def test_a_key_whose_only_queue_is_deleted_is_revoked_not_widened(client, make_queue):
    mine, other = make_queue("mine"), make_queue("other")
    key, raw = apikeys.issue("one", queues=[mine])
    two, raw_two = apikeys.issue("two", queues=[mine, other])
    mine.delete()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert call(client, "get", "/queues/", raw).status_code == 401
    listed = call(client, "get", "/queues/", raw_two).json()
    assert [q["slug"] for q in listed] == ["other"]


# -- the operations ---------------------------------------------------------------------------


def test_create_makes_a_working_queue_and_audits_it(client, operate_key):
    _row, raw = operate_key
    response = call(
        client,
        "post",
        "/queues/",
        raw,
        {"slug": "final", "name": "The final", "capacity": 2, "mode": "always"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["slug"], body["state"], body["capacity"], body["tenant"]) == (
        "final",
        "open",
        2,
        None,
    )
    assert body["live"]["loaded"] is True
    queue = Queue.objects.get(slug="final")
    [(username, action, before, after, _count)] = audit(queue)
    assert (username, action, before) == ("key:backend", "create", {})
    assert after["capacity"] == 2
    assert OperatorAction.objects.get(queue=queue).key_id == _row.pk

    # A buyer can stand in the new line at once.
    joined = Visitor().join("final")
    assert joined.status_code == 200 and joined.json()["state"] == "waiting"


def test_create_refuses_bad_input_and_changes_nothing(client, queue, operate_key):
    _row, raw = operate_key
    for body, field in [
        ({"slug": "sale", "name": "Taken"}, "slug"),
        ({"slug": "bad slug!", "name": "x"}, "slug"),
        ({"slug": "s2", "name": "x", "capacity": 0}, "capacity"),
        ({"slug": "s3", "name": "x", "state": "scheduled"}, "opens_at"),
        ({"slug": "s4", "name": "x", "capasity": 3}, "capasity"),
        ({"slug": "s5", "name": "x", "state": "closed"}, "state"),
        ({"slug": "s6", "name": "x", "disconnect_grace": 1}, "disconnect_grace"),
    ]:
        response = call(client, "post", "/queues/", raw, body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid_input"
        assert field in response.json()["errors"], response.json()
    assert list(Queue.objects.values_list("slug", flat=True)) == ["sale"]
    assert OperatorAction.objects.count() == 0


def test_patch_tunes_the_outflow_and_the_next_tick_uses_it(client, make_queue, operate_key):
    queue = make_queue("line", mode="always", capacity=1)
    visitors = [Visitor() for _ in range(4)]
    for visitor in visitors:
        assert visitor.join("line").json()["state"] == "waiting"
    _row, raw = operate_key
    response = call(client, "patch", "/queues/line/", raw, {"capacity": 3, "purchase_window": 60})
    assert response.status_code == 200, response.content
    assert (response.json()["capacity"], response.json()["purchase_window"]) == (3, 60)
    assert len(services.tick(queue).admitted) == 3
    [(username, action, before, after, _)] = audit(queue)
    assert (username, action) == ("key:backend", "edit")
    assert (before, after) == (
        {"capacity": 1, "purchase_window": 900},
        {"capacity": 3, "purchase_window": 60},
    )


def test_patch_sets_the_milestones_and_the_idle_grace(client, make_queue, operate_key):
    queue = make_queue("line", mode="always", capacity=1)
    _row, raw = operate_key
    body = {"notify_within": 50, "notify_minutes_left": 10, "pass_idle_grace": 300}
    response = call(client, "patch", "/queues/line/", raw, body)
    assert response.status_code == 200, response.content
    assert {k: response.json()[k] for k in body} == body
    assert response.json()["notify_pass_ending"] == 120  # the default reminder
    short = call(client, "patch", "/queues/line/", raw, {"pass_idle_grace": 10})
    assert short.status_code == 400 and "pass_idle_grace" in short.json()["errors"]
    queue.refresh_from_db()
    assert (queue.notify_within, queue.pass_idle_grace) == (50, 300)


def test_patch_moves_the_state_as_the_admin_does(client, make_queue, operate_key):
    queue = make_queue("sale", mode="always")
    _row, raw = operate_key
    assert Visitor().join("sale").json()["state"] == "waiting"

    paused = call(client, "patch", "/queues/sale/", raw, {"state": "paused"})
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert services.tick(queue).admitted == []
    assert call(client, "patch", "/queues/sale/", raw, {"state": "open"}).json()["state"] == "open"
    assert [a for _u, a, *_ in audit(queue)] == ["pause", "resume"]

    # A move no queue makes is refused, and the knobs sent with it are not applied.
    body = {"state": "scheduled", "opens_at": "2030-01-01T10:00:00Z", "capacity": 1}
    back = call(client, "patch", "/queues/sale/", raw, body)
    assert back.status_code == 409 and back.json()["code"] == "invalid_transition"
    queue.refresh_from_db()
    assert (queue.state, queue.capacity, queue.opens_at) == ("open", 10, None)


def test_admit_and_close(client, make_queue, operate_key):
    queue = make_queue("line", mode="always", capacity=10)
    visitors = [Visitor() for _ in range(5)]
    for visitor in visitors:
        visitor.join("line")
    _row, raw = operate_key
    admitted = call(client, "post", "/queues/line/admit/", raw, {"count": 2})
    assert admitted.json() == {"queue": "line", "admitted": 2}
    assert [status(v, "line")["state"] for v in visitors[:3]] == [
        "admitted",
        "admitted",
        "waiting",
    ]
    assert call(client, "post", "/queues/line/admit/", raw, {"count": 0}).status_code == 400

    closed = call(client, "post", "/queues/line/close/", raw)
    assert closed.json() == {"queue": "line", "turned_away": 3}
    assert status(visitors[4], "line")["queue_state"] == "closed"
    again = call(client, "post", "/queues/line/close/", raw)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    assert [(a, c) for _u, a, _b, _a, c in audit(queue)] == [("admit", 2), ("close", 3)]


def test_entries_admissions_and_audit_are_listed_in_pages(client, make_queue, operate_key):
    queue = make_queue("line", mode="always", capacity=10)
    for _ in range(5):
        Visitor().join("line")
    _row, raw = operate_key
    call(client, "post", "/queues/line/admit/", raw, {"count": 3})

    first = call(client, "get", "/queues/line/entries/?limit=2", raw).json()
    assert [e["seq"] for e in first["results"]] == sorted(e["seq"] for e in first["results"])
    assert len(first["results"]) == 2 and first["next"]
    seen = [e["seq"] for e in first["results"]]
    page = first
    while page["next"]:
        page = client.get(page["next"], HTTP_AUTHORIZATION=f"Bearer {raw}").json()
        seen += [e["seq"] for e in page["results"]]
    assert seen == sorted(queue.entries.values_list("seq", flat=True))

    waiting = call(client, "get", "/queues/line/entries/?state=waiting", raw).json()["results"]
    assert len(waiting) == 2 and {e["state"] for e in waiting} == {"waiting"}
    bad = call(client, "get", "/queues/line/entries/?state=nope", raw)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"

    log = call(client, "get", "/queues/line/admissions/", raw).json()["results"]
    assert [a["number"] for a in log] == [1, 2, 3]
    assert [a["seq"] for a in log] == list(
        Admission.objects.filter(queue=queue).order_by("number").values_list("seq", flat=True)
    )
    actions = call(client, "get", "/queues/line/actions/", raw).json()["results"]
    assert [(a["operator"], a["action"], a["count"]) for a in actions] == [
        ("key:backend", "admit", 3)
    ]


# -- staff tokens -----------------------------------------------------------------------------


def test_staff_get_a_token_and_need_the_admins_permissions(client, queue):
    staff("viewer", "view_queue")
    operator = staff("ops", "view_queue", "change_queue", "operate_queue")
    get_user_model().objects.create_user("buyer", password="pw-buyer")

    refused = call(client, "post", "/token/", body={"username": "buyer", "password": "pw-buyer"})
    assert refused.status_code == 403  # no operator tokens for buyers
    wrong = call(client, "post", "/token/", body={"username": "ops", "password": "nope"})
    assert wrong.status_code == 401

    def token(username):
        body = {"username": username, "password": f"pw-{username}"}
        response = call(client, "post", "/token/", body=body)
        assert response.status_code == 200, response.content
        return response.json()["access"]

    viewer = token("viewer")
    assert call(client, "get", "/queues/sale/", viewer).status_code == 200
    assert call(client, "patch", "/queues/sale/", viewer, {"capacity": 2}).status_code == 403

    ops = token("ops")
    assert call(client, "patch", "/queues/sale/", ops, {"capacity": 2}).status_code == 200
    assert call(client, "post", "/queues/", ops, {"slug": "n", "name": "N"}).status_code == 403
    assert audit(queue)[0][:2] == ("ops", "edit")
    assert OperatorAction.objects.get(queue=queue).user == operator


def test_a_forged_or_unpinned_token_is_refused(client, queue, settings):
    user = staff("ops", "view_queue")
    good = AccessToken.for_user(user)
    claims, key = dict(good.payload), settings.SIMPLE_JWT["SIGNING_KEY"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        forgeries = [
            jwt.encode(claims, "not-the-signing-key-" * 3, algorithm="HS256"),
            jwt.encode(claims, None, algorithm="none"),
            jwt.encode(claims, key, algorithm="HS512"),
            jwt.encode({**claims, "token_type": "refresh"}, key),
            jwt.encode({**claims, "exp": 1}, key),
        ]
    for forged in forgeries:
        response = call(client, "get", "/queues/sale/", forged)
        assert response.status_code == 401, forged
        assert response.json()["code"] == "token_not_valid"
    assert call(client, "get", "/queues/sale/", str(good)).status_code == 200
    user.is_staff = False
    user.save()
    assert call(client, "get", "/queues/sale/", str(good)).status_code == 403


# -- tenants ----------------------------------------------------------------------------------


@pytest.fixture
def tenants(make_queue):
    acme, globex = (
        Tenant.objects.create(slug="acme", name="Acme"),
        Tenant.objects.create(slug="globex", name="Globex"),
    )
    make_queue("acme-final", tenant=acme)
    make_queue("globex-final", tenant=globex)
    make_queue("own")  # the installation's own
    return acme, globex


def _every_request(slug):
    return [
        ("get", f"/queues/{slug}/", None),
        ("patch", f"/queues/{slug}/", {"capacity": 1}),
        ("patch", f"/queues/{slug}/", {"state": "paused"}),
        ("post", f"/queues/{slug}/admit/", {"count": 1}),
        ("post", f"/queues/{slug}/close/", None),
        ("get", f"/queues/{slug}/entries/", None),
        ("get", f"/queues/{slug}/admissions/", None),
        ("get", f"/queues/{slug}/actions/", None),
    ]


def _untouched(slug):
    queue = Queue.objects.get(slug=slug)
    assert (queue.state, queue.capacity, queue.opens_at) == ("open", 10, None)
    assert audit(queue) == []


def test_a_tenants_key_cannot_reach_another_tenants_queues(client, tenants):
    acme, _globex = tenants
    _row, raw = apikeys.issue("acme-backend", tenant=acme, access=OperatorKey.Access.OPERATE)
    assert [q["slug"] for q in call(client, "get", "/queues/", raw).json()] == ["acme-final"]
    for slug in ("globex-final", "own"):
        for method, path, body in _every_request(slug):
            response = call(client, method, path, raw, body)
            assert response.status_code == 404, (method, path, response.content)
            assert response.json()["code"] == "queue_not_found"
        _untouched(slug)

    created = call(client, "post", "/queues/", raw, {"slug": "acme-2", "name": "Acme 2"})
    assert created.json()["tenant"] == "acme"
    assert Queue.objects.get(slug="acme-2").tenant == acme
    other = call(client, "post", "/queues/", raw, {"slug": "g2", "name": "G", "tenant": "globex"})
    assert other.status_code == 403
    assert not Queue.objects.filter(slug="g2").exists()


def test_a_tenants_staff_cannot_reach_another_tenants_queues(client, tenants):
    acme, globex = tenants
    perms = ("view_queue", "change_queue", "add_queue", "operate_queue")
    staff("acme-ops", *perms, tenants=[acme])
    staff("both-ops", *perms, tenants=[acme, globex])
    staff("own-ops", *perms)

    def token(username):
        body = {"username": username, "password": f"pw-{username}"}
        return call(client, "post", "/token/", body=body).json()["access"]

    acme_ops = token("acme-ops")
    listed = [q["slug"] for q in call(client, "get", "/queues/", acme_ops).json()]
    assert listed == ["acme-final"]
    for slug in ("globex-final", "own"):
        for method, path, body in _every_request(slug):
            assert call(client, method, path, acme_ops, body).status_code == 404, (method, path)
        _untouched(slug)
    made = call(client, "post", "/queues/", acme_ops, {"slug": "a2", "name": "A2"})
    assert made.json()["tenant"] == "acme"
    theirs = {"slug": "g2", "name": "G2", "tenant": "globex"}
    assert call(client, "post", "/queues/", acme_ops, theirs).status_code == 403

    both = token("both-ops")
    unsaid = call(client, "post", "/queues/", both, {"slug": "b1", "name": "B1"})
    assert unsaid.status_code == 400 and "tenant" in unsaid.json()["errors"]
    assert call(client, "post", "/queues/", both, theirs).json()["tenant"] == "globex"

    own_ops = token("own-ops")
    assert [q["slug"] for q in call(client, "get", "/queues/", own_ops).json()] == ["own"]
    assert call(client, "get", "/queues/acme-final/", own_ops).status_code == 404


# -- limits -----------------------------------------------------------------------------------


def test_the_address_limit_counts_wrong_keys_before_looking_them_up(
    client, queue, settings, operate_key
):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "THROTTLE_RATES": {"operator_ip": "5/min", "operator_token_ip": "2/min"},
    }
    for _ in range(5):
        assert call(client, "get", "/queues/sale/", "tqk_guess_guess").status_code == 401
    limited = call(client, "get", "/queues/sale/", operate_key[1])
    assert limited.status_code == 429
    assert limited.json()["code"] == "throttled" and int(limited["Retry-After"]) >= 1

    other = {"REMOTE_ADDR": "10.9.9.9"}
    for _ in range(2):
        body = {"username": "x", "password": "y"}
        assert call(client, "post", "/token/", body=body, **other).status_code == 401
    body = {"username": "x", "password": "y"}
    assert call(client, "post", "/token/", body=body, **other).status_code == 429


def test_the_per_key_limit(client, queue, settings, operate_key):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "THROTTLE_RATES": {"operator_client": "3/min"}}
    raw = operate_key[1]
    codes = [
        call(client, "get", "/queues/sale/", raw, REMOTE_ADDR=f"10.0.0.{i}").status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    _row, other = apikeys.issue("other")
    assert call(client, "get", "/queues/sale/", other).status_code == 200


# -- the command ------------------------------------------------------------------------------


def test_the_keys_command_makes_lists_and_revokes(client, make_queue):
    from io import StringIO

    from django.core.management import CommandError, call_command

    acme = Tenant.objects.create(slug="acme", name="Acme")
    make_queue("acme-final", tenant=acme)
    make_queue("own")
    out = StringIO()
    call_command("ticketqueue_keys", "create", "ci", "--tenant", "acme", "--operate", stdout=out)
    raw = out.getvalue().strip()
    assert [q["slug"] for q in call(client, "get", "/queues/", raw).json()] == ["acme-final"]
    assert call(client, "post", "/queues/acme-final/admit/", raw, {"count": 1}).status_code == 200

    with pytest.raises(CommandError, match="own tenant"):
        call_command("ticketqueue_keys", "create", "x", "--tenant", "acme", "--queue", "own")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("ticketqueue_keys", "create", "x", "--tenant", "nope")

    listing = StringIO()
    call_command("ticketqueue_keys", "list", stdout=listing)
    prefix = raw.split("_", 2)[1]
    assert f"{prefix}  ci  acme  operate  active" in listing.getvalue()
    call_command("ticketqueue_keys", "revoke", prefix, stdout=StringIO())
    assert call(client, "get", "/queues/", raw).status_code == 401
    with pytest.raises(CommandError, match="already revoked"):
        call_command("ticketqueue_keys", "revoke", prefix)
