"""End-to-end sale under load: N buyers arrive at once, wait in line over WebSockets, buy.

Runs against a served demo shop (deploy/run_production.py, or the embedded rundemo) and checks
the sale's invariants in its database afterwards; exits non-zero when one is broken.

    .venv/bin/python bench/loadtest.py --buyers 1000 [--url http://127.0.0.1:8080]
        [--settings demo_project.settings_production] [--capacity 200] [--stock N]

Each buyer logs in (a simplejwt password login for a few, a token refresh for the other
account holders, as a mobile app with a stored refresh token does) or is an anonymous visitor
(a signed visitor id, sent as the X-Queue-Visitor header), joins the event's queue over a
WebSocket, waits, gets its pass and buys one ticket through the purchase API. Some leave the
line, some go away and come back (the same place), a few vanish for good. With --signed-in the
account holders arrive holding an access token (logged in before the sale opened), so the
burst is the joins alone. The buyers' sockets are picows clients (bench/_client.py; --client
websockets for the earlier one), at most --in-flight (500) of them in their opening handshake
at once: one load generator that started all 2,000 connections before reading any answer kept
the servers idle for the burst's first half second (the same window as bench/fanout_bench.py).

Reported: joins per second (with the burst's phases and the machine's CPU per join by part of
the topology; --bare-echo adds the same number of handshakes against a bare websockets echo
server, bench/_burst.py), time in queue, delay of 'granted' and queue updates (p50/p99),
the first wait estimate each buyer saw against its actual wait (shown / actual),
purchase latency, errors. Checked: no oversell, every order backed by exactly one pass,
admissions in FIFO order (the Admission log's numbers against the entries' seqs), capacity
never exceeded (sampled from the store during the run, and swept over the rows afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import resource
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench._burst import CpuMeter, bare_echo, format_split, serve_echo  # noqa: E402
from bench._client import CLIENTS, handshake_status, open_socket  # noqa: E402

# -- the protocol (docs/protocol.md, docs/api.md) ------------------------------------------

WS_PATH = "/ws/queue/{slug}/"
PURCHASE_PATH = "/api/events/{slug}/purchase/"
TOKEN_PATH = "/api/token/"
REFRESH_PATH = "/api/token/refresh/"
PASS_HEADER = "X-Queue-Pass"
VISITOR_HEADER = "X-Queue-Visitor"
VISITOR_COOKIE = "tq_visitor"

#: Seconds a buyer waits for its leave to be acknowledged before counting an error.
LEAVE_TIMEOUT = 180.0

#: Outcomes that are the sale working as designed; anything else is an error.
EXPECTED = {"bought", "sold_out", "closed", "left", "vanished"}


def now() -> float:
    return time.time()


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def pass_claims(token: str) -> dict[str, Any]:
    """The pass's claims, unverified: the buyer only reads its own seq from them."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# -- buyers ---------------------------------------------------------------------------------


@dataclass
class Buyer:
    index: int
    kind: str  # "login" (password), "account" (refresh token), "anon"
    fate: str  # "buy", "leave", "away" (goes away, comes back), "vanish" (never returns)
    username: str | None = None
    refresh: str | None = None
    visitor: str | None = None  # signed visitor id
    access: str | None = None
    seq: int | None = None

    connects: int = 0
    arrived_at: float | None = None  # its task began: the buyer pressed "buy"
    logged_in_at: float | None = None
    connect_at: float | None = None
    opened_at: float | None = None  # its first handshake completed
    joined_at: float | None = None
    first_position: int | None = None
    last_position: int | None = None
    position_rose: int = 0
    largest_rise: int = 0
    updates: int = 0
    granted_at: float | None = None
    pass_token: str | None = None
    bought_at: float | None = None
    purchase_latency: float | None = None
    leave_latency: float | None = None
    order_id: int | None = None
    outcome: str | None = None
    error: str | None = None
    #: (received at, position) of every update that changed the position
    seen: list[tuple[float, int]] = field(default_factory=list)
    #: (received at, seconds) of the first wait estimate the buyer was shown
    first_eta: tuple[float, float] | None = None

    @property
    def address(self) -> str:
        """Each buyer's own address (10.0.0.0/8), as a CDN in front of nginx would report it."""
        return f"10.{self.index >> 16 & 255}.{self.index >> 8 & 255}.{self.index & 255}"


