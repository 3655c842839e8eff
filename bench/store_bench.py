"""Store benchmark: RedisStore's per-operation latency on lines of 1k, 100k and 1M waiting entries.

Writes bench/results/store.json and the "Store operations (issue 2)" section of docs/benchmarks.md
(--quick, for CI: 1k and 10k, few calls, written to bench/results/store_quick.json only).

    .venv/bin/python bench/store_bench.py [--sizes 1000,100000,1000000] [--quick] [--url URL]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import publish  # noqa: E402
from ticketqueue.core import QueueMode  # noqa: E402
from ticketqueue.store import QueueConfig, WaitingRecord  # noqa: E402
from ticketqueue.store.redis import RedisStore  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "store.json"
HEADING = "## Store operations (issue 2)"
T0 = 1_800_000_000.0
BATCH = 1_000  # admit and expire work on this many entries per call
#: Capacity and rate unlimited, so one admit call (limit=BATCH) takes exactly BATCH from the head.
CONFIG = QueueConfig(
    mode=QueueMode.ALWAYS, capacity=None, rate_per_minute=None, purchase_window=900
)
OPS = ("evalsha_bare", "join", "position", "admit_1000", "expire_1000")
LABELS = {
    "evalsha_bare": "bare EVALSHA `return 1` (baseline)",
    "join": "join (new identity)",
    "position": "position (exact, random seq)",
    "admit_1000": "admit 1,000",
    "expire_1000": "expire 1,000 due passes",
}


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "calls": len(ordered),
    }


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class Bench:
    def __init__(self, store: RedisStore, iterations: int, batch_iterations: int) -> None:
        self.store = store
        self.iterations = iterations
        self.batch_iterations = batch_iterations
        self.bare = store.client.register_script("return 1")
        self.rng = random.Random(2)

    def load(self, queue: str, size: int) -> float:
        waiting = (WaitingRecord(i, f"user-{i}", float(i), T0) for i in range(1, size + 1))
        start = time.perf_counter()
        self.store.rebuild(
            queue, CONFIG, waiting=waiting, active=[], next_seq=size, admitted_total=0, now=T0
        )
        return time.perf_counter() - start

    def refill(self, queue: str, count: int, tag: str) -> None:
        """Join ``count`` new identities in one pipeline (untimed), and ack the journal."""
        join = self.store._scripts["join"]
        pipe = self.store.client.pipeline(transaction=False)
        keys = self.store._keys(queue)
        for i in range(count):
            join(keys=keys, args=[f"{tag}-{i}", repr(T0)], client=pipe)
        pipe.execute()
        self.ack(queue)

    def ack(self, queue: str) -> None:
        while changes := self.store.journal(queue):
            self.store.ack(queue, changes)

    def run(self, sizes: list[int]) -> list[dict[str, Any]]:
        """Every size loaded at once and measured in the same loops, size after size per call:
        this machine's round trip drifts by 2-3x over a minute, and interleaving makes that
        drift hit every size alike, so the ratios between sizes stay fair."""
        store = self.store
        queues = {size: f"bench-{size}" for size in sizes}
        loads = {}
        for size, queue in queues.items():
            loads[size] = self.load(queue, size)
            print(f"  loaded {size:,} waiting in {loads[size]:.1f} s", flush=True)
        samples = {size: {op: [] for op in OPS} for size in sizes}
        gc.disable()  # a collection inside a timed call is noise, not the store's cost
        try:
            for i in range(self.iterations):
                for size, queue in queues.items():
                    got = samples[size]
                    got["evalsha_bare"].append(timed(self.bare))
                    who = f"new-{uuid.uuid4().hex[:12]}-{i}"
                    got["join"].append(timed(lambda q=queue, w=who: store.join(q, w, T0)))
                    seq = self.rng.randint(1, size)
                    got["position"].append(timed(lambda q=queue, s=seq: store.position(q, s)))
            for queue in queues.values():
                self.ack(queue)
            # Each round admits BATCH at t, then expires exactly those BATCH at t + window;
            # the line is topped up between rounds so it stays at the size measured.
            for i in range(self.batch_iterations):
                now = T0 + 1 + i * 1000.0
                for size, queue in queues.items():
                    got = samples[size]
                    start = time.perf_counter()
                    admitted = store.admit(queue, now, limit=BATCH)
                    got["admit_1000"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    expired = store.expire(queue, now + CONFIG.purchase_window)
                    got["expire_1000"].append(time.perf_counter() - start)
                    assert len(admitted) == len(expired) == min(BATCH, size), len(admitted)
                    self.refill(queue, len(admitted), f"refill-{i}")
        finally:
            gc.enable()
            for queue in queues.values():
                store.delete(queue)
        return [
            {
                "size": size,
                "load_seconds": round(loads[size], 2),
                "ops": {op: summary(values) for op, values in samples[size].items()},
            }
            for size in sizes
        ]


def ratios(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    first, last = runs[0], runs[-1]
    out: dict[str, dict[str, float]] = {}
    for op in OPS:
        median = last["ops"][op]["median_ms"]
        out[op] = {
            "largest_over_smallest": median / first["ops"][op]["median_ms"],
            "over_bare_at_largest": median / last["ops"]["evalsha_bare"]["median_ms"],
            "over_bare_at_smallest": first["ops"][op]["median_ms"]
            / first["ops"]["evalsha_bare"]["median_ms"],
        }
    return out


def size_label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1000 and size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def markdown(report: dict[str, Any]) -> str:
    runs = report["runs"]
    small, large = size_label(runs[0]["size"]), size_label(runs[-1]["size"])
    head = " | ".join(f"{size_label(r['size'])} median / p99 (ms)" for r in runs)
    lines = [
        HEADING,
        "",
        f"Measured {report['date']} on {report['machine']} (Redis {report['redis_version']}, "
        f"Python {report['python']}; 1-minute load average {report['load_average'][0]} before, "
        f"{report['load_average'][1]} after), with:",
        "",
        "```",
        report["command"],
        "```",
        "",
        "Each queue is loaded through `rebuild` with that many waiting entries (capacity and rate "
        "unlimited), then each operation is timed from the client with `time.perf_counter` "
        f"({report['iterations']} calls of join, position and the baseline; "
        f"{report['batch_iterations']} calls of admit and expire, each round admitting 1,000 at t "
        "and expiring exactly those 1,000 at t + window, the line topped up between rounds). "
        "Latency includes the round trip to a local Redis (redis-py without hiredis). "
        "Target: the cost at "
        f"{large} no more than 2x the cost at {small}.",
        "",
        f"| operation | {head} | {large} / {small} (median) | x bare EVALSHA at {large} |",
        "|---|" + "---|" * (len(runs) + 2),
    ]
    for op in OPS:
        cells = " | ".join(
            f"{r['ops'][op]['median_ms']:.3f} / {r['ops'][op]['p99_ms']:.3f}" for r in runs
        )
        ratio = report["ratios"][op]
        verdict = "" if ratio["largest_over_smallest"] <= 2 else " (over target)"
        lines.append(
            f"| {LABELS[op]} | {cells} | {ratio['largest_over_smallest']:.2f}x{verdict} "
            f"| {ratio['over_bare_at_largest']:.1f}x |"
        )
    loads = ", ".join(f"{size_label(r['size'])} in {r['load_seconds']:.1f} s" for r in runs)
    lines += [
        "",
        "All sizes are loaded first and measured in the same loops, one call per size and "
        "operation in turn, so the drift of this machine's round trip (2-3x over a minute) hits "
        "every size and the baseline alike. Loading through `rebuild` (one loader script call "
        f"per 1,000 entries, then one swap): {loads}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="1k and 10k, few calls (for CI)")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    iterations = args.iterations or (40 if args.quick else 1000)
    batch_iterations = 10 if args.quick else max(10, iterations // 4)

    load_before = os.getloadavg()[0]
    store = RedisStore(url=args.url, prefix=f"tqbench{os.getpid()}")
    bench = Bench(store, iterations, batch_iterations)
    try:
        runs = bench.run(sizes)
        for run in runs:
            print(f"size {run['size']:,}")
            for op, stats in run["ops"].items():
                print(f"  {op:14} median {stats['median_ms']:.3f} ms  p99 {stats['p99_ms']:.3f} ms")
    finally:
        for key in store.client.scan_iter(match=f"{store.prefix}:*", count=1000):
            store.client.unlink(key)

    info = store.client.info("server")
    report = {
        "command": " ".join([".venv/bin/python", "bench/store_bench.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "redis_version": info.get("redis_version"),
        "python": platform.python_version(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "iterations": iterations,
        "batch_iterations": batch_iterations,
        "runs": runs,
        "ratios": ratios(runs),
    }
    publish("store", HEADING, report, markdown(report), quick=args.quick, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
