"""What one socket process pays for each join it hears about: a queue's live channel carries a
``joined`` message for a new place whose identity has another connection open (the join script
publishes it; until 2026-12-05, for every new place), and every socket process holding that
queue's room hears it.

A real hub (``ticketqueue.live.hub.Hub``: the transport's subscriber, its inbox, the room's
dispatch) holds one seat in a queue's room, and a second process publishes N ``joined``
messages for other people on the room's channel, as the join script writes them. Reported:
this process's CPU per message, from the first publish to the room having counted the last
(``Room.waiting`` goes up by one per message); the median of several rounds.

    .venv/bin/python bench/announce_bench.py [--messages 20000] [--rounds 5] [--quick]

A full run writes bench/results/announce.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import publish, run_header  # noqa: E402
from ws_bench import configure_django  # noqa: E402

HEADING = "## What a socket process pays for each join it hears (issue 16)"
REDIS_URL = os.environ.get("TICKETQUEUE_REDIS_URL", "redis://127.0.0.1:6379/0")

#: The publisher: N messages on one channel, pipelined 500 at a time (what many joins in many
#: processes add up to on a queue's channel).
PUBLISHER = """
import json, sys, redis
url, channel, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = redis.Redis.from_url(url)
pipe = client.pipeline(transaction=False)
for i in range(count):
    pipe.publish(channel, json.dumps({
        "k": "joined", "identity": "anon:%032d" % i, "seq": 1000000 + i, "order": 1000000 + i,
        "position": 1000 + i, "t": 100, "dt": 3,
    }))
    if i % 500 == 499:
        pipe.execute()
pipe.execute()
"""


async def one_round(count: int) -> dict[str, float]:
    from ticketqueue.live.hub import Hub, Seat
    from ticketqueue.models import Queue

    async def send(message: dict[str, Any]) -> None:  # the seat's socket: hears nothing here
        return None

    hub = Hub(asyncio.get_running_loop())
    queue = Queue(pk=int(uuid.uuid4().int % 10**12), slug=f"announce-{uuid.uuid4().hex[:8]}")
    room = await hub.attach(queue, Seat("anon:the-one-seat", send))
    try:
        publisher = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", PUBLISHER, REDIS_URL, room.channel, str(count)]
        )
        cpu, wall = time.process_time(), time.monotonic()
        while room.waiting < count:
            await asyncio.sleep(0.005)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        publisher.wait(timeout=60)
    finally:
        await hub.close()
    return {"cpu_us_per_message": cpu / count * 1e6, "messages_per_s": count / wall}


def markdown(report: dict[str, Any]) -> str:
    per = report["cpu_us_per_message"]
    return "\n".join(
        [
            HEADING,
            "",
            f"`{report['command']}` ({report['date']}, {report['machine']}, Python "
            f"{report['python']}). A real hub holding one seat in a queue's room; another "
            f"process publishes {report['messages']:,} `joined` messages on the room's channel "
            "as the join script writes them. This process's CPU per message, from the first "
            f"publish to the room having counted the last, median of {report['rounds']} rounds "
            f"(each: {', '.join(f'{x:.1f}' for x in report['samples'])} us):",
            "",
            "| CPU per message in a socket process | messages/s one process took |",
            "|---:|---:|",
            f"| {per:.1f} us | {report['messages_per_s']:,.0f} |",
            "",
            "Every socket process holding a queue's room hears each of its `joined` messages: "
            "one per join whose identity has another connection open (a second tab; until "
            "2026-12-05, one per join). Each costs the fleet about "
            f"{per:.0f} us times the number of socket processes: {per * 32 / 1000:.2f} ms over "
            "the 32 processes of the 500,000-buyer plan (docs/deploy.md), "
            f"{4200 * 32 * per / 1e6:.1f} cores if all of its 4,200 joins a second had one.",
            "",
            "Raw figures: `bench/results/announce.json`.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small run; writes no docs")
    args = parser.parse_args(argv)
    count, rounds = (2000, 1) if args.quick else (args.messages, args.rounds)

    configure_django(REDIS_URL)
    import django

    django.setup()
    samples = [asyncio.run(one_round(count)) for _ in range(rounds)]
    per = [s["cpu_us_per_message"] for s in samples]
    report = {
        **run_header("announce_bench.py"),
        "messages": count,
        "rounds": rounds,
        "samples": per,
        "cpu_us_per_message": statistics.median(per),
        "messages_per_s": statistics.median(s["messages_per_s"] for s in samples),
    }
    publish("announce", HEADING, report, markdown(report), quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
