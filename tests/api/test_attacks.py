"""The attack suite: every forged, stale, shared or replayed pass is refused, each with its code."""

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ticketqueue import passes, services
from ticketqueue.core import PassClaims

from .conftest import T0, Visitor, code_of

pytestmark = pytest.mark.django_db(transaction=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token):
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def forge(header, payload, signature=""):
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), signature]
    )


def hs256(header, payload, key: bytes):
    signing_input = ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode())]
    ).encode()
    return f"{signing_input.decode()}.{b64(hmac.new(key, signing_input, hashlib.sha256).digest())}"


def sign_claims(queue, visitor_identity, **overrides):
    fields = {
        "issuer": "ticketqueue",
        "queue_id": queue.store_id,
        "seq": 1,
        "identity": visitor_identity,
        "issued_at": int(T0),
        "expires_at": int(T0) + 900,
        **overrides,
    }
    return passes.sign(PassClaims(**fields))


def identity_of(visitor):
    from ticketqueue.identity import visitor_id_from_cookie

    return f"anon:{visitor_id_from_cookie(visitor.visitor_cookie)}"


def test_the_genuine_pass_buys(admitted):
    response = admitted.buy()
    assert response.status_code == 200
    assert response.json()["seq"] == 1


def test_no_pass_at_all(admitted):
    for name in [n for n in admitted.client.cookies if n.startswith("tq_pass_")]:
        del admitted.client.cookies[name]  # admitted, but sends nothing
    response = admitted.client.get("/buy/sale/")
    assert code_of(response) == (429, "pass_missing")
    assert response["Retry-After"] == "5"


def test_every_refusal_of_the_drf_gate_says_when_to_retry(admitted):
    # docs/errors.md: every refusal of the purchase gate carries Retry-After, 403s too.
    forged = admitted.token[:-4] + ("AAAA" if not admitted.token.endswith("AAAA") else "BBBB")
    response = admitted.client.get("/buy/sale/", HTTP_AUTHORIZATION=f"QueuePass {forged}")
    assert code_of(response) == (403, "pass_invalid")
    assert response["Retry-After"] == "5"


def test_alg_none(admitted):
    header, payload, _ = segments(admitted.token)
    token = forge({"alg": "none", "typ": "JWT"}, payload)
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")
    token = forge({"alg": "None", "typ": "JWT"}, payload, "")
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")


def test_tampered_payload(admitted):
    header, payload, signature = segments(admitted.token)
    for change in ({"exp": payload["exp"] + 3600}, {"sub": "2", "jti": f"{payload['aud']}.2"}):
        token = forge(header, {**payload, **change}, signature)
        assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")


def test_tampered_signature_and_garbage(admitted):
    token = admitted.token[:-4] + ("AAAA" if not admitted.token.endswith("AAAA") else "BBBB")
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")
    for junk in ("x", "a.b.c", "..", "é" * 10, "Bearer " + admitted.token):
        assert code_of(admitted.buy(token=junk)) == (403, "pass_invalid")


def test_expired(admitted, clock):
    clock.advance(900)
    assert code_of(admitted.buy()) == (403, "pass_expired")


def test_not_yet_valid(admitted, queue, clock):
    token = sign_claims(queue, identity_of(admitted), issued_at=int(T0) + 600)
    assert code_of(admitted.buy(token=token)) == (403, "pass_not_yet_valid")


def test_within_the_clock_skew_leeway(admitted, queue):
    token = sign_claims(queue, identity_of(admitted), issued_at=int(T0) + 4)
    assert admitted.buy(token=token).status_code == 200


def test_wrong_queue(make_queue, queue, admitted):
    make_queue("other")
    response = admitted.client.get("/buy/other/", HTTP_AUTHORIZATION=f"QueuePass {admitted.token}")
    assert code_of(response) == (403, "pass_wrong_queue")


def test_wrong_audience_format(admitted):
    header, payload, _ = segments(admitted.token)
    key = passes.load_keys().signing_key
    token = hs256(header, {**payload, "aud": "someone-else"}, key)
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")


def test_wrong_issuer(admitted, queue):
    token = sign_claims(queue, identity_of(admitted), issuer="evil")
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "idn", "jti", "iat", "exp"])
def test_missing_claim(admitted, claim):
    header, payload, _ = segments(admitted.token)
    del payload[claim]
    token = hs256(header, payload, passes.load_keys().signing_key)
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")


