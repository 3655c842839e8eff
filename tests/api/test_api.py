"""The REST API: info, join, status, leave, heartbeat, release; cookies, throttles, errors."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ticketqueue import passes, release, rows, services
from ticketqueue.core import PassNotActive, PassWrongIdentity
from ticketqueue.identity import visitor_id_from_cookie

from .conftest import Visitor, code_of

pytestmark = pytest.mark.django_db(transaction=True)

API = "/queue/api/queues"


def test_queue_info_is_public(make_queue, clock):
    queue = make_queue(mode="always", capacity=1)
    for i in range(3):
        services.join(queue, f"user:{i}")
    body = Client().get(f"{API}/sale/").json()
    assert body["queue"] == "sale" and body["queue_state"] == "open"
    assert (body["waiting"], body["active"]) == (3, 0)
    assert body["eta_seconds"] is None  # no pass has ended yet: how fast it moves is unknown
    services.tick(queue)
    clock.advance(30)
    services.release_entry(queue, 1)  # one slot, held 30 s: one admission per 30 s
    # The release let user:1 in at once: two wait, the last of them 2 x 30 s away.
    assert Client().get(f"{API}/sale/").json()["eta_seconds"] == 2 * 30


def test_a_closed_queue_promises_no_wait(make_queue):
    queue = make_queue(mode="always", capacity=1)
    services.join(queue, "user:1")
    services.close(queue)
    body = Client().get(f"{API}/sale/").json()
    assert (body["queue_state"], body["eta_seconds"]) == ("closed", None)


def test_people_far_behind_hear_the_tickets_will_likely_run_out_first(make_queue):
    queue = make_queue(mode="always", capacity=2)
    for i in range(5):
        services.join(queue, f"user:{i}")
    services.tick(queue)  # two passes active, three waiting
    services.set_stock(queue, 4)  # four tickets left: for the two holders and two more
    client = Client()
    body = client.post(f"{API}/sale/join/").json()  # position 4: three ahead, two holders
    assert (body["position"], body["sold_out_likely"]) == (4, True)
    third = services.status(queue, "user:2")  # position 1: two holders ahead of it
    fourth = services.status(queue, "user:3")  # position 2: 2 + 1 ahead = 3 < 4
    fifth = services.status(queue, "user:4")  # position 3: 2 + 2 ahead = 4 tickets gone
    assert [third.sold_out_likely, fourth.sold_out_likely, fifth.sold_out_likely] == [
        False,
        False,
        True,
    ]
    assert Client().get(f"{API}/sale/").json()["sold_out_likely"] is True
    services.set_stock(queue, None)  # the site no longer says: nobody is told
    assert client.get(f"{API}/sale/status/").json()["sold_out_likely"] is False


def test_a_visitor_who_had_a_pass_is_not_queued_again(make_queue):
    make_queue(mode="auto", capacity=5)  # one pass per person: the default
    client = Client()
    first = client.post(f"{API}/sale/join/").json()
    assert first["state"] == "admitted"
    assert client.post(f"{API}/sale/release/", {"pass": first["pass"]}).status_code == 200
    again = client.post(f"{API}/sale/join/")
    assert code_of(again) == (409, "pass_limit_reached")
    assert client.get(f"{API}/sale/status/").json()["state"] is None


def test_join_sets_the_visitor_cookie_and_header(make_queue):
    make_queue(mode="always")
    client = Client()
    response = client.post(f"{API}/sale/join/")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["position"], body["pass"]) == ("waiting", 1, None)
    cookie = response.cookies["tq_visitor"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert response["X-Queue-Visitor"] == cookie.value
    assert visitor_id_from_cookie(cookie.value)
    assert response["Cache-Control"] == "no-store"
    # Joining again is the same entry and mints nothing new.
    again = client.post(f"{API}/sale/join/")
    assert again.json()["seq"] == body["seq"] and "tq_visitor" not in again.cookies


def test_clients_without_cookies_use_the_visitor_header(make_queue):
    make_queue(mode="always")
    first = Client().post(f"{API}/sale/join/")
    visitor = first["X-Queue-Visitor"]
    status = Client().get(f"{API}/sale/status/", HTTP_X_QUEUE_VISITOR=visitor).json()
    assert status["seq"] == first.json()["seq"] and status["position"] == 1


def test_a_forged_visitor_cookie_is_a_new_visitor(make_queue):
    make_queue(mode="always")
    client = Client()
    client.cookies["tq_visitor"] = "0" * 32 + ":forged"
    response = client.post(f"{API}/sale/join/")
    assert response.cookies["tq_visitor"].value != "0" * 32 + ":forged"


def test_a_visitor_cookie_follows_the_secret_key_and_its_fallbacks(make_queue, settings):
    """A rotated SECRET_KEY: cookies signed with the old one hold while it is a fallback."""
    make_queue(mode="always")
    client = Client()
    first = client.post(f"{API}/sale/join/").json()
    signed_before = client.cookies["tq_visitor"].value
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new key " * 5, [old]
    assert client.get(f"{API}/sale/status/").json()["seq"] == first["seq"]
    settings.SECRET_KEY_FALLBACKS = []
    stranger = Client()
    stranger.cookies["tq_visitor"] = signed_before  # signed with the key no longer trusted
    assert stranger.get(f"{API}/sale/status/").json()["state"] is None


def test_status_gives_the_pass_once_admitted_and_the_pass_cookie(make_queue, clock):
    queue = make_queue(mode="always", capacity=1, purchase_window=600)
    client = Client()
    client.post(f"{API}/sale/join/")
    assert client.get(f"{API}/sale/status/").json()["state"] == "waiting"
    services.tick(queue)
    response = client.get(f"{API}/sale/status/")
    body = response.json()
    assert (body["state"], body["position"]) == ("admitted", 0)
    claims = passes.verify(body["pass"], queue_id=queue.store_id)
    assert claims.seq == body["seq"]
    cookie = response.cookies[f"tq_pass_{queue.store_id}"]
    assert cookie.value == body["pass"] and cookie["httponly"]
    assert int(cookie["max-age"]) == 600
    # The cookie alone now opens the purchase view.
    assert client.get("/buy/sale/").status_code == 200


def test_status_of_a_stranger(queue):
    response = Client().get(f"{API}/sale/status/")
    assert response.json()["state"] is None
    assert "tq_visitor" in response.cookies  # so the WebSocket gets the same id


def test_logged_in_users_are_their_user(queue, django_user_model):
    user = django_user_model.objects.create_user("ann", password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    body = client.post(f"{API}/sale/join/").json()
    claims = passes.verify(body["pass"])
    assert claims.identity == f"user:{user.pk}"
    response = client.get("/buy/sale/", HTTP_AUTHORIZATION=f"QueuePass {body['pass']}")
    assert response.status_code == 200


def test_an_anonymous_pass_survives_logging_in(admitted, django_user_model):
    user = get_user_model().objects.create_user("bob", password="pw-for-tests-only")
    admitted.client.force_login(user)
    assert admitted.buy().status_code == 200  # the visitor cookie still proves the pass


def test_leave_and_heartbeat(make_queue):
    make_queue(mode="always")
    client = Client()
    assert client.post(f"{API}/sale/heartbeat/").json() == {"seen": False}
    client.post(f"{API}/sale/join/")
    assert client.post(f"{API}/sale/heartbeat/").json() == {"seen": True}
    body = client.post(f"{API}/sale/leave/").json()
    assert body["state"] == "left"
    assert code_of(client.post(f"{API}/sale/leave/")) == (404, "entry_not_found")
    assert code_of(Client().post(f"{API}/sale/leave/")) == (404, "entry_not_found")


def test_delete_is_leave_too(make_queue):
    make_queue(mode="always")
    client = Client()
    seq = client.post(f"{API}/sale/join/").json()["seq"]
    body = client.delete(f"{API}/sale/leave/").json()
    assert (body["seq"], body["state"]) == (seq, "left")
    assert client.get(f"{API}/sale/status/").json()["state"] is None
    assert code_of(client.delete(f"{API}/sale/leave/")) == (404, "entry_not_found")


def test_release_frees_the_slot_at_once(make_queue):
    queue = make_queue(mode="auto", capacity=1)
    holder, next_in_line = Visitor(), Visitor()
    holder.join()
    assert next_in_line.join().json()["state"] == "waiting"
    response = holder.client.post(
        f"{API}/sale/release/", {"pass": holder.token}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["state"] == "completed"
    assert response.cookies[f"tq_pass_{queue.store_id}"].value == ""
    services.tick(queue)
    assert next_in_line.client.get(f"{API}/sale/status/").json()["state"] == "admitted"
    again = holder.client.post(f"{API}/sale/release/", {"pass": holder.token})
    assert code_of(again) == (403, "pass_not_active")


def test_release_needs_the_holder_and_the_queue(make_queue, admitted):
    make_queue("other")
    thief = Client()
    response = thief.post(f"{API}/sale/release/", {"pass": admitted.token})
    assert code_of(response) == (403, "pass_wrong_identity")
    response = admitted.client.post(f"{API}/other/release/", {"pass": admitted.token})
    assert code_of(response) == (403, "pass_wrong_queue")
    assert code_of(Client().post(f"{API}/sale/release/")) == (403, "pass_missing")
    assert admitted.buy().status_code == 200  # nothing changed


def test_release_for_site_code(admitted):
    with pytest.raises(PassWrongIdentity):
        release(admitted.token, identity="user:999")
    change = release(admitted.token)
    assert change.state.value == "completed"
    with pytest.raises(PassNotActive):
        release(admitted.token)


def test_a_gated_view_releases_with_the_claims_it_holds(admitted):
    complete = lambda: admitted.client.post(  # noqa: E731
        "/complete/sale/", HTTP_AUTHORIZATION=f"QueuePass {admitted.token}"
    )
    response = complete()
    assert response.status_code == 200 and response.json()["state"] == "completed"
    # The pass ended: the gate now refuses it before the view runs.
    assert code_of(complete()) == (403, "pass_not_active")
    with pytest.raises(PassNotActive):
        release(passes.verify(admitted.token))


@pytest.mark.parametrize(
    ("mode", "state", "expected"),
    [("always", "closed", (409, "queue_closed")), ("always", "open", None)],
)
def test_join_refusals(make_queue, mode, state, expected):
    queue = make_queue(mode=mode)
    if state == "closed":
        services.close(queue)
    response = Client().post(f"{API}/sale/join/")
    if expected:
        assert code_of(response) == expected
    else:
        assert response.status_code == 200


def test_a_full_queue(make_queue):
    make_queue(mode="always", max_size=1)
    Client().post(f"{API}/sale/join/")
    assert code_of(Client().post(f"{API}/sale/join/")) == (409, "queue_full")


def test_unknown_queue_and_wrong_method(queue):
    assert code_of(Client().post(f"{API}/nope/join/")) == (404, "queue_not_found")
    assert code_of(Client().get(f"{API}/nope/")) == (404, "queue_not_found")
    assert code_of(Client().get(f"{API}/sale/join/")) == (405, "method_not_allowed")


def test_unknown_api_urls_answer_the_documented_json(queue):
    for url in ("/queue/api/nope/", f"{API}/sale/nope/", "/queue/api/"):
        response = Client().get(url)
        assert code_of(response) == (404, "not_found"), url
        assert response["Content-Type"] == "application/json"


def test_a_body_nested_too_deep_is_a_parse_error_and_changes_nothing(admitted, queue):
    deep = "[" * 100_000 + "]" * 100_000
    response = admitted.client.post(f"{API}/sale/release/", deep, content_type="application/json")
    assert code_of(response) == (400, "parse_error")
    assert admitted.buy().status_code == 200  # the pass is still active


def test_a_dead_database_connection_is_503_with_retry_after_and_keeps_no_place(
    make_queue, monkeypatch
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    import psycopg

    queue = make_queue(mode="always")
    real_insert = rows.insert_entries

    def insert_on_a_dead_connection(rows):
        pid = connection.connection.info.backend_pid
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        return real_insert(rows)

    monkeypatch.setattr(rows, "insert_entries", insert_on_a_dead_connection)
    response = Client().post(f"{API}/sale/join/")
    connection.close()  # what Django does with a broken connection when a request ends
    assert code_of(response) == (503, "database_unavailable")
    assert response["Retry-After"] == "5"
    monkeypatch.undo()
    assert services.queue_info(queue).waiting == 0  # the unacknowledged join kept no place


def test_a_queue_deleted_while_an_api_process_keeps_its_row_is_not_found(make_queue):
    queue = make_queue(mode="always")
    assert Client().post(f"{API}/sale/join/").status_code == 200  # the row is kept a moment
    queue.delete()  # its store keys go with it
    assert code_of(Client().post(f"{API}/sale/join/")) == (404, "queue_not_found")
    assert code_of(Client().get(f"{API}/sale/status/")) == (404, "queue_not_found")


def test_bad_input(admitted):
    response = admitted.client.post(
        f"{API}/sale/release/", "{not json", content_type="application/json"
    )
    assert code_of(response) == (400, "parse_error")
    response = admitted.client.post(
        f"{API}/sale/release/", {"pass": "x" * 5000}, content_type="application/json"
    )
    assert code_of(response) == (400, "invalid_input")
    assert "pass" in response.json()["errors"]


def test_throttles_per_identity_and_per_ip(settings, make_queue):
    make_queue(mode="always")
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "THROTTLE_RATES": {"status_identity": "3/min", "status_ip": "5/min"},
    }
    client = Client()
    client.get(f"{API}/sale/status/")  # mints the visitor id (counted by IP only)
    statuses = [client.get(f"{API}/sale/status/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get(f"{API}/sale/status/")
    assert code_of(response) == (429, "throttled")
    assert int(response["Retry-After"]) > 0
    # Another identity from the same address: only the per-IP budget is left (5 in all), and
    # the refused calls above used none of it.
    other = Client()
    assert other.get(f"{API}/sale/status/").status_code == 200
    assert other.get(f"{API}/sale/status/").status_code == 429


def test_throttle_rates_can_be_turned_off(settings, make_queue):
    make_queue(mode="always")
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "THROTTLE_RATES": {"join_identity": None, "join_ip": None},
    }
    client = Client()
    assert all(client.post(f"{API}/sale/join/").status_code == 200 for _ in range(30))


def test_the_schema_covers_the_api_only():
    response = Client().get("/queue/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "ticketqueue"
    assert sorted(schema["paths"]) == [
        "/queue/api/jwks.json",
        "/queue/api/operator/queues/",
        "/queue/api/operator/queues/{queue}/",
        "/queue/api/operator/queues/{queue}/actions/",
        "/queue/api/operator/queues/{queue}/admissions/",
        "/queue/api/operator/queues/{queue}/admit/",
        "/queue/api/operator/queues/{queue}/close/",
        "/queue/api/operator/queues/{queue}/entries/",
        "/queue/api/operator/queues/{queue}/history/",
        "/queue/api/operator/token/",
        "/queue/api/operator/token/refresh/",
        "/queue/api/queues/{queue}/",
        "/queue/api/queues/{queue}/devices/",
        "/queue/api/queues/{queue}/heartbeat/",
        "/queue/api/queues/{queue}/join/",
        "/queue/api/queues/{queue}/leave/",
        "/queue/api/queues/{queue}/release/",
        "/queue/api/queues/{queue}/status/",
    ]


def test_every_error_code_is_in_the_table():
    import importlib
    import pkgutil
    from pathlib import Path

    import ticketqueue
    from ticketqueue.core import TicketQueueError

    for module in pkgutil.walk_packages(ticketqueue.__path__, "ticketqueue."):
        if not module.name.startswith(("ticketqueue.migrations", "ticketqueue.management")):
            importlib.import_module(module.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    table = (Path(__file__).parents[2] / "docs" / "errors.md").read_text()
    codes = {TicketQueueError.code} | {cls.code for cls in subclasses(TicketQueueError)}
    missing = sorted(code for code in codes if f"`{code}`" not in table)
    assert not missing, f"docs/errors.md lacks {missing}"
