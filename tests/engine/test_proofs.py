"""What a queue may ask of a new place: proof of work and a CAPTCHA (services.join, real store
and database; the CAPTCHA provider is the local stand-in)."""

import functools

import pytest

from ticketqueue import captcha, proofs, services
from ticketqueue.core import (
    CaptchaUnavailable,
    InvalidInput,
    ProofRequired,
    solve,
    solves,
)
from ticketqueue.models import Entry, Queue
from ticketqueue.proofs import JoinProof

from ..siteverify import SECRET, siteverify, siteverify_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_800_000_000.0
ANON = "anon:" + "a" * 32


@pytest.fixture
def make_queue(make_queue):
    return functools.partial(make_queue, mode="always")


def refusal(queue, identity, proof=None, now=T0, address=""):
    with pytest.raises(ProofRequired) as refused:
        services.join(queue, identity, now, proof=proof, address=address)
    return refused.value


def solved(challenge):
    return JoinProof(
        work=challenge["work"], nonce=solve(challenge["work"], challenge["difficulty"])
    )


def unsolved(challenge):
    """A nonce that does not solve the challenge (a fixed one would, 1 time in 2**difficulty)."""
    return next(
        nonce
        for nonce in (f"wrong{i}" for i in range(1000))
        if not solves(challenge["work"], nonce, challenge["difficulty"])
    )


def test_a_new_place_needs_solved_work_and_gets_a_challenge(make_queue):
    queue = make_queue(work_difficulty=8)
    refused = refusal(queue, ANON)
    assert refused.code == "proof_required" and refused.status == 403
    challenge = refused.challenge
    assert (challenge["difficulty"], challenge["captcha"]) == (8, False)
    assert not Entry.objects.exists()
    assert services.queue_info(queue, T0).waiting == 0
    proof = solved(challenge)
    assert solves(proof.work, proof.nonce, 8)
    assert services.join(queue, ANON, T0 + 1, proof=proof).state == "waiting"
    # Someone in line keeps their place without a new proof (a reconnect, a second tab).
    again = services.join(queue, ANON, T0 + 2)
    assert again.state == "waiting" and again.position == 1
    assert Entry.objects.count() == 1


def test_a_work_token_solves_one_join_of_one_identity_in_one_queue(make_queue):
    queue = make_queue(work_difficulty=6)
    other_queue = make_queue(slug="other", work_difficulty=6)
    proof = solved(refusal(queue, ANON).challenge)
    # Another identity, another queue: not theirs.
    assert refusal(queue, "user:2", proof).code == "proof_invalid"
    assert refusal(other_queue, ANON, proof).code == "proof_invalid"
    services.join(queue, ANON, T0, proof=proof)
    services.leave(queue, ANON, T0 + 1)
    # Spent: a second place needs a second proof.
    replayed = refusal(queue, ANON, proof, now=T0 + 2)
    assert replayed.code == "proof_invalid"
    assert replayed.challenge["work"] != proof.work  # and the refusal brings a fresh one
    assert services.join(queue, ANON, T0 + 3, proof=solved(replayed.challenge)).position == 1


def test_wrong_expired_forged_or_too_easy_work_is_refused(make_queue, settings):
    queue = make_queue(work_difficulty=6)
    challenge = refusal(queue, ANON).challenge
    good = solved(challenge)
    wrong = next(str(n) for n in range(1000) if not solves(good.work, str(n), 6))
    cases = {
        "wrong nonce": JoinProof(work=good.work, nonce=wrong),
        "odd nonce": JoinProof(work=good.work, nonce="../x"),
        "forged mac": JoinProof(
            work=good.work[:-2] + ("AB" if good.work[-2:] != "AB" else "BA"), nonce=good.nonce
        ),
        "easier": JoinProof(work="1" + good.work[1:], nonce=good.nonce),
        "garbage": JoinProof(work="a.b.c", nonce="1"),
    }
    for name, proof in cases.items():
        assert refusal(queue, ANON, proof).code == "proof_invalid", name
    # Past its time to live (WORK_CHALLENGE_TTL, 300 s).
    assert refusal(queue, ANON, good, now=T0 + 301).code == "proof_invalid"
    # An operator raises the difficulty during an attack: cheaper tokens stop counting.
    Queue.objects.filter(pk=queue.pk).update(work_difficulty=10)
    queue.refresh_from_db()
    harder = refusal(queue, ANON, good)
    assert (harder.code, harder.challenge["difficulty"]) == ("proof_invalid", 10)
    assert services.join(queue, ANON, T0, proof=solved(harder.challenge)).state == "waiting"
    assert not Entry.objects.exclude(identity=ANON).exists()


