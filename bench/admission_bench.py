"""Admission benchmark: one tick admitting 1,000, and 500 admissions/s sustained, on
PostgreSQL + RedisStore, through the same code the Celery tick runs (ticker.run_tick).

Writes bench/results/admission.json and the "Admission throughput (issue 5)" section of
docs/benchmarks.md (``--quick``: a short run for CI, bench/results/admission_quick.json only).

    .venv/bin/python bench/admission_bench.py [--quick] [--seconds 60] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import publish, write_section  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "admission.json"
HEADING = "## Admission throughput (issue 5)"
BURST = 1_000
RATE = 500  # admissions per second, sustained
BATCHES = 10  # per 1 s tick: 50 every 100 ms
#: Tags this run's queues, so runs sharing the database never touch each other's.
RUN = f"r{os.getpid()}"


def setup_django(db: str, redis_url: str, prefix: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-not-secret",  # noqa: S106
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "channels",
            "rest_framework",
            "ticketqueue",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": db,
                "USER": os.environ.get("PGUSER", "postgres"),
                "HOST": os.environ.get("PGHOST", "127.0.0.1"),
                "PORT": os.environ.get("PGPORT", "5432"),
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        TICKETQUEUE={
            "STORE": "ticketqueue.store.redis.RedisStore",
            "REDIS_URL": redis_url,
            "KEY_PREFIX": prefix,
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


def ensure_database(db: str) -> None:
    import psycopg

    with psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        user=os.environ.get("PGUSER", "postgres"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            conn.execute(f'CREATE DATABASE "{db}"')


# -- measuring -------------------------------------------------------------------------


class Meter:
    """Wall time per part of a tick, each part's own (a part called inside another, such as
    the store's ack inside the row writes, counts for itself only), so the parts add up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.reply_bytes: dict[str, int] = defaultdict(int)
        self.round_trips = 0
        self._nested: list[float] = []

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._nested.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[part] += elapsed - self._nested.pop()
                self.calls[part] += 1
                if self._nested:
                    self._nested[-1] += elapsed

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.reply_bytes.clear()
        self.round_trips = 0


class TimedStore:
    """The store, every call timed as 'store'."""

    def __init__(self, store: Any, meter: Meter) -> None:
        self._store = store
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        return self._meter.wrap("store", value) if callable(value) else value


def _size(reply: Any) -> int:
    if isinstance(reply, str | bytes):
        return len(reply)
    if isinstance(reply, list | tuple):
        return sum(_size(x) for x in reply)
    return len(str(reply))