class Run:
    def __init__(self, args: argparse.Namespace, setup: dict[str, Any]) -> None:
        self.args = args
        self.setup = setup
        self.base = args.url.rstrip("/")
        self.ws_base = self.base.replace("http", "ws", 1)
        self.slug = setup["slug"]
        self.buyers: list[Buyer] = []
        self.started = 0.0
        #: (t, waiting, active, admitted total) read from the store during the run
        self.samples: list[tuple[float, int, int, int]] = []
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.done = asyncio.Event()
        self.listen_drops = 0  # the kernel's, over the run (listen_drops())
        self.cpu = CpuMeter()
        #: Logins and purchases each have their own pool of connections: in the wild they
        #: come from different machines, and a purchase queued in our client behind a burst
        #: of other buyers' logins would be measured as the shop's latency.
        self.logins: aiohttp.ClientSession | None = None
        self.purchases: aiohttp.ClientSession | None = None
        #: Handshakes the load generator has in flight at most (--in-flight), or None.
        self.window: asyncio.Semaphore | None = None

    # -- http -----------------------------------------------------------------------------
    async def post_json(
        self,
        http: aiohttp.ClientSession | None,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> Any:
        assert http is not None
        async with http.post(self.base + path, json=body, headers=headers) as response:
            text = await response.text()
            try:
                data = json.loads(text) if text else {}
            except ValueError:
                data = {"raw": text[:200]}
            return response.status, data

    async def log_in(self, buyer: Buyer) -> None:
        if buyer.kind == "login":
            status, data = await self.post_json(
                self.logins,
                TOKEN_PATH,
                {"username": buyer.username, "password": self.setup["password"]},
                {},
            )
        else:
            status, data = await self.post_json(
                self.logins, REFRESH_PATH, {"refresh": buyer.refresh}, {}
            )
        if status != 200 or "access" not in data:
            raise RuntimeError(f"login {status}: {str(data)[:120]}")
        buyer.access = data["access"]

    def identity_headers(self, buyer: Buyer) -> dict[str, str]:
        address = {"X-Forwarded-For": buyer.address}
        if buyer.access:
            return {"Authorization": f"Bearer {buyer.access}", **address}
        return {VISITOR_HEADER: buyer.visitor or "", **address}

    async def purchase(self, buyer: Buyer) -> None:
        assert buyer.pass_token
        headers = {PASS_HEADER: buyer.pass_token, **self.identity_headers(buyer)}
        t0 = now()
        status, data = await self.post_json(
            self.purchases, PURCHASE_PATH.format(slug=self.slug), {"quantity": 1}, headers
        )
        buyer.purchase_latency = now() - t0
        if status == 201:
            buyer.outcome, buyer.bought_at, buyer.order_id = "bought", now(), data.get("id")
        elif status == 409 and data.get("code") == "sold_out":
            buyer.outcome = "sold_out"
        else:
            raise RuntimeError(f"purchase {status}: {data.get('code', str(data)[:120])}")

    # -- the socket -----------------------------------------------------------------------
    async def wait_in_line(self, buyer: Buyer) -> None:
        """Connect, join, follow the position until granted (or closed); ``away`` buyers drop
        the connection once and come back, ``leave`` buyers leave, ``vanish`` ones vanish."""
        # The socket proves the visitor id as a browser does, with the cookie.
        headers = (
            {"Authorization": f"Bearer {buyer.access}"}
            if buyer.access
            else {"Cookie": f"{VISITOR_COOKIE}={buyer.visitor}"}
        )
        headers["X-Forwarded-For"] = buyer.address  # ci_sale.sh trusts it (TRUSTED_PROXIES=2)
        url = self.ws_base + WS_PATH.format(slug=self.slug)
        patience = random.uniform(0.5, self.args.patience)  # noqa: S311
        while True:
            buyer.connects += 1
            buyer.connect_at = buyer.connect_at or now()
            async with open_socket(
                self.args.client, url, headers, self.base, self.args.timeout, self.window
            ) as ws:
                buyer.opened_at = buyer.opened_at or now()
                await ws.send(json.dumps({"type": "join"}))
                reconnect = await self.follow(ws, buyer, patience)
            if not reconnect:
                return
            await asyncio.sleep(random.uniform(0.5, 3))  # noqa: S311

    async def follow(self, ws: Any, buyer: Buyer, patience: float) -> bool:
        """Read messages; True to reconnect (an ``away`` buyer coming back)."""
        deadline = (buyer.joined_at or now()) + patience
        while True:
            timeout = None
            if buyer.fate != "buy" and buyer.joined_at is not None:
                timeout = max(0.0, deadline - now())
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                return await self.walk_away(ws, buyer)
            message = json.loads(raw)
            kind = message.get("type")
            received = now()
            if kind == "queue_update":
                if message.get("state") != "waiting":
                    continue  # the status before joining, or after the entry ended
                if buyer.joined_at is None:
                    buyer.joined_at = received
                    deadline = received + patience
                    self.counts["joined"] += 1
                self.on_position(buyer, message, received)
            elif kind == "granted":
                if buyer.joined_at is None:
                    buyer.joined_at = received
                    self.counts["joined"] += 1
                buyer.granted_at = received
                buyer.pass_token = message["pass"]
                buyer.seq = int(message.get("seq") or pass_claims(buyer.pass_token)["sub"])
                self.counts["granted"] += 1
                return False
            elif kind == "closed" or (kind == "revoked" and message.get("reason") == "closed"):
                buyer.outcome = "closed"  # sold out while waiting
                return False
            elif kind == "error":
                raise RuntimeError(f"ws {message.get('code')}: {message.get('message', '')[:80]}")
            elif kind in ("revoked", "left"):
                raise RuntimeError(f"ws unexpected {kind} ({message.get('reason')})")

    def on_position(self, buyer: Buyer, message: dict[str, Any], received: float) -> None:
        position = message.get("position")
        eta = message.get("eta_seconds")
        if buyer.first_eta is None and isinstance(eta, int | float):
            buyer.first_eta = (received, float(eta))
        if buyer.seq is None and isinstance(message.get("seq"), int):
            buyer.seq = message["seq"]
        if not isinstance(position, int):
            return
        if buyer.first_position is None:
            buyer.first_position = position
        elif buyer.last_position is not None and position != buyer.last_position:
            if position > buyer.last_position:
                buyer.position_rose += 1
                buyer.largest_rise = max(buyer.largest_rise, position - buyer.last_position)
            buyer.seen.append((received, position))
        buyer.last_position = position
        buyer.updates += 1

    async def walk_away(self, ws: Any, buyer: Buyer) -> bool:
        if buyer.fate == "leave":
            await ws.send(json.dumps({"type": "leave"}))
            sent = now()
            heard: list[str] = []
            try:
                # Generous: in a burst the leave waits behind thousands of joins; how long it
                # took is reported, only no answer at all is an error.
                async with asyncio.timeout(LEAVE_TIMEOUT):
                    async for raw in ws:
                        message = json.loads(raw)
                        kind = message.get("type")
                        heard.append(f"{kind}:{message.get('state') or message.get('code')}")
                        if kind == "left" or (kind == "queue_update" and not message["state"]):
                            buyer.outcome, buyer.leave_latency = "left", now() - sent
                            return False
                        if kind == "granted":  # admitted before the leave landed: buy after all
                            buyer.granted_at, buyer.pass_token = now(), message["pass"]
                            buyer.seq = int(message["seq"])
                            self.counts["granted"] += 1
                            return False
                        if kind == "closed":
                            buyer.outcome = "closed"
                            return False
                        if kind == "error" and message.get("code") != "entry_not_found":
                            raise RuntimeError(f"leave refused: {message.get('code')}")
                        # entry_not_found: admitted a moment before; its 'granted' follows
            except TimeoutError:
                raise RuntimeError(
                    f"leave not acknowledged in {LEAVE_TIMEOUT:.0f} s; heard {heard[-5:]}"
                ) from None
        if buyer.fate == "vanish":
            buyer.outcome = "vanished"
            return False
        # "away": drop the connection, come back once, then stay until the end
        buyer.fate = "buy"
        self.counts["reconnected"] += 1
        return True

    async def buyer(self, buyer: Buyer, start: float) -> None:
        await asyncio.sleep(max(0.0, start - now()))
        buyer.arrived_at = now()
        try:
            if buyer.kind != "anon" and buyer.access is None:
                await self.log_in(buyer)
                buyer.logged_in_at = now()
            await self.wait_in_line(buyer)
            if buyer.pass_token and buyer.outcome is None:
                if self.args.think:  # a person filling in the checkout form holds the slot
                    await asyncio.sleep(random.uniform(0.5, 1.5) * self.args.think)  # noqa: S311
                await self.purchase(buyer)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            buyer.outcome = "error"
            buyer.error = f"{type(exc).__name__}: {exc}"[:200]
            if (status := handshake_status(exc)) is not None:
                buyer.error = f"ws handshake {status}"
            # Grouped by kind: the message without its numbers and quoted details.
            self.errors[re.sub(r"\d+(\.\d+)?", "N", buyer.error.split(";")[0])[:70]] += 1
        self.counts[buyer.outcome or "unfinished"] += 1

    # -- the run --------------------------------------------------------------------------
    async def progress(self) -> None:
        while not self.done.is_set():
            await asyncio.sleep(1)
            t = now() - self.started
            waiting, active = self.samples[-1][1:3] if self.samples else (0, 0)
            c = self.counts
            print(
                f"[{t:6.1f}s] joined {c['joined']:>6} waiting {waiting:>6} active {active:>4}"
                f" granted {c['granted']:>6} bought {c['bought']:>6} sold_out {c['sold_out']:>4}"
                f" closed {c['closed']:>5} left {c['left']:>4} away {c['reconnected']:>4}"
                f" errors {c['error']:>3}"
                + (f" ({self.errors.most_common(1)[0][0]})" if self.errors else ""),
                file=sys.stderr,
                flush=True,
            )

    async def main(self) -> None:
        rng = random.Random(self.args.seed)
        self.buyers = make_buyers(self.args, self.setup, rng)

        def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.args.http_connections),
                timeout=aiohttp.ClientTimeout(total=self.args.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
            )

        if self.args.in_flight:
            self.window = asyncio.Semaphore(self.args.in_flight)
        async with session() as self.logins, session() as self.purchases:
            drops = listen_drops()
            self.started = now()
            ramp = self.args.ramp
            starts = [self.started + (rng.random() * ramp if ramp else 0) for _ in self.buyers]
            reporter = asyncio.create_task(self.progress())
            tasks = [
                asyncio.create_task(self.buyer(b, s))
                for b, s in zip(self.buyers, starts, strict=True)
            ]
            try:
                async with asyncio.timeout(self.args.timeout):
                    await asyncio.gather(*tasks)
            except TimeoutError:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.errors["run timed out"] += 1
            self.done.set()
            self.listen_drops = listen_drops() - drops
            await reporter


def make_buyers(args: argparse.Namespace, setup: dict[str, Any], rng: random.Random) -> list[Buyer]:
    accounts = setup["accounts"]  # [(username, refresh token)]
    visitors = setup["visitors"]
    buyers = []
    for i in range(args.buyers):
        r = rng.random()
        fate = (
            "leave"
            if r < args.leave
            else "away"
            if r < args.leave + args.away
            else "vanish"
            if r < args.leave + args.away + args.vanish
            else "buy"
        )
        if i < len(accounts):
            username, refresh = accounts[i]
            kind = "login" if i < args.logins else "account"
            access = setup["accesses"][i] if setup["accesses"] else None
            buyers.append(Buyer(i, kind, fate, username=username, refresh=refresh, access=access))
        else:
            buyers.append(Buyer(i, "anon", fate, visitor=visitors[i - len(accounts)]))
    rng.shuffle(buyers)  # accounts and visitors arrive mixed
    return buyers


# -- the database side: set-up, sampling, verification ------------------------------------


def django_setup(settings: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    import django

    django.setup()


def set_up_sale(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh event with its queue, the buyers' accounts (tokens minted here) and visitors."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    from demo_project.shop.models import Event, open_sale
    from ticketqueue.identity import new_visitor_cookie

    run = uuid.uuid4().hex[:8]
    slug = f"loadtest-{run}"
    stock = args.stock if args.stock is not None else max(1, int(args.buyers * 0.95))
    event = Event.objects.create(
        slug=slug,
        name=f"Load test {run}",
        venue="bench/loadtest.py",
        starts_at=timezone.now(),
        total=stock,
        stock=stock,
        max_per_order=1,
    )
    queue = open_sale(
        event,
        mode=args.mode,
        capacity=args.capacity,
        rate_per_minute=args.rate,
        purchase_window=args.purchase_window,
    )
    n_accounts = int(args.buyers * args.accounts)
    password = uuid.uuid4().hex
    hashed = make_password(password)  # once: every load-test account shares it
    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"lt{run}_{i}", password=hashed) for i in range(n_accounts)],
        batch_size=2000,
    )
    refresh_tokens = [RefreshToken.for_user(u) for u in users]
    accounts = [(u.username, str(t)) for u, t in zip(users, refresh_tokens, strict=True)]
    # --signed-in: each holds an access token already (logged in before the sale opened).
    accesses = [str(t.access_token) for t in refresh_tokens] if args.signed_in else []
    visitors = [new_visitor_cookie()[1] for _ in range(args.buyers - n_accounts)]
    return {
        "run": run,
        "slug": slug,
        "event_id": event.pk,
        "queue_id": queue.pk,
        "store_id": queue.store_id,
        "capacity": args.capacity,
        "stock": stock,
        "password": password,
        "accounts": accounts,
        "accesses": accesses,
        "visitors": visitors,
    }


class Sampler(threading.Thread):
    """Reads the queue's counts from the store every ``interval`` seconds during the run."""

    def __init__(self, run: Run, interval: float) -> None:
        super().__init__(daemon=True)
        self.run_ = run
        self.interval = interval
        self.stop = threading.Event()

    def run(self) -> None:
        from ticketqueue.store import get_store

        store = get_store()
        qid = self.run_.setup["store_id"]
        while not self.stop.wait(self.interval):
            try:
                counts = store.counts(qid, time.time())
            except Exception:  # noqa: BLE001, S112 - a missed sample is not an error of the sale
                continue
            self.run_.samples.append((now(), counts.waiting, counts.active, counts.admitted_total))


def verify(run: Run) -> list[tuple[str, bool, str]]:
    """The sale's invariants, from the rows: (name, held, detail)."""
    from django.db.models import Count, Sum

    from demo_project.shop.models import Event, Order
    from ticketqueue.models import Admission, Entry

    setup = run.setup
    checks: list[tuple[str, bool, str]] = []
    event = Event.objects.get(pk=setup["event_id"])
    orders = list(Order.objects.filter(event=event).values("pass_jti", "queue_seq", "identity"))
    sold = Order.objects.filter(event=event).aggregate(n=Sum("quantity"))["n"] or 0
    checks.append(
        (
            "no oversell",
            sold <= event.total and event.stock == event.total - sold and event.stock >= 0,
            f"sold {sold} of {event.total}, {event.stock} left",
        )
    )

    admissions = list(
        Admission.objects.filter(queue_id=setup["queue_id"])
        .order_by("number")
        .values_list("number", "seq", "identity", "admitted_at")
    )
    by_seq = {seq: (number, identity) for number, seq, identity, _ in admissions}
    entries = dict(Entry.objects.filter(queue_id=setup["queue_id"]).values_list("seq", "state"))
    dup_jti = [j for j, n in Counter(o["pass_jti"] for o in orders).items() if n > 1]
    unbacked = [
        o
        for o in orders
        if o["queue_seq"] not in by_seq
        or by_seq[o["queue_seq"]][1] != o["identity"]
        or o["pass_jti"] != f"{setup['store_id']}.{o['queue_seq']}"
    ]
    completed = {seq for seq, state in entries.items() if state == "completed"}
    order_seqs = {o["queue_seq"] for o in orders}
    bought = [b for b in run.buyers if b.outcome == "bought"]
    checks.append(
        (
            "every order backed by exactly one pass",
            not dup_jti and not unbacked and completed == order_seqs and len(bought) == len(orders),
            f"{len(orders)} orders, {len(bought)} buyers got 201, {len(dup_jti)} passes reused, "
            f"{len(unbacked)} without an admission, {len(completed ^ order_seqs)} completed "
            "entries without an order or orders whose pass was not released",
        )
    )

    seqs = [seq for _, seq, _, _ in admissions]
    numbers = [number for number, _, _, _ in admissions]
    inversions = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
    gaps = numbers != list(range(1, len(numbers) + 1))
    checks.append(
        (
            "admissions in FIFO order",
            inversions == 0 and not gaps,
            f"{len(admissions)} admissions, {inversions} out of join order"
            + (", admission numbers not 1..n" if gaps else ""),
        )
    )

    capacity = setup["capacity"]
    peak_sampled = max((sample[2] for sample in run.samples), default=0)
    peak_rows = peak_overlap(setup["queue_id"])
    checks.append(
        (
            "capacity never exceeded",
            capacity is None or peak_sampled <= capacity,
            f"capacity {capacity}; peak active {peak_sampled} in {len(run.samples)} store"
            f" samples (rows swept: {peak_rows}, approximate: each process stamps its own"
            " time before the store acts)",
        )
    )

    rose = sum(b.position_rose for b in run.buyers)
    risers = [b for b in run.buyers if b.position_rose]
    checks.append(
        (
            "positions never rose" + ("" if run.args.strict_positions else " (warning only)"),
            rose == 0 or not run.args.strict_positions,
            f"{rose} rises seen by {len(risers)} buyers, the largest +"
            f"{max((b.largest_rise for b in risers), default=0)}"
            + " (the live layer's estimate corrected by an exact resync)"
            * bool(rose),
        )
    )

    per_identity = (
        Entry.objects.filter(queue_id=setup["queue_id"], state__in=["waiting", "admitted"])
        .values("identity")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    checks.append(("one live entry per identity", per_identity == 0, f"{per_identity} doubles"))
    errors = sum(run.errors.values())
    checks.append(("no errors", errors == 0, ", ".join(f"{k} x{v}" for k, v in run.errors.items())))
    return checks


def peak_overlap(queue_id: int) -> int:
    """Most passes active at once, swept over the rows' admission and end times."""
    from ticketqueue.models import Entry

    events: list[tuple[float, int]] = []
    rows = Entry.objects.filter(queue_id=queue_id, admitted_at__isnull=False).values_list(
        "admitted_at", "ended_at", "pass_expires_at"
    )
    for admitted, ended, expires in rows:
        end = ended or expires
        events.append((admitted.timestamp(), 1))
        events.append((end.timestamp(), -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end at the same instant frees first
    active = peak = 0
    for _, delta in events:
        active += delta
        peak = max(peak, active)
    return peak


def granted_delays(run: Run) -> list[float]:
    """From the admission in the store (sampled) to the buyer receiving 'granted'."""
    from ticketqueue.models import Admission

    admitted_at = admission_clock(run)
    numbers = dict(
        Admission.objects.filter(queue_id=run.setup["queue_id"]).values_list("seq", "number")
    )
    delays = []
    for b in run.buyers:
        when = admitted_at(numbers[b.seq]) if b.granted_at and b.seq in numbers else None
        if when is not None:
            delays.append(max(0.0, b.granted_at - when))
    return delays


def admission_clock(run: Run) -> Any:
    """When admission number n happened, on this process's clock: halfway between the last
    store sample whose admitted total was below n and the first at or above it.

    The rows' admitted_at is the tick's start, taken before the store admits; the samples
    read the store itself, every --sample-every seconds, so they are within half of that.
    """
    import bisect

    times = [t for t, _, _, _ in run.samples]
    totals = [total for _, _, _, total in run.samples]

    def at(number: int) -> float | None:
        i = bisect.bisect_left(totals, number)
        if i >= len(totals):
            return None
        return times[i] if i == 0 else (times[i - 1] + times[i]) / 2

    return at


def update_delays(run: Run) -> tuple[list[float], int]:
    """How long each change of position took to reach the buyer: from the moment its true
    position (waiting entries ahead, from the rows) reached the new value to the receipt.

    The entries ahead of seq s are those with a smaller seq (no pre-queue shuffle here); at
    time t the true position is 1 + #{seq < s still waiting at t}, so a shown position p was
    first true at the (M - p + 1)-th earliest departure among the M entries ahead. Returns
    the delays and how many updates showed a position lower than the truth (ahead of it).
    """
    from sortedcontainers import SortedList

    from ticketqueue.models import Entry

    rows = Entry.objects.filter(queue_id=run.setup["queue_id"]).order_by("seq")
    admitted_at = admission_clock(run)
    departures = []
    for seq, number, ended in rows.values_list("seq", "admission_number", "ended_at"):
        # Admitted: when the store did it (sampled); left, abandoned, revoked: the row's end,
        # stamped by the process that did it as it did it.
        when = admitted_at(number) if number else (ended.timestamp() if ended else None)
        departures.append((seq, float("inf") if when is None else when))
    observed = sorted((b for b in run.buyers if b.seq is not None and b.seen), key=lambda b: b.seq)
    ahead: SortedList = SortedList()
    delays: list[float] = []
    early = 0
    i = 0
    for buyer in observed:
        while i < len(departures) and departures[i][0] < buyer.seq:
            ahead.add(departures[i][1])
            i += 1
        for received, position in buyer.seen:
            k = len(ahead) - position  # index of the departure that made it true
            if k < 0:
                delays.append(0.0)  # never more than this many ahead: true since joining
                continue
            true_since = ahead[k] if k < len(ahead) else float("inf")
            if true_since > received:
                early += 1  # arrived before the sampler saw the change
            delays.append(max(0.0, received - true_since))
    return delays, early


# -- report ---------------------------------------------------------------------------------


#: Waits shorter than this are left out of the estimate's accuracy: a second's rounding or a
#: tick's timing would dominate the ratio.
ETA_MIN_WAIT = 5.0


def eta_accuracy(run: Run) -> list[float]:
    """Shown / actual for the first wait estimate each buyer saw, over the buyers who then
    waited at least ETA_MIN_WAIT seconds for their pass."""
    ratios = []
    for b in run.buyers:
        if b.first_eta is None or b.granted_at is None:
            continue
        actual = b.granted_at - b.first_eta[0]
        if actual >= ETA_MIN_WAIT:
            ratios.append(b.first_eta[1] / actual)
    return ratios


def listen_drops() -> int:
    """Connections this machine's kernel dropped from full listen queues so far (TcpExt
    ListenDrops): a burst that overflows a server's backlog waits for SYN retries (1 s, 3 s,
    7 s ...), which no server-side profile shows."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(fields.get("ListenDrops", 0))
    return 0


def phases(run: Run) -> dict[str, dict[str, float | None]]:
    """Where a buyer's join burst went: the login (account holders), the handshake, and the
    join from the open socket to its acknowledgement; and when the share of all joins was
    acknowledged, from the burst's start."""
    buyers = run.buyers
    login = [b.logged_in_at - b.arrived_at for b in buyers if b.logged_in_at and b.arrived_at]
    handshake = [b.opened_at - b.connect_at for b in buyers if b.opened_at and b.connect_at]
    join = [b.joined_at - b.opened_at for b in buyers if b.joined_at and b.opened_at]
    acked = [b.joined_at - run.started for b in buyers if b.joined_at]
    spread = {f"p{q}": pct(acked, q) for q in (10, 50, 90, 99, 100)}
    return {
        "login_s": {"p50": pct(login, 50), "p99": pct(login, 99)},
        "handshake_s": {"p50": pct(handshake, 50), "p99": pct(handshake, 99)},
        "join_s": {"p50": pct(join, 50), "p99": pct(join, 99)},
        "acknowledged_by_s": spread,
    }


def report(run: Run, checks: list[tuple[str, bool, str]], wall: float) -> dict[str, Any]:
    buyers = run.buyers
    joined = sorted(b.joined_at for b in buyers if b.joined_at)
    join_span = (joined[-1] - run.started) if joined else 0.0
    burst = phases(run)
    burst["cpu_ms_per_join"] = (
        run.cpu.split(run.started, joined[-1], len(joined)) if joined else None
    )
    in_queue = [b.granted_at - b.joined_at for b in buyers if b.granted_at and b.joined_at]
    grant_delay = granted_delays(run)
    update_delay, early = update_delays(run)
    purchase = [b.purchase_latency for b in buyers if b.purchase_latency is not None]
    bought = sorted(b.bought_at for b in buyers if b.bought_at)
    buy_span = bought[-1] - bought[0] if len(bought) > 1 else 0.0
    leave = [b.leave_latency for b in buyers if b.leave_latency is not None]
    eta_ratio = eta_accuracy(run)
    result = {
        "buyers": len(buyers),
        "capacity": run.setup["capacity"],
        "stock": run.setup["stock"],
        "wall_s": wall,
        "outcomes": dict(Counter(b.outcome or "unfinished" for b in buyers)),
        "kinds": dict(Counter(b.kind for b in buyers)),
        "joins": len(joined),
        "joins_per_s": len(joined) / join_span if join_span > 0 else None,
        "client": run.args.client,
        "in_flight": run.args.in_flight,
        "burst": burst,
        "listen_drops": run.listen_drops,
        "time_in_queue_s": {
            "p50": pct(in_queue, 50),
            "p99": pct(in_queue, 99),
            "max": max(in_queue, default=None),
        },
        "granted_delay_s": {"p50": pct(grant_delay, 50), "p99": pct(grant_delay, 99)},
        "update_delay_s": {"p50": pct(update_delay, 50), "p99": pct(update_delay, 99)},
        "updates_faster_than_sampling": early,
        "updates_per_buyer": statistics.mean([b.updates for b in buyers]) if buyers else 0,
        "purchase_latency_s": {"p50": pct(purchase, 50), "p99": pct(purchase, 99)},
        "purchases_per_s": (len(bought) - 1) / buy_span if buy_span > 0 else None,
        "leave_latency_s": {"p50": pct(leave, 50), "p99": pct(leave, 99)},
        "first_eta_shown_over_actual": {
            "buyers": len(eta_ratio),
            "p10": pct(eta_ratio, 10),
            "p50": pct(eta_ratio, 50),
            "p90": pct(eta_ratio, 90),
        },
        "errors": dict(run.errors),
        "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks],
    }
    o = result["outcomes"]
    lines = [
        "",
        f"End-to-end sale: {len(buyers)} buyers, capacity {result['capacity']}, "
        f"stock {result['stock']}, {wall:.1f} s",
        f"  outcomes         {', '.join(f'{k} {v}' for k, v in sorted(o.items()))}",
        f"  joins            {len(joined)} in {join_span:.1f} s = "
        f"{(result['joins_per_s'] or 0):.0f} joins/s ({run.args.client} client, "
        f"{run.args.in_flight or 'no limit to'} handshakes in flight)",
        "    the burst      "
        + ", ".join(
            f"{name} p50 {fmt_ms(burst[key]['p50'])} p99 {fmt_ms(burst[key]['p99'])}"
            for name, key in (
                ("login", "login_s"),
                ("handshake", "handshake_s"),
                ("join", "join_s"),
            )
        ),
        "    acknowledged   "
        + ", ".join(f"{q} by {fmt_s(at)}" for q, at in burst["acknowledged_by_s"].items())
        + f" from the start; {run.listen_drops} connections dropped from full listen queues",
        f"    machine CPU    per join over the burst: {format_split(burst['cpu_ms_per_join'])}",
        f"  time in queue    p50 {fmt_s(pct(in_queue, 50))}, p99 {fmt_s(pct(in_queue, 99))},"
        f" max {fmt_s(max(in_queue, default=None))}",
        f"  granted delay    p50 {fmt_ms(pct(grant_delay, 50))}, "
        f"p99 {fmt_ms(pct(grant_delay, 99))} (admission in the store -> buyer has the pass)",
        f"  update delay     p50 {fmt_ms(pct(update_delay, 50))}, "
        f"p99 {fmt_ms(pct(update_delay, 99))} (position changed -> shown; {len(update_delay)}"
        f" changes, {early} faster than the {run.args.sample_every * 1000:.0f} ms sampling)",
        f"  purchase         p50 {fmt_ms(pct(purchase, 50))}, p99 {fmt_ms(pct(purchase, 99))};"
        f" {len(bought)} orders, {(result['purchases_per_s'] or 0):.1f}/s from the first to"
        " the last",
        f"  leave            p50 {fmt_ms(pct(leave, 50))}, p99 {fmt_ms(pct(leave, 99))}"
        " (leave sent -> acknowledged)",
        f"  first ETA        shown / actual p10 {fmt_ratio(pct(eta_ratio, 10))}, "
        f"p50 {fmt_ratio(pct(eta_ratio, 50))}, p90 {fmt_ratio(pct(eta_ratio, 90))} "
        f"({len(eta_ratio)} buyers who then waited {ETA_MIN_WAIT:.0f} s or more)",
        f"  errors           {sum(run.errors.values())}"
        + (
            f" ({', '.join(f'{k} x{v}' for k, v in run.errors.most_common(5))})"
            if run.errors
            else ""
        ),
        "",
    ]
    for name, ok, detail in checks:
        mark = "ok" if ok else "BROKEN"
        if ok and name.endswith("(warning only)") and "0 rises" not in detail:
            mark = "warn"
        lines.append(f"  [{mark}] {name}: {detail}")
    print("\n".join(lines), flush=True)
    return result


def against_bare(run: Run, result: dict[str, Any]) -> dict[str, Any]:
    """The join burst against the bare baseline: as many handshakes, from as many addresses
    with the same cookie header, each sending one message and waiting for its echo."""
    visitor = run.setup["visitors"][0] if run.setup["visitors"] else ""

    def headers(index: int) -> dict[str, str]:
        return {
            "Cookie": f"{VISITOR_COOKIE}={visitor}",
            "X-Forwarded-For": Buyer(index, "anon", "buy").address,
        }

    bare = bare_echo(result["joins"], headers, run.args.client, run.args.in_flight)
    ratio = (result["joins_per_s"] or 0) / bare["per_s"]
    print(
        f"  bare echo        {bare['handshakes']} handshakes + one echo each in"
        f" {bare['span_s']:.1f} s = {bare['per_s']:.0f}/s; machine CPU per handshake"
        f" {format_split(bare['cpu_ms_per_handshake'])}\n"
        f"  joins / bare     {ratio:.2f}",
        flush=True,
    )
    return {**bare, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="The shop's public URL.")
    parser.add_argument("--settings", default="demo_project.settings_production")
    parser.add_argument("--buyers", type=int, default=300)
    parser.add_argument("--stock", type=int, help="Tickets on sale (default 95%% of buyers).")
    parser.add_argument("--capacity", type=int, default=100, help="Most passes at once.")
    parser.add_argument("--rate", type=int, default=None, help="Admissions per minute.")
    parser.add_argument("--mode", default="always", choices=["always", "auto", "off"])
    parser.add_argument("--purchase-window", type=int, default=60)
    parser.add_argument("--accounts", type=float, default=0.3, help="Share with an account.")
    parser.add_argument("--logins", type=int, default=5, help="Password logins (slow hash).")
    parser.add_argument(
        "--signed-in",
        action="store_true",
        help="Account holders arrive with an access token (none logs in during the burst).",
    )
    parser.add_argument("--leave", type=float, default=0.03, help="Share that leave the line.")
    parser.add_argument("--away", type=float, default=0.05, help="Share that drop and return.")
    parser.add_argument("--vanish", type=float, default=0.005, help="Share gone for good.")
    parser.add_argument("--patience", type=float, default=8.0, help="Seconds before leaving.")
    parser.add_argument("--ramp", type=float, default=0.0, help="Spread arrivals over seconds.")
    parser.add_argument(
        "--think", type=float, default=0.0, help="Mean seconds a buyer takes to check out."
    )
    parser.add_argument(
        "--http-connections", type=int, default=64, help="Per pool: logins, purchases."
    )
    parser.add_argument("--timeout", type=float, default=None, help="Whole run, seconds.")
    parser.add_argument("--sample-every", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--strict-positions", action="store_true", help="Fail the run if any position rose."
    )
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    parser.add_argument("--dump-buyers", action="store_true", help="Add every buyer to --json.")
    parser.add_argument(
        "--bare-echo",
        action="store_true",
        help="Then the same number of handshakes against a bare websockets echo server.",
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default="picows",
        help="The buyers' WebSocket client (bench/_client.py; the bare baseline's too).",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=500,
        help="Opening handshakes in flight at most (0: no limit); the bare baseline's too.",
    )
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:  # the bare baseline's server (_burst.bare_echo)
        serve_echo()
        return 0
    if args.timeout is None:
        args.timeout = 120 + args.buyers * 0.15 + args.purchase_window
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.buyers + 200 > hard:
        print(f"warning: {args.buyers} sockets need more than ulimit -n {hard}", file=sys.stderr)

    django_setup(args.settings)
    t0 = time.monotonic()
    setup = set_up_sale(args)
    print(
        f"sale {setup['slug']}: {args.buyers} buyers ({len(setup['accounts'])} with accounts),"
        f" stock {setup['stock']}, capacity {args.capacity}; set up in"
        f" {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
    )
    from ticketqueue.store import get_store

    store = get_store()
    if getattr(store, "cluster", False):  # which node of the Redis Cluster holds this queue
        node = store.client.get_node_from_key(f"{{{setup['store_id']}}}")
        print(f"queue {setup['store_id']}: its hash slot is on {node.name}", file=sys.stderr)
    run = Run(args, setup)
    sampler = Sampler(run, args.sample_every)
    sampler.start()
    run.cpu.start()
    t0 = time.monotonic()
    asyncio.run(run.main())
    wall = time.monotonic() - t0
    run.cpu.stop.set()
    sampler.stop.set()
    sampler.join()
    checks = verify(run)
    result = report(run, checks, wall)
    if args.bare_echo:
        result["bare_echo"] = against_bare(run, result)
    if args.dump_buyers:
        result["buyers_detail"] = [
            {
                "seq": b.seq,
                "kind": b.kind,
                "fate": b.fate,
                "outcome": b.outcome,
                "joined_at": b.joined_at,
                "granted_at": b.granted_at,
                "first": b.first_position,
                "first_eta": b.first_eta,
                "seen": b.seen,
                "error": b.error,
            }
            for b in run.buyers
        ]
        result["samples"] = run.samples
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    failed = [name for name, ok, _ in checks if not ok]
    if failed:
        print(f"BROKEN: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
