"""Local stand-ins for Firebase Cloud Messaging (HTTP v1, with Google's OAuth token endpoint)
and Apple Push (HTTP/2, token auth), served by hypercorn on loopback. Each checks every request
as the service documents it and records it; a request that breaks the rules is answered as the
service would (400/401/403) and recorded in ``broken``, so a test can assert there were none.

FCM: https://firebase.google.com/docs/cloud-messaging/send/v1-api and
https://developers.google.com/identity/protocols/oauth2/service-account (the JWT grant).
APNs: https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
and .../establishing-a-token-based-connection-to-apns.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stub:
    """An ASGI app on its own loop thread; ``requests`` holds what it accepted."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = []
        self.broken = []
        self._stop = None
        self._thread = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, answer, extra = self.answer(scope, headers, body)
        data = json.dumps(answer).encode() if answer is not None else b""
        out = [(b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})

    def refuse(self, status, answer, why):
        self.broken.append(why)
        return status, answer, []

    def start(self):
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        config.errorlog = None
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self._stop = asyncio.Event()

            async def main():
                self._loop = asyncio.get_running_loop()
                ready.set()
                await serve(self, config, shutdown_trigger=self._stop.wait)

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the stand-in did not start")

    def stop(self):
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


class FCMStub(Stub):
    """Google's token endpoint (``/token``) and FCM's ``messages:send``."""

    PROJECT = "tq-test-project"

    def __init__(self):
        super().__init__()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = key.public_key()
        self.account = {
            "type": "service_account",
            "project_id": self.PROJECT,
            "private_key_id": "key-1",
            "private_key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "client_email": "push@tq-test-project.iam.gserviceaccount.com",
            "token_uri": f"{self.url}/token",
        }
        self.tokens_issued = []
        self.unregistered = set()  # device tokens that answer 404 UNREGISTERED
        self.unavailable = set()  # device tokens that answer 503 (once each)

    def answer(self, scope, headers, body):
        if scope["path"] == "/token":
            return self.token(scope, headers, body)
        return self.send(scope, headers, body)

    def token(self, scope, headers, body):
        if scope["method"] != "POST":
            return self.refuse(405, None, "token: not a POST")
        if headers.get("content-type") != "application/x-www-form-urlencoded":
            return self.refuse(400, {"error": "invalid_request"}, "token: not a form")
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != JWT_GRANT:
            return self.refuse(400, {"error": "unsupported_grant_type"}, "token: grant_type")
        try:
            header = jwt.get_unverified_header(form["assertion"])
            claims = jwt.decode(
                form["assertion"],
                self.public_key,
                algorithms=["RS256"],
                audience=self.account["token_uri"],
                issuer=self.account["client_email"],
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except (KeyError, jwt.PyJWTError) as exc:
            return self.refuse(400, {"error": "invalid_grant"}, f"token: {exc}")
        if header.get("kid") != self.account["private_key_id"]:
            return self.refuse(400, {"error": "invalid_grant"}, "token: kid")
        if claims["scope"] != FCM_SCOPE or not 0 < claims["exp"] - claims["iat"] <= 3600:
            return self.refuse(400, {"error": "invalid_scope"}, "token: scope or lifetime")
        access = f"ya29.stub-{len(self.tokens_issued)}"
        self.tokens_issued.append(access)
        return 200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}, []

    def send(self, scope, headers, body):
        path = f"/v1/projects/{self.PROJECT}/messages:send"
        if scope["method"] != "POST" or scope["path"] != path:
            return self.refuse(404, None, f"send: {scope['method']} {scope['path']}")
        auth = headers.get("authorization", "")
        if auth not in {f"Bearer {token}" for token in self.tokens_issued}:
            return self.refuse(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}, auth)
        if not headers.get("content-type", "").startswith("application/json"):
            return self.refuse(400, None, "send: not JSON")
        message = json.loads(body)["message"]
        problems = []
        if set(message) - {"token", "notification", "data", "android", "apns", "webpush"}:
            problems.append("unknown message fields")
        if not isinstance(message.get("token"), str):
            problems.append("no token")
        note = message.get("notification", {})
        if not (isinstance(note.get("title"), str) and isinstance(note.get("body"), str)):
            problems.append("notification needs title and body")
        if not all(isinstance(v, str) for v in message.get("data", {}).values()):
            problems.append("data values must be strings")
        ttl = message.get("android", {}).get("ttl", "0s")
        if not (ttl.endswith("s") and ttl[:-1].isdigit()):
            problems.append("android.ttl must be a duration like '3600s'")
        if problems:
            return self.refuse(
                400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}, "; ".join(problems)
            )
        token = message["token"]
        if token in self.unregistered:
            error = {
                "code": 404,
                "status": "NOT_FOUND",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": "UNREGISTERED",
                    }
                ],
            }
            return 404, {"error": error}, []
        if token in self.unavailable:
            self.unavailable.discard(token)
            return 503, {"error": {"code": 503, "status": "UNAVAILABLE"}}, []
        self.requests.append(message)
        return 200, {"name": f"projects/{self.PROJECT}/messages/{len(self.requests)}"}, []


