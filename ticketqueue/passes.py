"""Signing and verifying queue passes (JWTs), and the JWKS that publishes the verifying keys.

The verifying algorithm list is pinned to the configured one and every claim is required.
HS256 uses a key derived from SECRET_KEY for this purpose only (never the bare SECRET_KEY);
RS256, ES256 and EdDSA sign with the newest of PASS_PRIVATE_KEYS and name it in ``kid``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.conf import settings
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_noop
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

from .conf import on_change, queue_settings
from .core import (
    REQUIRED_CLAIMS,
    PassClaims,
    PassExpired,
    PassInvalid,
    PassNotYetValid,
    PassWrongQueue,
    pass_audience,
)

__all__ = ["Keys", "PassKeyError", "jwks", "load_keys", "sign", "timer", "verify"]

#: The clock passes are checked against; tests swap it.
timer: Callable[[], float] = time.time

#: Verified tokens kept per process: the same pass comes back on every purchase request, and a
#: signature that verified once verifies again (the cache is dropped when the keys change).
#: Times, queue, identity and activity are still checked on every request.
VERIFIED_CACHE_SIZE = 10_000

#: The key types each asymmetric algorithm accepts.
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "RS256": (rsa.RSAPrivateKey, rsa.RSAPublicKey),
    "ES256": (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey),
    "EdDSA": (
        ed25519.Ed25519PrivateKey,
        ed25519.Ed25519PublicKey,
        ed448.Ed448PrivateKey,
        ed448.Ed448PublicKey,
    ),
}
_JWK: dict[str, Any] = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}


class PassKeyError(ValueError):
    """The configured pass keys are unusable (the system check reports this at start-up)."""


@dataclass(frozen=True)
class Keys:
    """The keys of the configured algorithm: one signs, every one of them verifies."""

    algorithm: str
    signing_key: Any
    signing_kid: str | None
    #: kid -> verifying key (HS256: the one key under None)
    verifying: dict[str | None, Any]
    #: The public keys as a JWK Set (empty for HS256: a shared secret is never published)
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})


def _hs256_key() -> bytes:
    if queue_settings.PASS_SECRET:
        return str(queue_settings.PASS_SECRET).encode()
    return salted_hmac(
        "ticketqueue.passes", "pass-signing-key", secret=settings.SECRET_KEY, algorithm="sha256"
    ).digest()


def _pem(entry: Any) -> tuple[str, bytes]:
    if not isinstance(entry, dict) or not entry.get("kid") or not entry.get("pem"):
        raise PassKeyError("Each pass key is a dict {'kid': ..., 'pem': ...}.")
    pem = entry["pem"]
    return str(entry["kid"]), pem.encode() if isinstance(pem, str) else bytes(pem)


def _public_jwk(algorithm: str, kid: str, public_key: Any) -> dict[str, Any]:
    jwk = dict(_JWK[algorithm].to_jwk(public_key, as_dict=True))
    jwk.update(kid=kid, alg=algorithm, use="sig")
    return jwk


def load_keys() -> Keys:
    """Read the keys from the settings; raises PassKeyError when they do not fit the algorithm."""
    algorithm = queue_settings.PASS_ALGORITHM
    if algorithm == "HS256":
        key = _hs256_key()
        return Keys("HS256", key, None, {None: key})
    if algorithm not in _KEY_TYPES:
        raise PassKeyError(f"Unknown pass algorithm {algorithm!r}.")
    types = _KEY_TYPES[algorithm]
    private = list(queue_settings.PASS_PRIVATE_KEYS or [])
    if not private:
        raise PassKeyError(f"{algorithm} needs PASS_PRIVATE_KEYS.")
    verifying: dict[str | None, Any] = {}
    signing_kid, signing_key = None, None
    jwk_set: list[dict[str, Any]] = []
    for entry in private:
        kid, pem = _pem(entry)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise PassKeyError(f"Pass key {kid!r} is not an unencrypted PEM private key.") from exc
        if not isinstance(key, types):
            raise PassKeyError(f"Pass key {kid!r} does not fit {algorithm}.")
        if signing_key is None:  # newest first: the first one signs
            signing_kid, signing_key = kid, key
        public = key.public_key()
        verifying.setdefault(kid, public)
        jwk_set.append(_public_jwk(algorithm, kid, public))
    for entry in queue_settings.PASS_PUBLIC_KEYS or []:
        kid, pem = _pem(entry)
        try:
            public = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise PassKeyError(f"Pass key {kid!r} is not a PEM public key.") from exc
        if not isinstance(public, types):
            raise PassKeyError(f"Pass key {kid!r} does not fit {algorithm}.")
        if kid not in verifying:
            verifying[kid] = public
            jwk_set.append(_public_jwk(algorithm, kid, public))
    return Keys(algorithm, signing_key, signing_kid, verifying, {"keys": jwk_set})


_keys: Keys | None = None
_verified: dict[str, PassClaims] = {}
_lock = threading.Lock()


def _current_keys() -> Keys:
    global _keys
    keys = _keys
    if keys is None:
        with _lock:
            if _keys is None:
                _keys = load_keys()
            keys = _keys
    return keys


@on_change("TICKETQUEUE", "SECRET_KEY")
def _reset() -> None:
    global _keys, _hmac_helper
    with _lock:
        _keys = None
        _hmac_helper = None
        _verified.clear()


def jwks() -> dict[str, Any]:
    """The public keys that verify passes, as a JWK Set (RFC 7517); empty under HS256."""
    return _current_keys().jwks


def sign(claims: PassClaims) -> str:
    keys = _current_keys()
    if keys.algorithm == "HS256":
        return _hmac_for(keys).sign(claims.to_payload())
    headers = {"kid": keys.signing_kid} if keys.signing_kid else None
    return jwt.encode(
        claims.to_payload(), keys.signing_key, algorithm=keys.algorithm, headers=headers
    )


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


#: The payload's JSON exactly as PyJWT writes it (compact separators), without building an
#: encoder per call as ``json.dumps(..., separators=...)`` does.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


class _Hmac:
    """HS256 the way PyJWT does it, byte for byte, minus its per-token work: the key is
    checked once (PyJWT re-validates it on every call) and our header is encoded once.
    A tick signs a pass in ~6 us instead of ~35 us, and a worker verifies a pass it has not
    seen several times faster than PyJWT's decode (docs/benchmarks.md, "Purchase gate and
    REST API": PyJWT checks the key and every segment's alphabet on each call)."""

    def __init__(self, keys: Keys) -> None:
        key = HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(keys.signing_key)
        header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
        if keys.signing_kid:
            header["kid"] = keys.signing_kid
        self.keys = keys
        self._head = _b64(json.dumps(header, separators=(",", ":"), sort_keys=True).encode()) + b"."
        self._head_text = self._head.decode()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def _signature(self, signing_input: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(signing_input)
        return _b64(mac.digest())

    def sign(self, payload: dict[str, Any]) -> str:
        signing_input = self._head + _b64(_encode_json(payload).encode())
        return (signing_input + b"." + self._signature(signing_input)).decode()

    def payload_of(self, token: str) -> dict[str, Any] | None:
        """The payload of a token this signer made, with the claims PyJWT's decode would
        check; None for anything else (another header, a bad signature, a missing claim),
        which then takes PyJWT's full path and gets its exact refusal."""
        if not token.isascii() or not token.startswith(self._head_text):
            return None
        body, dot, signature = token[len(self._head_text) :].partition(".")
        if not dot:
            return None
        expected = self._signature(self._head + body.encode())
        if not hmac.compare_digest(expected, signature.encode()):
            return None
        # The signature covers these exact bytes: they are base64url JSON we wrote.
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if (
            not isinstance(payload, dict)
            or any(payload.get(claim) is None for claim in REQUIRED_CLAIMS)
            or payload["iss"] != queue_settings.PASS_ISSUER
            or not isinstance(payload["sub"], str)
            or not isinstance(payload["jti"], str)
        ):
            return None
        return payload


_hmac_helper: _Hmac | None = None


def _hmac_for(keys: Keys) -> _Hmac:
    global _hmac_helper
    helper = _hmac_helper
    if helper is None or helper.keys is not keys:
        helper = _Hmac(keys)
        with _lock:
            _hmac_helper = helper
    return helper


_DECODE_OPTIONS: Any = {
    "require": list(REQUIRED_CLAIMS),
    # Times and audience are checked below against ``timer`` and with their own codes.
    "verify_aud": False,
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
}


def _verify_signature(token: str, keys: Keys) -> PassClaims:
    if keys.algorithm == "HS256":
        payload = _hmac_for(keys).payload_of(token)
        if payload is not None:
            return PassClaims.from_payload(payload)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise PassInvalid() from exc
    # Pinned: 'none', or HS256 signed with a published RSA key, never reach a verifier.
    if header.get("alg") != keys.algorithm:
        raise PassInvalid(
            gettext_noop("The queue pass is not signed the way this site signs passes.")
        )
    kid = header.get("kid")
    if kid not in keys.verifying:
        raise PassInvalid(gettext_noop("The queue pass is signed with an unknown key."))
    try:
        payload = jwt.decode(
            token,
            keys.verifying[kid],
            algorithms=[keys.algorithm],
            issuer=queue_settings.PASS_ISSUER,
            options=_DECODE_OPTIONS,
        )
    except jwt.PyJWTError as exc:
        raise PassInvalid() from exc
    return PassClaims.from_payload(payload)


def verify(token: str, *, queue_id: str | None = None, now: float | None = None) -> PassClaims:
    """Check signature, claims and times; return the claims or raise a PassError.

    ``queue_id`` pins the audience: a pass for another queue is refused.
    """
    now = timer() if now is None else now
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise PassInvalid()
    claims = _verified.get(token)
    if claims is None:
        claims = _verify_signature(token, _current_keys())
        if len(_verified) >= VERIFIED_CACHE_SIZE:
            _verified.clear()  # cheaper than an LRU, and rare: a purchase window's worth
        _verified[token] = claims
    if queue_id is not None and claims.audience != pass_audience(queue_id):
        raise PassWrongQueue()
    if claims.issued_at > now + queue_settings.PASS_LEEWAY:
        raise PassNotYetValid()
    if claims.expires_at <= now:
        raise PassExpired()
    return claims
