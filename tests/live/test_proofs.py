"""Proof of work and the CAPTCHA over REST and the socket: the refusal carries the challenge
(JSON types intact), the solved proof takes the place, malformed proofs are invalid_input."""

import pytest
from django.test import Client

from ticketqueue.core import solve
from ticketqueue.store import get_store

from ..siteverify import siteverify, siteverify_server  # noqa: F401 - fixtures
from .conftest import Visitor, in_thread

pytestmark = pytest.mark.django_db(transaction=True)
on_loop = pytest.mark.asyncio


def waiting(queue):
    return get_store().counts(queue.store_id, 0).waiting


def test_rest_join_refuses_with_a_challenge_then_takes_the_solved_place(make_queue):
    queue = make_queue(work_difficulty=8)
    client = Client(REMOTE_ADDR="203.0.113.7")
    url = f"/queue/api/queues/{queue.slug}/join/"
    refused = client.post(url)
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "proof_required"
    challenge = body["challenge"]
    assert challenge["difficulty"] == 8 and challenge["captcha"] is False
    assert waiting(queue) == 0
    nonce = solve(challenge["work"], 8)
    bad = client.post(url, {"work": challenge["work"], "nonce": 7}, content_type="application/json")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_input")
    listed = client.post(url, [1], content_type="application/json")
    assert (listed.status_code, listed.json()["code"]) == (400, "invalid_input")
    joined = client.post(
        url, {"work": challenge["work"], "nonce": nonce}, content_type="application/json"
    )
    assert joined.status_code == 200 and joined.json()["state"] == "waiting"
    # Someone in line needs nothing more.
    assert client.post(url).json()["position"] == 1


def test_rest_join_with_a_captcha(make_queue, siteverify):  # noqa: F811
    queue = make_queue(captcha_required=True)
    client = Client(REMOTE_ADDR="203.0.113.7")
    url = f"/queue/api/queues/{queue.slug}/join/"
    failed = client.post(url, {"captcha": "nope"})
    assert (failed.status_code, failed.json()["code"]) == (403, "captcha_failed")
    assert failed.json()["challenge"] == {"difficulty": 0, "captcha": True}
    assert client.post(url, {"captcha": "good-x"}).json()["state"] == "waiting"
    assert [f["remoteip"] for f in siteverify.forms] == ["203.0.113.7", "203.0.113.7"]
    siteverify.status = 502
    other = Client(REMOTE_ADDR="203.0.113.8").post(url, {"captcha": "good-y"})
    assert (other.status_code, other.json()["code"]) == (503, "captcha_unavailable")
    assert other.headers["Retry-After"]


@on_loop
async def test_socket_join_brings_its_proof_in_the_join_message(make_queue, hub, socket_app):
    queue = await in_thread(make_queue)(work_difficulty=8)
    socket = await Visitor().socket(queue).open()
    await socket.next_of("queue_update")
    await socket.send(type="join")
    refused = await socket.next_of("error")
    assert refused["code"] == "proof_required"
    work = refused["challenge"]["work"]
    await socket.send(type="join", work=work, nonce="not a nonce")
    assert (await socket.next_of("error"))["code"] == "proof_invalid"
    await socket.send(type="join", work=work, nonce=5)
    assert (await socket.next_of("error"))["code"] == "invalid_input"
    await socket.send(type="join", work=work, nonce=solve(work, 8))
    placed = await socket.next_of("queue_update")
    assert (placed["state"], placed["position"]) == ("waiting", 1)
    assert await in_thread(waiting)(queue) == 1
    await socket.disconnect()


def test_rest_join_with_an_invite(make_queue):
    from ticketqueue import invites

    queue = make_queue(who_may_join="invited")
    url = f"/queue/api/queues/{queue.slug}/join/"
    refused = Client().post(url)
    assert (refused.status_code, refused.json()["code"]) == (403, "invite_required")
    token = invites.make_invite(queue)
    assert Client().post(url, {"invite": token}).json()["state"] == "waiting"
    spent = Client().post(url, {"invite": token}, content_type="application/json")
    assert (spent.status_code, spent.json()["code"]) == (403, "invite_invalid")
