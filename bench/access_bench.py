"""Access check benchmark (issue 13): CPU per request of ``GET queue/api/access/`` against a
bare Django view doing nothing but JSON, in one process through Django's WSGI handler, the way
the gate bench measures in-process (PostgreSQL + RedisStore, alternating rounds, the median of
the rounds' ratios). Cases: an active pass (pinned to its queue), an ended pass (410), garbage
(401), and a bare DRF view for scale.

Then the same over the network (``--served``, the default unless ``--quick``): gunicorn with 2
sync workers serving the gate bench's site, wrk (or this script's asyncio load) asking
``access`` with one active pass and the bare Django view in alternating rounds; requests/s and
the server's CPU per request, as the gate bench reports them.

Writes bench/results/access.json and the "Access check for other backends (issue 13)" section
of docs/benchmarks.md (``--quick``: a small run for CI that writes neither).

    .venv/bin/python bench/access_bench.py [--quick] [--no-served] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
from datetime import UTC, datetime
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.dirname(BENCH)]

from _report import publish  # noqa: E402
from gate_bench import (  # noqa: E402
    SERVER_LABELS,
    Bench,
    Server,
    ensure_database,
    reset_queues,
    setup_django,
    wsgi_cpu_us,
)

HEADING = "## Access check for other backends (issue 13)"
LABELS = {
    "bare_plain": "bare Django view (the floor)",
    "access_active": "access, an active pass (?queue= pinned)",
    "access_ended": "access, an ended pass (410)",
    "access_garbage": "access, not a pass (401)",
    "bare_drf": "bare DRF view (for scale)",
}


def measure(rounds: int, requests: int) -> dict[str, Any]:
    import gate_site

    from ticketqueue import services
    from ticketqueue.identity import new_visitor_cookie
    from ticketqueue.models import Queue

    queue = Queue.objects.get(slug="bench")
    active = services.join(queue, f"anon:{new_visitor_cookie()[0]}").pass_token
    ended = services.join(queue, f"anon:{new_visitor_cookie()[0]}").pass_token
    services.release(ended)
    cases = {
        "bare_plain": ("GET", "/bare-plain/", "", {}),
        "access_active": ("GET", "/queue/api/access/", "queue=bench", active),
        "access_ended": ("GET", "/queue/api/access/", "", ended),
        "access_garbage": ("GET", "/queue/api/access/", "", "garbage"),
        "bare_drf": ("GET", "/bare/", "", {}),
    }
    expected = {"access_ended": "410", "access_garbage": "401"}

    def cpu_us(name: str, n: int) -> float:
        method, path, query, token = cases[name]
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if isinstance(token, str) else {}
        want = expected.get(name, "200")

        def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
            assert status.startswith(want), (name, status)

        return wsgi_cpu_us(gate_site.application, start_response, method, path, headers, n, query)

    samples: dict[str, list[float]] = {name: [] for name in cases}
    for name in cases:
        cpu_us(
            name, max(50, requests // 10)
        )  # warm-up: the slug, the pass tracker, the verified-token cache
    for r in range(rounds):
        for name in cases if r % 2 == 0 else reversed(list(cases)):
            samples[name].append(cpu_us(name, requests))
    ratios = {
        name: statistics.median(
            b / a for a, b in zip(samples["bare_plain"], samples[name], strict=True)
        )
        for name in cases
    }
    return {
        "rounds": rounds,
        "requests_per_round": requests,
        "cpu_us": {name: statistics.median(v) for name, v in samples.items()},
        "ratio_to_bare_plain": ratios,
    }


def served(loadgen: str, secs: float, rounds: int) -> dict[str, Any]:
    """Requests/s and server CPU per request of ``access`` (one active pass, pinned to its
    queue) against the bare Django view, under gunicorn, paired round by round."""
    bench = Bench(loadgen, 16, secs, rounds)
    with Server("gunicorn") as server:
        token, _visitor = server.join("bench")
        assert token, "the bench queue admits at once"
        section = bench.measure(
            server,
            {
                "bare_plain": ("/bare-plain/", "GET", {}),
                "access_active": (
                    "/queue/api/access/?queue=bench",
                    "GET",
                    {"Authorization": f"Bearer {token}"},
                ),
            },
        )
    return {
        "server": SERVER_LABELS["gunicorn"],
        "loadgen": loadgen,
        "seconds_per_round": secs,
        "rounds": rounds,
        "cases": section,
        "rps_ratio": Bench.paired(section, "access_active", "bare_plain"),
        "cpu_ratio": Bench.cpu_ratio(section, "access_active", "bare_plain"),
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["measured"]
    lines = [
        HEADING,
        "",
        f"`.venv/bin/python bench/access_bench.py` on {report['machine']}, {report['date']}: "
        "CPU per request through Django's WSGI handler in one process (no network), "
        "PostgreSQL + RedisStore, DEBUG off, the gate bench's site and middleware; "
        f"{m['rounds']} alternating rounds of {m['requests_per_round']} requests, medians.",
        "",
        "| request | us | vs the bare Django view |",
        "|---|---:|---:|",
    ]
    for name, label in LABELS.items():
        lines.append(
            f"| {label} | {m['cpu_us'][name]:.0f} | {m['ratio_to_bare_plain'][name]:.2f}x |"
        )
    lines += [
        "",
        "The check is a JWT verification (cached per token after the first), the pass "
        "tracker's answer (no store round trip for a pass admitted while the process "
        "listened, else one until the process confirmed it; ends arrive by pub/sub) and a "
        "JSON body. No SQL. Across the network a caller also pays a "
        "round trip, which the `Cache-Control: max-age=2` it gets lets it skip on most "
        "requests.",
    ]
    net = report.get("served")
    if net:
        c = net["cases"]
        lines += [
            "",
            f"Served: {net['server']}, load from {net['loadgen']} (16 connections), "
            f"{net['rounds']} alternating rounds of {net['seconds_per_round']:.0f} s, medians; "
            "one active pass asked again and again (a backend that ignores the cache header):",
            "",
            "| request | requests/s | server CPU per request (us) |",
            "|---|---:|---:|",
            f"| bare Django view | {c['bare_plain']['rps']:.0f} | "
            f"{c['bare_plain']['server_cpu_us']:.0f} |",
            f"| access, an active pass | {c['access_active']['rps']:.0f} | "
            f"{c['access_active']['server_cpu_us']:.0f} |",
            "",
            f"Access over bare: {net['rps_ratio']:.2f} of its requests/s (paired rounds), "
            f"{net['cpu_ratio']:.2f} as server CPU sees it.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-served", action="store_true", help="In-process figures only.")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args(argv)
    ensure_database()
    setup_django()
    reset_queues()
    rounds, requests = (2, 200) if args.quick else (9, 3000)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "measured": measure(rounds, requests),
    }
    if not (args.quick or args.no_served):
        loadgen = args.loadgen
        if loadgen == "auto":
            loadgen = "wrk" if shutil.which("wrk") else "python"
        report["served"] = served(loadgen, secs=5.0, rounds=5)
    publish("access", HEADING, report, markdown(report), quick=args.quick, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
