"""Pass signing: each algorithm, key rotation, the JWKS, the key checks."""

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.checks import run_checks
from django.test import Client

from ticketqueue import passes
from ticketqueue.checks import Codes
from ticketqueue.core import PassClaims, PassExpired, PassInvalid, PassNotYetValid

T0 = 1_800_000_000


def claims(**overrides):
    fields = {
        "issuer": "ticketqueue",
        "queue_id": "7",
        "seq": 3,
        "identity": "user:1",
        "issued_at": T0,
        "expires_at": T0 + 900,
        **overrides,
    }
    return PassClaims(**fields)


def pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key):
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


KEYS = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


def configure(settings, algorithm, private=(), public=()):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "PASS_ALGORITHM": algorithm,
        "PASS_PRIVATE_KEYS": [{"kid": kid, "pem": pem(key)} for kid, key in private],
        "PASS_PUBLIC_KEYS": [{"kid": kid, "pem": public_pem(key)} for kid, key in public],
    }


def test_hs256_round_trip_and_times():
    token = passes.sign(claims())
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert passes.verify(token, queue_id="7", now=T0 + 1) == claims()
    with pytest.raises(PassExpired):
        passes.verify(token, now=T0 + 900)
    with pytest.raises(PassNotYetValid):
        passes.verify(token, now=T0 - 6)
    assert passes.verify(token, now=T0 - 5).seq == 3  # the leeway


@pytest.mark.parametrize("identity", ["user:1", 'anon:"quoted"\\é\u2028', "user:" + "x" * 90])
def test_hs256_passes_are_the_bytes_pyjwt_writes(settings, identity):
    # The tick's signer checks the key and encodes the header once per key; the token must
    # stay exactly what jwt.encode makes, under the derived key and under PASS_SECRET.
    for secret in (None, "another-secret-" * 3):
        settings.TICKETQUEUE = {**settings.TICKETQUEUE, "PASS_SECRET": secret}
        key = passes._current_keys().signing_key
        c = claims(identity=identity)
        assert passes.sign(c) == jwt.encode(c.to_payload(), key, algorithm="HS256")


def test_hs256_our_own_passes_verify_without_pyjwt(monkeypatch):
    # A pass this site signed is checked by one HMAC and one JSON parse (the gate's first
    # use of a pass); PyJWT is not consulted.
    token = passes.sign(claims(identity="anon:é"))

    def no_pyjwt(*args, **kwargs):
        raise AssertionError("PyJWT was asked")

    monkeypatch.setattr(jwt, "decode", no_pyjwt)
    monkeypatch.setattr(jwt, "get_unverified_header", no_pyjwt)
    assert passes.verify(token, queue_id="7", now=T0) == claims(identity="anon:é")


def test_hs256_anything_else_takes_pyjwts_full_path(settings):
    key = passes._current_keys().signing_key
    payload = claims().to_payload()
    # Valid under our key, written differently: PyJWT decides, and accepts.
    for other in (
        jwt.encode(payload, key, algorithm="HS256", headers={"typ": "at+jwt"}),
        passes.sign(claims()) + "=",  # a padded signature segment
    ):
        assert passes.verify(other, now=T0) == claims()
    # Our header, but not ours to accept: PyJWT refuses each with its reason.
    token = passes.sign(claims())
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    refused = [
        f"{head}.{body}.{flipped}",
        f"{head}.{body[:-2]}.{signature}",
        f"{head}.{body}",
        f"{head}.{body}.{signature}é",
        jwt.encode({**payload, "iss": "elsewhere"}, key, algorithm="HS256"),
        jwt.encode({**payload, "sub": 3}, key, algorithm="HS256"),
        jwt.encode({k: v for k, v in payload.items() if k != "idn"}, key, algorithm="HS256"),
        jwt.encode(payload, b"another key of thirty-two bytes!", algorithm="HS256"),
    ]
    for bad in refused:
        passes._verified.clear()
        with pytest.raises(PassInvalid):
            passes.verify(bad, now=T0)