def instrument(meter: Meter) -> Callable[..., Any]:
    """Time the parts of a tick where the tick calls them; count Redis round trips (a
    pipeline is one) and the size of each store script's reply."""
    import redis.connection

    from ticketqueue import notifications, passes, services, ticker
    from ticketqueue.live import publisher
    from ticketqueue.store import get_store

    store = get_store()
    timed_store = TimedStore(store, meter)
    services.get_store = lambda: timed_store  # services' own reference (one tick's calls)
    services._sync = meter.wrap("rows", services._sync)
    services.issue_passes = meter.wrap("signing", services.issue_passes)
    real_sign = passes.sign

    def counted_sign(claims: Any) -> str:
        meter.calls["signatures"] += 1
        return real_sign(claims)

    passes.sign = counted_sign
    publisher.publish = meter.wrap("publishing", publisher.publish)
    ticker._sample = meter.wrap("sample", ticker._sample)
    ticker.milestones.announce = meter.wrap("milestones", ticker.milestones.announce)
    lease = ticker.get_lease()
    for name in ("acquire", "renew", "release"):
        setattr(lease, name, meter.wrap("lease", getattr(lease, name)))
    real_run = store._run

    def measured_run(name: str, *args: Any, **kwargs: Any) -> Any:
        reply = real_run(name, *args, **kwargs)
        meter.reply_bytes[name] += _size(reply)
        return reply

    store._run = measured_run
    real_send = redis.connection.AbstractConnection.send_packed_command

    def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        meter.round_trips += 1
        return real_send(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counted_send  # type: ignore
    return meter.wrap("notifying", notifications.notify_turn)


def server_cpu(redis_client: Any, pg_pid: int) -> dict[str, float]:
    """CPU seconds used so far by Redis and by our PostgreSQL backend."""
    info = redis_client.info("cpu")
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pg_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {
        "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        "postgres": (int(fields[11]) + int(fields[12])) / tick,
    }


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stats_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {
        "min_ms": round(ordered[0] * 1000, 2),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "n": len(ordered),
    }


# -- the scenarios ---------------------------------------------------------------------


def load_line(slug: str, identities: list[str], **fields: Any) -> Any:
    """A queue with these identities waiting, written as rows and rebuilt into the store
    (what thousands of joins would leave behind, without timing the joins)."""
    from ticketqueue import services
    from ticketqueue.models import Entry, Queue

    queue = Queue.objects.create(slug=f"{RUN}-{slug}", name=slug, mode="always", **fields)
    joined = datetime.now(UTC)
    Entry.objects.bulk_create(
        [
            Entry(queue=queue, identity=who, seq=i, order=float(i), joined_at=joined)
            for i, who in enumerate(identities, start=1)
        ],
        batch_size=5_000,
    )
    services.rebuild(queue)
    return queue


PARTS = (
    "store",
    "rows",
    "signing",
    "notifying",
    "milestones",
    "publishing",
    "lease",
    "sample",
)


def burst(rounds: int, meter: Meter, notify: Callable[..., Any], enqueue: Callable[..., Any]):
    """One tick admitting 1,000 (store + rows + signing + notifying), ``rounds`` times."""
    from django.contrib.auth import get_user_model
    from django.core import mail

    from ticketqueue import presence, ticker

    users = get_user_model()
    people = users.objects.bulk_create(
        [users(username=f"{RUN}-{i}", email=f"{RUN}-{i}@example.com") for i in range(BURST)]
    )
    identities = [f"user:{u.pk}" for u in people]
    runs: dict[str, list[float]] = {"celery": [], "inline_email": []}
    parts: dict[str, list[dict[str, float]]] = {"celery": [], "inline_email": []}
    cpu: dict[str, list[float]] = {"celery": [], "inline_email": []}
    counted: dict[str, Any] = {}
    for r in range(-1, rounds):  # round -1 warms up: connections, scripts, caches
        for mode, how in (("celery", enqueue), ("inline_email", notify)):
            queue = load_line(f"burst-{mode}-{r}", identities)
            # Half the people watch the page; the other half get an email.
            for who in identities[::2]:
                presence.mark_connected(queue.store_id, who)
            mail.outbox = []
            meter.reset()
            cpu0 = process_cpu()
            start = time.perf_counter()
            report = ticker.run_tick(queues=[queue], batches=1, notify=how)
            runs[mode].append(time.perf_counter() - start)
            cpu[mode].append(process_cpu() - cpu0)
            assert report.admitted == BURST, report.as_dict()
            if r < 0:
                runs[mode].pop(), cpu[mode].pop()
                continue
            parts[mode].append({k: v * 1000 for k, v in meter.seconds.items()})
            if mode == "celery":
                counted = {
                    "store_calls": meter.calls.get("store", 0),
                    "signatures": meter.calls.get("signatures", 0),
                    "row_syncs": meter.calls.get("rows", 0),
                    "redis_round_trips": meter.round_trips,
                    "store_reply_bytes": dict(meter.reply_bytes),
                }
            if mode == "inline_email":
                assert len(mail.outbox) == BURST // 2, len(mail.outbox)
    result: dict[str, Any] = {}
    for mode, samples in runs.items():
        part_ms = {
            part: round(statistics.median(p.get(part, 0.0) for p in parts[mode]), 2)
            for part in PARTS
        }
        tick_ms = stats_ms(samples)
        part_ms["other"] = round(max(0.0, tick_ms["median_ms"] - sum(part_ms.values())), 2)
        result[mode] = {
            "tick": tick_ms,
            "parts_median_ms": part_ms,
            "worker_cpu_median_ms": round(statistics.median(cpu[mode]) * 1000, 2),
        }
    return result | {"per_tick": counted}


def sustained(seconds: int, meter: Meter, enqueue: Callable[..., Any], cpu_probe: Callable):
    """RATE admissions/s for ``seconds``: one run_tick a second, BATCHES rounds in each.

    The line holds twice what the run should admit, so a run that takes longer than asked
    (ticks overrunning on a loaded machine) never runs it dry; the rate is the admissions
    over the wall time of the ticks."""
    from ticketqueue import services, ticker

    line = 2 * RATE * seconds + 2 * BURST
    queue = load_line("sustained", [f"anon:{i}" for i in range(line)], rate_per_minute=RATE * 60)
    ticker.run_tick(queues=[queue], batches=1, notify=enqueue)  # spends the initial burst
    batch_times: list[float] = []
    real_tick_one = ticker._tick_one

    def timed_tick_one(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return real_tick_one(*args)
        finally:
            batch_times.append(time.perf_counter() - start)

    ticker._tick_one = timed_tick_one
    tick_busy: list[float] = []
    tick_wall: list[float] = []
    admitted = rounds = 0
    meter.reset()
    cpu0, servers0, wall0 = process_cpu(), cpu_probe(), time.perf_counter()
    try:
        for second in range(seconds):
            before = len(batch_times)
            start = time.perf_counter()
            report = ticker.run_tick(queues=[queue], batches=BATCHES, interval=1.0, notify=enqueue)
            tick_wall.append(time.perf_counter() - start)
            admitted += report.admitted
            rounds += sum(t.batches for t in report.ticked)
            tick_busy.append(sum(batch_times[before:]))
            # Beat's next tick comes at the next second.
            time.sleep(max(0.0, wall0 + second + 1 - time.perf_counter()))
    finally:
        ticker._tick_one = real_tick_one
    wall = time.perf_counter() - wall0
    cpu, servers = process_cpu() - cpu0, cpu_probe()
    waiting = services.queue_info(queue).waiting
    assert waiting > 0, "the line ran dry: the rate would be the line's, not the tick's"
    return {
        "ticks": seconds,
        "seconds": round(wall, 2),
        "admitted": admitted,
        "admitted_per_second": round(admitted / wall, 1),
        "rounds": rounds,
        "still_waiting": waiting,
        "ticks_over_1s": sum(w > 1.0 for w in tick_wall),
        "redis_round_trips_per_round": round(meter.round_trips / max(1, rounds), 1),
        "batch": stats_ms(batch_times),
        "tick_busy": stats_ms(tick_busy),
        "tick_wall": stats_ms(tick_wall),
        "worker_cpu_seconds": round(cpu, 2),
        "worker_cores": round(cpu / wall, 3),
        "redis_cores": round((servers["redis"] - servers0["redis"]) / wall, 3),
        "postgres_cores": round((servers["postgres"] - servers0["postgres"]) / wall, 3),
    }


# -- report ------------------------------------------------------------------------------


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} kB"


def analysis(report: dict[str, Any]) -> list[str]:
    b, s = report["burst"], report["sustained"]
    run = b["celery"]
    tick, p = run["tick"]["median_ms"], run["parts_median_ms"]
    per = b["per_tick"]
    replies = per["store_reply_bytes"]
    signs = per["signatures"]
    sign_us = round(p["signing"] * 1000 / signs, 1) if signs else 0
    load = report["load_average"]
    inline_notify = b["inline_email"]["parts_median_ms"]["notifying"]
    email_us = round((inline_notify - p["notifying"]) * 1000 / (BURST // 2))
    return [
        f"**Where the time goes.** Of the median 1,000-admission tick ({tick} ms, of which "
        f"{run['worker_cpu_median_ms']} ms of this process's CPU; the rest is waiting for "
        "PostgreSQL and Redis, which share the two cores):",
        "",
        f"- **rows, {p['rows']} ms**: one transaction on PostgreSQL: the per-queue advisory "
        "lock, a `SELECT` joined to `unnest(queue ids, seqs)` for rows a racing join has not "
        "written yet, `UPDATE ... FROM unnest(queue ids, seqs, admission numbers)` and "
        "`INSERT INTO ticketqueue_admission ... SELECT ... FROM unnest(...) ON CONFLICT DO "
        "NOTHING`: statements of constant text, integer arrays sent as one literal each, the "
        "tick's shared admission and expiry times as plain parameters, no model instances, "
        "then the commit. The queue id is a column of the arrays (not a constant the planner "
        "looks up in the statistics) and the state test uses no index, so a queue the "
        "statistics do not know yet (every new sale's, until ANALYZE) cannot make PostgreSQL "
        "hash its whole waiting line each round. PostgreSQL's share is mostly index upkeep "
        "(the UPDATE changes `state`, which the line index and the one-live-entry-per-identity "
        "index depend on, so no row can be updated in place: each of the entry table's six "
        "indexes gets a new entry for each of the 1,000 rows) and the commit's WAL flush.",
        f"- **store, {p['store']} ms** for {per['store_calls']} calls (expire, admit, journal, "
        "ack, drain, counts): admit and journal move the 1,000 entries inside one script each "
        f"and answer with one JSON string ({_kb(replies.get('admit', 0))} and "
        f"{_kb(replies.get('journal', 0))}); ack sends the 1,000 tokens as one JSON argument "
        "and deletes with two bulk commands.",
        f"- **signing, {p['signing']} ms** for {signs} signatures, one per pass "
        f"(~{sign_us} us each): HS256 with the key checked and the header encoded once, the "
        "same bytes PyJWT writes; the live layer reuses the tick's passes.",
        f"- **notifying, {p['notifying']} ms**: one presence script call for the 1,000 "
        "(one byte per person back) and one Celery message for the 500 absent ones.",
        f"- **milestones, {p['milestones']} ms**: the queue's defaults (the pass-ending "
        "reminder only): its mark and the passes ending within the notice, two reads "
        "returning nobody right after admission.",
        f"- **publishing, {p['publishing']} ms**: one `tick` broadcast and one `granted` "
        "message carrying the 1,000 passes, whatever the number of sockets.",
        f"- lease {p['lease']} ms, the per-minute sample row {p['sample']} ms (here every "
        "tick, as each round uses a new queue; once a minute in a sale), "
        f"other {p['other']} ms (signal dispatch, `TickResult`, logging calls).",
        f"- Delivered inline (email) notifying takes {inline_notify} ms: Django builds "
        f"and renders the 500 messages (~{email_us} us each) inside the tick, which is why "
        "the Celery path hands them to a task and a tick loop without Celery to its courier "
        "thread (`ticketqueue.courier`).",
        "",
        f"{per['redis_round_trips']} Redis round trips per tick (a pipeline or script is "
        "one; the lease's three, the store's six, presence, the Celery message, two "
        "publishes, the milestones' two, the sample's read of the shared counters). "
        "The next step would be PostgreSQL's: the UPDATE's index upkeep, e.g. dropping the "
        "entry table's `queue_id` index, which `(queue_id, seq)` already covers.",
        "",
        f"**At {RATE}/s** the worker used {s['worker_cores']} of a core "
        f"({s['redis_round_trips_per_round']} Redis round trips per round), our PostgreSQL "
        f"backend {s['postgres_cores']} (a round's four statements take 2-3 ms; on this "
        "shared VM the figure moves between runs, one read 0.16 with the same code), and "
        f"{s['ticks_over_1s']} of {s['ticks']} ticks took longer than their second. "
        "Before the row writes stopped trusting the statistics, each round's UPDATE hashed "
        "the whole waiting line of the run's queue (new, so unknown to the statistics): 18 ms "
        "a round at 60,000 waiting, against 1.5 ms now. "
        "An earlier run reported 352/s: its line held 32,000 people, the run took 88 s "
        "instead of 60 because ticks overran on a machine at load 10-20, and it emptied the "
        "line; the rate was the line's, not the tick's. The line now holds twice what the run "
        "should admit, and the ticker merges rounds that came due while an earlier one ran "
        "into the next (one round admits what the bucket gathered) instead of running them "
        "back to back, so an overloaded tick keeps to its second. The bucket's two-second "
        "burst covers a late tick; a gap longer than that loses admissions for good. "
        f"The machine is shared: load average {load[0]} before and {load[1]} after.",
    ]


def markdown(report: dict[str, Any]) -> str:
    b, s = report["burst"], report["sustained"]
    celery, inline = b["celery"], b["inline_email"]
    lines = [
        HEADING,
        "",
        f"Measured {report['date']} on {report['machine']} (PostgreSQL {report['postgres']}, "
        f"Redis {report['redis']}, Python {report['python']}; load average "
        f"{report['load_average'][0]} before, {report['load_average'][1]} after), with:",
        "",
        "```",
        report["command"],
        "```",
        "",
        "Both scenarios run `ticketqueue.ticker.run_tick`, the code the Celery `tick` task runs: "
        "lease, `services.tick` (expire, admit, journal -> rows, sign, signals including the "
        "live broadcast), then the notification step; the line is loaded as rows and rebuilt "
        "into RedisStore first. Wall time from `time.perf_counter`; CPU from `getrusage` for "
        "this process, Redis's `INFO cpu` and `/proc` for our PostgreSQL backend.",
        "",
        f"**One tick admitting 1,000** ({b['rounds']} rounds after one to warm up; half the "
        "people have the page open, the other half are told by email). Target: < 100 ms.",
        "",
        "| notification path | tick min / median / p99 (ms) | CPU | store | rows | signing "
        "| notifying | milestones | publishing | lease | sample | other |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in (
        ("Celery (absent ones handed to a task)", celery),
        ("inline email (locmem backend, 500 emails)", inline),
    ):
        p = run["parts_median_ms"]
        lines.append(
            f"| {label} | {run['tick']['min_ms']} / {run['tick']['median_ms']} / "
            f"{run['tick']['p99_ms']} | {run['worker_cpu_median_ms']} | "
            + " | ".join(str(p[part]) for part in (*PARTS, "other"))
            + " |"
        )
    per = b["per_tick"]
    lines += [
        "",
        "Medians in ms; each part counts its own time only (the store's ack inside the row "
        "writes is store time), so the parts add up to the tick. CPU is this process's. "
        f"Per tick: {per['store_calls']} store calls, {per['row_syncs']} row sync, "
        f"{per['signatures']} pass signatures for 1,000 admissions, "
        f"{per['redis_round_trips']} Redis round trips.",
        "",
        f"**{RATE} admissions/s asked for, {s['ticks']} one-second ticks** ({BATCHES} rounds "
        f"per tick, rate limit 30,000/min; the run took {s['seconds']} s, {s['rounds']} rounds, "
        f"{s['still_waiting']:,} people still waiting at the end). Target: < 0.25 of a core "
        "for the worker at 500/s.",
        "",
        "| admitted/s | round median / p99 / max (ms) | busy per 1 s tick, median / max (ms) "
        "| worker cores | Redis cores | PostgreSQL cores |",
        "|---|---|---|---|---|---|",
        f"| {s['admitted_per_second']} | {s['batch']['median_ms']} / {s['batch']['p99_ms']} / "
        f"{s['batch']['max_ms']} | {s['tick_busy']['median_ms']} / {s['tick_busy']['max_ms']} "
        f"| {s['worker_cores']} | {s['redis_cores']} | {s['postgres_cores']} |",
    ]
    lines += ["", *analysis(report)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--quick", action="store_true", help="2 rounds and 5 s (for CI)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--db", default="ticketqueue_bench")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the docs section from the saved JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        write_section(HEADING, markdown(json.loads(RESULTS.read_text(encoding="utf-8"))))
        return 0
    rounds, seconds = (2, 5) if args.quick else (args.rounds, args.seconds)

    prefix = f"tqbench{uuid.uuid4().hex[:6]}"
    ensure_database(args.db)
    setup_django(args.db, args.url, prefix)

    from celery import Celery
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from ticketqueue import tasks
    from ticketqueue.models import Queue
    from ticketqueue.store import get_store

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        # Earlier runs' deleted rows would otherwise stay (autovacuum may be off on a bench
        # machine) and slow every scan; fresh statistics that do not know this run's queues
        # are what a new sale meets in production, too.
        cursor.execute("VACUUM ANALYZE")
    celery_queue = f"{prefix}-notify"
    celery = Celery("bench", broker=args.url, set_as_current=True)
    celery.conf.task_default_queue = celery_queue
    celery.set_current()
    store = get_store()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), version()")
        pg_pid, pg_version = cursor.fetchone()
    meter = Meter()
    inline_notify = instrument(meter)
    enqueue = meter.wrap("notifying", tasks._enqueue_notifications)
    load_before = os.getloadavg()[0]
    try:
        burst_result = burst(rounds, meter, inline_notify, enqueue)
        burst_result["rounds"] = rounds
        print(json.dumps(burst_result, indent=2))
        sustained_result = sustained(
            seconds, meter, enqueue, lambda: server_cpu(store.client, pg_pid)
        )
        print(json.dumps(sustained_result, indent=2))
    finally:
        for key in store.client.scan_iter(match=f"{prefix}:*", count=1000):
            store.client.unlink(key)
        with celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(celery_queue)
        Queue.objects.filter(slug__startswith=f"{RUN}-").delete()
        get_user_model().objects.filter(username__startswith=f"{RUN}-").delete()
    report = {
        "command": " ".join([".venv/bin/python", "bench/admission_bench.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "postgres": pg_version.split()[1],
        "redis": store.client.info("server").get("redis_version"),
        "python": platform.python_version(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "burst": burst_result,
        "sustained": sustained_result,
        "targets": {"burst_tick_ms": 100, "sustained_worker_cores": 0.25},
    }
    publish(
        "admission", HEADING, report, markdown(report), quick=args.quick, write=not args.no_write
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