def test_signed_with_another_secret(admitted):
    header, payload, _ = segments(admitted.token)
    token = hs256(header, payload, b"not-the-pass-key")
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")
    # The bare SECRET_KEY is not the pass key either: passes use a derived one.
    token = hs256(header, payload, b"tests-only-not-secret")
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")


def test_unexpected_kid_under_hs256(admitted):
    header, payload, _ = segments(admitted.token)
    token = hs256({**header, "kid": "k1"}, payload, passes.load_keys().signing_key)
    assert code_of(admitted.buy(token=token)) == (403, "pass_invalid")


def test_used_by_another_identity(admitted):
    thief = Visitor()
    thief.client.get("/queue/api/queues/sale/status/")  # gets its own visitor cookie
    assert thief.visitor_cookie != admitted.visitor_cookie
    assert code_of(thief.buy(token=admitted.token)) == (403, "pass_wrong_identity")
    # With no identity at all, too.
    assert code_of(Visitor().buy(token=admitted.token)) == (403, "pass_wrong_identity")


def test_used_after_release(admitted, queue):
    assert admitted.buy().status_code == 200
    services.release(admitted.token)
    assert code_of(admitted.buy()) == (403, "pass_not_active")


def test_used_after_release_through_the_api(admitted):
    assert admitted.buy().status_code == 200
    response = admitted.client.post(
        "/queue/api/queues/sale/release/", HTTP_AUTHORIZATION=f"QueuePass {admitted.token}"
    )
    assert response.status_code == 200
    assert code_of(admitted.buy()) == (403, "pass_not_active")


def test_used_after_revoke(admitted, queue):
    assert admitted.buy().status_code == 200
    services.revoke(queue, [1])
    assert code_of(admitted.buy()) == (403, "pass_not_active")


def test_used_after_expiry_tick(admitted, queue, clock):
    clock.advance(901)
    services.tick(queue)
    assert code_of(admitted.buy()) == (403, "pass_expired")


def test_replayed_after_the_entry_ended_but_signed_for_a_later_window(admitted, queue):
    """A genuine signature over claims the store never issued (e.g. a stolen signing key
    aside, a pass for a seq that was never admitted) is still refused by the store check."""
    token = sign_claims(queue, identity_of(admitted), seq=99)
    assert code_of(admitted.buy(token=token)) == (403, "pass_not_active")


# -- asymmetric algorithms -----------------------------------------------------------------


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_private(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_public(key):
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def rs256(settings):
    key = _rsa()
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "PASS_ALGORITHM": "RS256",
        "PASS_PRIVATE_KEYS": [{"kid": "k2", "pem": _pem_private(key)}],
    }
    return key


@pytest.fixture
def rs_admitted(rs256, queue):
    visitor = Visitor()
    visitor.join()
    assert segments(visitor.token)[0] == {"alg": "RS256", "kid": "k2", "typ": "JWT"}
    assert visitor.buy().status_code == 200
    return visitor


def test_hs256_signed_with_the_rsa_public_key(rs256, rs_admitted):
    header, payload, _ = segments(rs_admitted.token)
    public_pem = _pem_public(rs256).encode()
    token = hs256({"alg": "HS256", "typ": "JWT", "kid": "k2"}, payload, public_pem)
    assert code_of(rs_admitted.buy(token=token)) == (403, "pass_invalid")
    token = hs256({"alg": "HS256", "typ": "JWT"}, payload, public_pem)
    assert code_of(rs_admitted.buy(token=token)) == (403, "pass_invalid")


def test_unknown_kid(rs_admitted):
    header, payload, _ = segments(rs_admitted.token)
    token = jwt.encode(payload, _rsa(), algorithm="RS256", headers={"kid": "k9"})
    assert code_of(rs_admitted.buy(token=token)) == (403, "pass_invalid")
    # A known kid over another key's signature: the signature fails.
    token = jwt.encode(payload, _rsa(), algorithm="RS256", headers={"kid": "k2"})
    assert code_of(rs_admitted.buy(token=token)) == (403, "pass_invalid")
    # No kid at all.
    token = jwt.encode(payload, _rsa(), algorithm="RS256")
    assert code_of(rs_admitted.buy(token=token)) == (403, "pass_invalid")


def test_alg_none_and_tampering_under_rs256(rs_admitted):
    header, payload, signature = segments(rs_admitted.token)
    assert code_of(rs_admitted.buy(token=forge({"alg": "none"}, payload))) == (
        403,
        "pass_invalid",
    )
    token = forge(header, {**payload, "exp": payload["exp"] + 3600}, signature)
    assert code_of(rs_admitted.buy(token=token)) == (403, "pass_invalid")