def test_the_pass_secret_setting(settings):
    token = passes.sign(claims())
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "PASS_SECRET": "another-secret-" * 3}
    with pytest.raises(PassInvalid):
        passes.verify(token, now=T0)  # the verified-token cache went with the old key
    assert passes.verify(passes.sign(claims()), now=T0).seq == 3


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_asymmetric_round_trip_with_kid(settings, algorithm):
    key = KEYS[algorithm]()
    configure(settings, algorithm, private=[("k1", key)])
    token = passes.sign(claims())
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    assert passes.verify(token, now=T0).identity == "user:1"
    [jwk] = passes.jwks()["keys"]
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == ("k1", algorithm, "sig")
    assert "d" not in jwk  # never the private part
    # Anyone can verify a pass with the published key alone.
    public = jwt.PyJWK(jwk).key
    payload = jwt.decode(
        token,
        public,
        algorithms=[algorithm],
        audience="ticketqueue:queue:7",
        options={"verify_iat": False},  # T0 lies in the future
    )
    assert payload["idn"] == "user:1"


def test_rotation_newest_signs_all_verify(settings):
    old, new = KEYS["ES256"](), KEYS["ES256"]()
    configure(settings, "ES256", private=[("old", old)])
    old_token = passes.sign(claims())
    # Rotate: the new key signs; the old one stays, private or public only.
    configure(settings, "ES256", private=[("new", new), ("old", old)])
    assert jwt.get_unverified_header(passes.sign(claims()))["kid"] == "new"
    assert passes.verify(old_token, now=T0).seq == 3
    configure(settings, "ES256", private=[("new", new)], public=[("old", old)])
    assert passes.verify(old_token, now=T0).seq == 3
    assert [k["kid"] for k in passes.jwks()["keys"]] == ["new", "old"]
    # Retired: the old passes stop working.
    configure(settings, "ES256", private=[("new", new)])
    with pytest.raises(PassInvalid):
        passes.verify(old_token, now=T0)


def test_a_pass_signed_under_another_algorithm_is_refused(settings):
    hs_token = passes.sign(claims())
    configure(settings, "EdDSA", private=[("k1", KEYS["EdDSA"]())])
    with pytest.raises(PassInvalid):
        passes.verify(hs_token, now=T0)


@pytest.mark.django_db
def test_jwks_endpoint(settings):
    settings.ROOT_URLCONF = "tests.api.urls"
    response = Client().get("/queue/api/jwks.json")
    assert response.status_code == 200 and response.json() == {"keys": []}  # HS256: nothing
    configure(settings, "RS256", private=[("k1", KEYS["RS256"]())])
    response = Client().get("/queue/api/jwks.json")
    assert [k["kid"] for k in response.json()["keys"]] == ["k1"]
    assert response["Cache-Control"] == "public, max-age=300"


def ids(settings, **ticketqueue):
    settings.DEBUG = True
    settings.TICKETQUEUE = {"STORE": "ticketqueue.store.memory.MemoryStore", **ticketqueue}
    return {m.id for m in run_checks() if m.id.startswith("ticketqueue.")}


def test_checks_on_keys(settings):
    rsa_key = KEYS["RS256"]()
    good = [{"kid": "k1", "pem": pem(rsa_key)}]
    assert ids(settings, PASS_ALGORITHM="RS256", PASS_PRIVATE_KEYS=good) == set()
    bad = [{"kid": "k1", "pem": "not a pem"}]
    assert ids(settings, PASS_ALGORITHM="RS256", PASS_PRIVATE_KEYS=bad) == {Codes.UNUSABLE_KEYS}
    # An RSA key cannot sign ES256.
    assert ids(settings, PASS_ALGORITHM="ES256", PASS_PRIVATE_KEYS=good) == {Codes.UNUSABLE_KEYS}
    no_kid = [{"pem": pem(rsa_key)}]
    assert ids(settings, PASS_ALGORITHM="RS256", PASS_PRIVATE_KEYS=no_kid) == {Codes.UNUSABLE_KEYS}


def test_checks_on_the_gate(settings):
    assert ids(settings, GATED_URLS=[(r"^/buy/(?P<queue>[-\w]+)/", None)]) == set()
    assert ids(settings, GATED_URLS=[(r"^/buy/", "sale")]) == set()
    assert ids(settings, GATED_URLS=[(r"^/buy/", None)]) == {Codes.GATED_URLS}
    assert ids(settings, GATED_URLS=[(r"^/buy/(", "sale")]) == {Codes.GATED_URLS}
    assert ids(settings, GATED_URLS="^/buy/") == {Codes.GATED_URLS}
    assert ids(settings, THROTTLE_RATES={"join_ip": "lots"}) == {Codes.THROTTLE_RATES}
    assert ids(settings, THROTTLE_RATES={"join_ip": None}) == set()
    assert ids(settings, GATE_RECHECK=-1) == {Codes.GATE_NUMBER}