def test_malformed_proofs_are_invalid_input():
    assert JoinProof.from_data({"type": "join"}) is None
    assert JoinProof.from_data({"work": "", "captcha": ""}) is None
    for data in ({"work": 5}, {"nonce": ["1"]}, {"work": "x" * 129}, {"captcha": "x" * 4097}):
        with pytest.raises(InvalidInput):
            JoinProof.from_data(data)


def test_a_captcha_is_checked_with_the_provider(make_queue, siteverify):  # noqa: F811
    queue = make_queue(captcha_required=True)
    refused = refusal(queue, ANON, address="203.0.113.5")
    assert refused.challenge == {"difficulty": 0, "captcha": True}
    failed = refusal(queue, ANON, JoinProof(captcha="bad-token"), address="203.0.113.5")
    assert failed.code == "captcha_failed"
    assert siteverify.forms == [
        {"secret": SECRET, "response": "bad-token", "remoteip": "203.0.113.5"}
    ]
    status = services.join(
        queue, ANON, T0, proof=JoinProof(captcha="good-1"), address="203.0.113.5"
    )
    assert status.state == "waiting"
    assert len(siteverify.forms) == 2
    # In line already: no second check.
    services.join(queue, ANON, T0 + 1)
    assert len(siteverify.forms) == 2


def test_work_and_captcha_together_and_the_provider_is_asked_last(make_queue, siteverify):  # noqa: F811
    queue = make_queue(captcha_required=True, work_difficulty=6)
    challenge = refusal(queue, ANON).challenge
    assert challenge["captcha"] is True and challenge["difficulty"] == 6
    bad_work = JoinProof(work=challenge["work"], nonce=unsolved(challenge), captcha="good-1")
    assert refusal(queue, ANON, bad_work).code == "proof_invalid"
    assert siteverify.forms == []  # a wrong puzzle costs the provider nothing
    proof = solved(challenge)
    both = JoinProof(work=proof.work, nonce=proof.nonce, captcha="good-2")
    assert services.join(queue, ANON, T0, proof=both).state == "waiting"


def test_a_provider_that_cannot_answer_refuses_the_join(make_queue, siteverify, settings):  # noqa: F811
    queue = make_queue(captcha_required=True)
    proof = JoinProof(captcha="good-1")
    for status, body in ((500, b"{}"), (200, b"<html>"), (200, b"[1]")):
        siteverify.status, siteverify.body = status, body
        with pytest.raises(CaptchaUnavailable) as refused:
            services.join(queue, ANON, T0, proof=proof)
        assert refused.value.status == 503
    siteverify.close()  # nobody listens there any more
    with pytest.raises(CaptchaUnavailable):
        services.join(queue, ANON, T0, proof=proof)
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "CAPTCHA_SECRET": None}
    with pytest.raises(CaptchaUnavailable):
        services.join(queue, ANON, T0, proof=proof)
    assert not Entry.objects.exists()


def test_verifier_options(siteverify):  # noqa: F811
    turnstile = captcha.Turnstile(SECRET, url=siteverify.url, hostnames=("shop.example",))
    assert not turnstile.verify("good-1", "")  # solved on another host
    siteverify.hostname = "shop.example"
    assert turnstile.verify("good-1", "")
    assert "remoteip" not in siteverify.forms[-1]
    assert not turnstile.verify("", "") and not turnstile.verify("good" * 2000, "")
    siteverify.body = b'{"success": true, "score": 0.3}'
    assert captcha.ReCaptcha(SECRET, url=siteverify.url).verify("good", "")
    assert not captcha.ReCaptcha(SECRET, url=siteverify.url, min_score=0.5).verify("good", "")
    siteverify.body = b'{"success": true, "score": 0.7}'
    assert captcha.ReCaptcha(SECRET, url=siteverify.url, min_score=0.5).verify("good", "")
    assert captcha.HCaptcha("x").url == "https://api.hcaptcha.com/siteverify"


def test_the_challenge_says_only_what_the_queue_asks(make_queue):
    queue = make_queue()
    assert not proofs.demanded(queue)
    assert services.join(queue, ANON, T0).state == "waiting"  # no proof needed, none given
