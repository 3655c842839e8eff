"""Helpers for a site's own tests: a buyer with a pass, and ticketqueue's clock held still.

    from ticketqueue.testing import admit, frozen_clock

    def test_checkout(client, queue):
        admit(queue, client=client)          # in line, admitted, the pass in client's cookies
        assert client.post("/checkout/").status_code == 201

Both go through the real path (the store, the rows, the signer and the gate's checks), so a
test that passes with them passes in production. With pytest they are also fixtures
(``ticketqueue_pass``, ``ticketqueue_clock``): pytest loads this module as a plugin wherever
ticketqueue is installed (an entry point), and then starts no embedded ticker thread in the
test process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Nothing of Django's is imported here: pytest loads this plugin before Django is set up.

__all__ = ["Clock", "admit", "frozen_clock"]


def _identity(user: Any, client: Any) -> str:
    """The user's identity, else the test client's visitor (given one if it has none)."""
    from .identity import VISITOR_COOKIE, new_visitor_cookie, user_identity, visitor_id_from_cookie

    identity = user_identity(user)
    if identity is not None:
        return identity
    if client is None:
        raise TypeError("admit() needs a logged-in user or a test client")
    cookie = client.cookies.get(VISITOR_COOKIE)
    visitor = visitor_id_from_cookie(cookie.value if cookie is not None else None)
    if visitor is None:
        visitor, signed = new_visitor_cookie()
        client.cookies[VISITOR_COOKIE] = signed
    return f"anon:{visitor}"


def admit(queue: Any, user: Any = None, *, client: Any = None) -> str:
    """Put a buyer in ``queue``'s line and admit everyone up to them now: the signed pass.

    The buyer is ``user`` when logged in, else the Django test ``client``'s visitor (a new one
    if it has none). Admission is an operator's "admit N now": past the rate limit, never past
    capacity. With ``client``, its cookies get the pass, so its next request to a gated view
    goes in. Raises what a join raises (QueueClosed, QueueFull, LoginRequired...), and
    RuntimeError when the queue's capacity leaves no room.
    """
    from . import services
    from .gate import pass_cookie_name

    identity = _identity(user, client)
    status = services.join(queue, identity)
    if status.state == "waiting" and status.position:
        services.tick(queue, limit=status.position, use_rate=False)
        status = services.status(queue, identity)
    if status.pass_token is None:
        raise RuntimeError(f"{identity} was not admitted to {queue}: no room within its capacity")
    if client is not None:
        client.cookies[pass_cookie_name(queue.store_id)] = status.pass_token
    return status.pass_token


class Clock:
    """ticketqueue's clock while frozen: call it for the time, ``advance`` to move it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@contextmanager
def frozen_clock(at: float | None = None) -> Iterator[Clock]:
    """Hold the clock of the services (joins, ticks, passes' times) and of the pass checks at
    ``at`` (default: now) until the block ends; ``clock.advance(900)`` expires a 15-minute pass.
    """
    from . import passes, services

    clock = Clock(services.clock() if at is None else at)
    saved: tuple[Callable[[], float], Callable[[], float]] = (services.clock, passes.timer)
    services.clock = passes.timer = clock
    try:
        yield clock
    finally:
        services.clock, passes.timer = saved


# -- the pytest plugin ----------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - only the plugin needs pytest
    pass
else:

    @pytest.fixture
    def ticketqueue_clock() -> Iterator[Clock]:
        """ticketqueue's clock, frozen for the test (``frozen_clock``)."""
        with frozen_clock() as clock:
            yield clock

    @pytest.fixture
    def ticketqueue_pass() -> Callable[..., str]:
        """``admit`` as a fixture: ``ticketqueue_pass(queue, client=client)``."""
        return admit

    def pytest_configure(config: Any) -> None:
        """A test run serves no one: no thread ticks the queues behind the tests' backs (a
        test that wants the ticker runs ``ticker.run_tick`` or starts ``tick_loop.embedded``)."""
        from . import conf

        conf.embedded_ticker_allowed = False
