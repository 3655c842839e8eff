"""WebSocket login for API clients: ``Authorization: Bearer <simplejwt access token>``.

Browsers are logged in by their session (Channels' AuthMiddlewareStack); a mobile app or the
load test has no session, so it sends the access token it got from /api/token/ on the
handshake. The header, never the query string: URLs end up in logs.

The token is checked without the database (simplejwt's stateless TokenUser): the socket only
needs the user's id for its place in line, and a burst of thousands of handshakes must not
queue behind one thread's user queries. Purchases still load the user (JWTAuthentication).
"""

from __future__ import annotations

from typing import Any

from channels.middleware import BaseMiddleware
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _user_for(raw: str) -> Any:
    auth = JWTStatelessUserAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(raw.encode()))
    except (InvalidToken, AuthenticationFailed):
        return None


class JWTAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from a bearer access token; a bad token is refused outright."""

    async def __call__(self, scope, receive, send):
        raw = _bearer(scope)
        if raw is not None:
            user = _user_for(raw)
            if user is None:
                # Close the handshake: a client that sent a token expects to be that user.
                await send({"type": "websocket.close", "code": 4401})
                return None
            scope = dict(scope, user=user)
        return await super().__call__(scope, receive, send)