class APNsStub(Stub):
    """APNs's ``POST /3/device/<token>``, HTTP/2 only."""

    KEY_ID = "ABC123DEFG"
    TEAM_ID = "DEF123GHIJ"
    TOPIC = "com.example.tickets"

    def __init__(self):
        super().__init__()
        key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = key.public_key()
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.gone = set()  # device tokens that answer 410 Unregistered
        self.busy = set()  # device tokens that answer 429 once
        self.expire_tokens_issued_before = 0.0  # provider tokens older answer 403

    def answer(self, scope, headers, body):
        if scope.get("http_version") != "2":
            return self.refuse(400, {"reason": "BadRequest"}, "not HTTP/2")
        prefix = "/3/device/"
        if scope["method"] != "POST" or not scope["path"].startswith(prefix):
            return self.refuse(405, {"reason": "MethodNotAllowed"}, scope["path"])
        device = scope["path"][len(prefix) :]
        auth = headers.get("authorization", "")
        if not auth.startswith("bearer "):
            return self.refuse(403, {"reason": "MissingProviderToken"}, "no bearer")
        try:
            provider = auth[len("bearer ") :]
            header = jwt.get_unverified_header(provider)
            claims = jwt.decode(
                provider, self.public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
        except jwt.PyJWTError as exc:
            return self.refuse(403, {"reason": "InvalidProviderToken"}, str(exc))
        if header.get("kid") != self.KEY_ID or claims["iss"] != self.TEAM_ID:
            return self.refuse(403, {"reason": "InvalidProviderToken"}, "kid or iss")
        if claims["iat"] < self.expire_tokens_issued_before or time.time() - claims["iat"] > 3600:
            return 403, {"reason": "ExpiredProviderToken"}, []
        problems = []
        if headers.get("apns-topic") != self.TOPIC:
            problems.append("apns-topic")
        if headers.get("apns-push-type") != "alert":
            problems.append("apns-push-type")
        if headers.get("apns-priority") not in ("5", "10"):
            problems.append("apns-priority")
        if not headers.get("apns-expiration", "").isdigit():
            problems.append("apns-expiration")
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            problems.append("apns-collapse-id longer than 64 bytes")
        if len(body) > 4096:
            problems.append("payload over 4 KB")
        payload = json.loads(body or b"{}")
        alert = payload.get("aps", {}).get("alert", {})
        if not (isinstance(alert.get("title"), str) and isinstance(alert.get("body"), str)):
            problems.append("aps.alert needs title and body")
        if problems:
            return self.refuse(400, {"reason": "BadRequest"}, "; ".join(problems))
        if device in self.gone:
            return 410, {"reason": "Unregistered", "timestamp": int(time.time() * 1000)}, []
        if device in self.busy:
            self.busy.discard(device)
            return 429, {"reason": "TooManyRequests"}, []
        self.requests.append({"device": device, "headers": headers, "payload": payload})
        return 200, None, [(b"apns-id", b"0c8f1c4e-0000-4000-8000-000000000000")]
