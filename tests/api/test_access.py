"""The access check for other backends: 200 with the claims, 410 once the pass ended, 401 when
it is not a pass; cache headers; no SQL and at most one store round trip; and the tiny Python
client against a real HTTP server."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ticketqueue import services
from ticketqueue.client import AccessClient

from .conftest import code_of

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/queue/api/access/"


def ask(client, token, **params):
    return client.get(URL, params, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_an_active_pass_is_200_with_its_claims_and_no_sql(admitted, queue, client, store_calls):
    ask(client, admitted.token, queue="sale")  # a pinned slug costs one query per process
    del store_calls[:]
    with CaptureQueriesContext(connection) as queries:
        response = ask(client, admitted.token, queue="sale")
    assert len(queries) == 0
    assert len(store_calls) <= 1  # none once the pass tracker confirmed it (pub/sub)
    assert response.status_code == 200
    claims = response.json()
    assert claims["active"] is True and claims["queue"] == queue.store_id
    assert claims["identity"] == f"anon:{admitted.client.cookies['tq_visitor'].value.split(':')[0]}"
    assert claims["jti"] == f"{queue.store_id}.{claims['seq']}"
    assert response["Cache-Control"] == "private, max-age=2"


def test_an_ended_pass_is_410_and_cacheable(admitted, client, clock):
    services.release(admitted.token)
    response = ask(client, admitted.token)
    assert code_of(response) == (410, "pass_not_active")
    assert response["Cache-Control"] == "private, max-age=2"
    clock.advance(3600)
    assert code_of(ask(client, admitted.token)) == (410, "pass_expired")


def test_what_is_not_a_pass_is_401(admitted, client, make_queue):
    make_queue("other")
    for token, code in (
        ("", "pass_missing"),
        ("nonsense", "pass_invalid"),
        (admitted.token[:-3] + "abc", "pass_invalid"),
    ):
        response = ask(client, token)
        assert code_of(response) == (401, code)
        assert response["Cache-Control"] == "no-store"
        assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert code_of(ask(client, admitted.token, queue="other")) == (401, "pass_wrong_queue")
    assert code_of(ask(client, admitted.token, queue="nope")) == (404, "queue_not_found")
    assert client.post(URL, HTTP_AUTHORIZATION=f"Bearer {admitted.token}").status_code == 405


def test_the_python_client_over_http(admitted, live_server):
    client = AccessClient(f"{live_server.url}{URL}", queue="sale")
    verdict = client.check(admitted.token)
    assert verdict.allowed and verdict.claims["seq"] >= 1
    assert client.check(admitted.token) is verdict  # cached for the seconds the server said
    refused = client.check("nonsense")
    assert (refused.allowed, refused.status, refused.code) == (False, 401, "pass_invalid")
    services.release(admitted.token)
    fresh = AccessClient(f"{live_server.url}{URL}")
    assert (fresh.check(admitted.token).status, fresh.check(admitted.token).code) == (
        410,
        "pass_not_active",
    )
    down = AccessClient("http://127.0.0.1:9/queue/api/access/", timeout=0.5)
    assert (down.check(admitted.token).allowed, down.check("x").code) == (
        False,
        "access_unavailable",
    )


def test_the_client_needs_no_django():
    import subprocess
    import sys

    code = "import sys, ticketqueue.client; print('django' in sys.modules)"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[2]),
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr
