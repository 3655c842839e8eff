"""Refill benchmark: how long after a purchase releases its pass the next person in line is
granted, with REFILL_ON_RELEASE on (the default: the release admits) and off (the next tick
admits), on PostgreSQL + RedisStore with the tick loop running at the defaults (one round a
second).

A queue of capacity 100 holds 100 passes and a long line; buyers release passes at a steady
pace, each through ``ticketqueue.release`` (what a purchase view calls). A subscriber on the
queue's live channel (Redis pub/sub, what every socket process listens to) notes when each
``granted`` message is published; the k-th release frees the slot of admission 100 + k, so
its delay runs from the start of the release call to that admission's ``granted`` message.

Writes bench/results/refill.json and the "Refill on release (issue 16)" section of
docs/benchmarks.md (``--quick``: a short run for CI, bench/results/refill_quick.json only).

    .venv/bin/python bench/refill_bench.py [--quick] [--releases 300] [--pace 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import publish  # noqa: E402
from bench.admission_bench import (  # noqa: E402
    ensure_database,
    load_line,
    setup_django,
    stats_ms,
)

HEADING = "## Refill on release (issue 16)"
CAPACITY = 100


class Grants:
    """Publish times of ``granted`` messages, by seq, heard on the queue's live channel."""

    def __init__(self, client: Any, channel: str) -> None:
        self.at: dict[int, float] = {}
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.05)
            if not message:
                continue
            heard = time.perf_counter()
            body = json.loads(message["data"])
            if body.get("k") == "granted":
                for _identity, seq, *_rest in body["items"]:
                    self.at.setdefault(int(seq), heard)

    def wait_for(self, seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if seq in self.at:
                return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()


def scenario(refill: bool, releases: int, pace: float) -> dict[str, Any]:
    from django.conf import settings
    from django.test.utils import override_settings

    import ticketqueue
    from ticketqueue import services, tick_loop
    from ticketqueue.store import get_store

    tq = {**settings.TICKETQUEUE, "REFILL_ON_RELEASE": refill}
    with override_settings(TICKETQUEUE=tq):
        people = [f"anon:{uuid.uuid4().hex}" for _ in range(CAPACITY + releases + 50)]
        queue = load_line(f"refill-{int(refill)}", people, capacity=CAPACITY, purchase_window=600)
        store = get_store()
        channel = store.broadcast.live_channel(queue.store_id)
        grants = Grants(store.client, channel)
        first = services.tick(queue)
        assert len(first.admitted) == CAPACITY
        tokens = {a.seq: token for a, token in first.passes}
        stop = threading.Event()
        # run_loop as the embedded ticker runs it, on this queue only: the bench database
        # keeps other runs' queues, which a tick of every queue would load into the store.
        loop = threading.Thread(
            target=tick_loop.run_loop,
            args=(stop,),
            kwargs={"cleanup_every": 0, "queues": [queue]},
            daemon=True,
        )
        loop.start()
        released_at: list[float] = []
        try:
            start = time.perf_counter()
            for k in range(releases):
                time.sleep(max(0.0, start + k / pace - time.perf_counter()))
                seq = k + 1
                if seq not in tokens:  # admitted after the first tick: its pass from the store
                    assert grants.wait_for(seq, 10), f"admission {seq} never granted"
                    tokens[seq] = _pass_of(queue, seq)
                released_at.append(time.perf_counter())
                ticketqueue.release(tokens.pop(seq), tickets=0)
            last = CAPACITY + releases
            assert grants.wait_for(last, 10), "the last freed slot was never refilled"
        finally:
            stop.set()
            loop.join(10)
            grants.close()
        delays = [grants.at[CAPACITY + k + 1] - t for k, t in enumerate(released_at)]
        in_request = sum(d < 0.05 for d in delays)
        return {
            "refill_on_release": refill,
            "releases": releases,
            "pace_per_s": pace,
            "release_to_granted": stats_ms(delays),
            "within_50ms": round(in_request / len(delays), 3),
        }


def _pass_of(queue: Any, seq: int) -> str:
    from ticketqueue import services
    from ticketqueue.store import get_store

    record = next(p for p in get_store().passes(queue.store_id) if p.seq == seq)
    return services.issue_pass(queue, seq, record.identity, record.admitted_at, record.expires_at)


def markdown(report: dict[str, Any]) -> str:
    rows = [
        "| mode | release -> granted min / median / p99 / max (ms) | within 50 ms |",
        "|---|---|---|",
    ]
    for run in report["runs"]:
        d = run["release_to_granted"]
        label = "refill on release (default)" if run["refill_on_release"] else "next tick only"
        rows.append(
            f"| {label} | {d['min_ms']} / {d['median_ms']} / {d['p99_ms']} / {d['max_ms']} "
            f"| {run['within_50ms'] * 100:.0f}% |"
        )
    run = report["runs"][0]
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured {report['when']} on {report['machine']}, with:",
            "",
            "```",
            ".venv/bin/python bench/refill_bench.py",
            "```",
            "",
            f"A queue of capacity {CAPACITY} on PostgreSQL + RedisStore, its tick loop at the "
            "defaults (one admission round a second) in a thread of the same process; "
            f"{run['releases']} passes released at {run['pace_per_s']:.0f} a second through "
            "`ticketqueue.release` (what a purchase view calls). Each delay runs from the start "
            "of the release call to the `granted` message of the admission it freed, heard on "
            "the queue's live channel (Redis pub/sub, what the socket processes listen to). "
            "Target: 50 ms p99.",
            "",
            *rows,
            "",
            "With refill the release's own request admits the next person (one store step: "
            "capacity and the rate bucket decide as in a tick), signs the pass and publishes "
            "`granted`; the rows follow from the journal at the next tick. Without it the freed "
            "slot waits for the next round: up to a second at the defaults.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--quick", action="store_true", help="a short run for CI")
    parser.add_argument("--releases", type=int, default=300)
    parser.add_argument("--pace", type=float, default=20.0, help="releases per second")
    parser.add_argument("--db", default="ticketqueue_bench")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    releases = 40 if args.quick else args.releases
    ensure_database(args.db)
    prefix = f"tqrefill{uuid.uuid4().hex[:6]}"
    setup_django(args.db, args.url, prefix)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from ticketqueue.store import get_store

    try:
        runs = [scenario(refill, releases, args.pace) for refill in (True, False)]
    finally:
        client = get_store().client
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    report = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "runs": runs,
    }
    publish("refill", HEADING, report, markdown(report), quick=args.quick, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
