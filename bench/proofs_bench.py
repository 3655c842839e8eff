"""Bot defence benchmark (issue 17): what each check costs an honest buyer and a bot.

1. The buyer's proof of work: the widget's own worker (ticketqueue/static/ticketqueue/work.js)
   solving real-shaped challenges in headless Chromium, at each difficulty (solve time from the
   worker's own clock, and its hash rate).
2. The server's check: verifying a solved token (HMAC + SHA-256, in this process), and a new
   visitor's join through ``services.join`` on PostgreSQL + RedisStore with no check (the
   baseline), with the per-address and per-identity join limits, and with proof of work
   (difficulty 1: the server's full check, the buyer's work left out), alternating rounds.
3. The bot: SHA-256 tries per CPU-second (Python's hashlib, and OpenSSL's native code, what a
   serious bot uses), so how many places one CPU-second buys at each difficulty.

Writes bench/results/proofs.json and the "Bot defence (issue 17)" section of docs/benchmarks.md
(``--quick``: a small run for CI that writes neither).

    .venv/bin/python bench/proofs_bench.py [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
import timeit
import uuid
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from _report import publish  # noqa: E402
from gate_bench import ensure_database, setup_django  # noqa: E402

ROOT = BENCH.parent
STATIC = ROOT / "ticketqueue" / "static" / "ticketqueue"
HEADING = "## Bot defence (issue 17)"

PAGE = b"""<!doctype html><title>work</title><script>
window.solveOnce = function (work, difficulty) {
  return new Promise(function (resolve, reject) {
    var worker = new Worker('/work.js');
    worker.onmessage = function (e) { worker.terminate(); resolve(e.data); };
    worker.onerror = function (e) { worker.terminate(); reject(String(e.message)); };
    worker.postMessage({work: work, difficulty: difficulty});
  });
};
</script>"""


def fake_token(difficulty: int) -> str:
    """A token shaped like proofs.mint_work's (same length, so the same hashing work)."""
    mac = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
    return f"{difficulty}.{int(time.time()) + 300}.{secrets.token_urlsafe(9)}.{mac}"


# -- 1. the buyer's browser ------------------------------------------------------------------


def browser_solves(difficulties: list[int], reps: dict[int, int]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from ticketqueue.core import solves

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = PAGE if self.path == "/" else (STATIC / "work.js").read_bytes()
            kind = "text/html" if self.path == "/" else "text/javascript"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    found: dict[str, Any] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            version = browser.version
            for difficulty in difficulties:
                times, tries = [], []
                for _ in range(reps[difficulty]):
                    token = fake_token(difficulty)
                    answer = page.evaluate("([w, d]) => solveOnce(w, d)", [token, difficulty])
                    assert solves(token, answer["nonce"], difficulty), "the worker is wrong"
                    times.append(answer["ms"])
                    tries.append(int(answer["nonce"]) + 1)
                found[str(difficulty)] = {
                    "solves": len(times),
                    "mean_ms": statistics.fmean(times),
                    "median_ms": statistics.median(times),
                    "p90_ms": _p90(times),
                    "max_ms": max(times),
                    "tries_per_ms": sum(tries) / max(1, sum(times)),
                }
            browser.close()
    finally:
        server.shutdown()
    return {"chromium": version, "by_difficulty": found}


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


# -- 2. the server ---------------------------------------------------------------------------


def verify_cost(loops: int) -> dict[str, float]:
    from ticketqueue import proofs
    from ticketqueue.core import solve, solves

    token = proofs.mint_work("1", "anon:" + "a" * 32, 16, time.time() + 300)
    nonce = solve(token, 16)
    body, mac = token.rsplit(".", 1)
    mac_us = (
        min(
            timeit.repeat(
                lambda: proofs._mac("1", "anon:" + "a" * 32, body), number=loops, repeat=5
            )
        )
        / loops
        * 1e6
    )
    hash_us = (
        min(timeit.repeat(lambda: solves(token, nonce, 16), number=loops, repeat=5)) / loops * 1e6
    )
    return {"mac_us": mac_us, "hash_us": hash_us, "verify_us": mac_us + hash_us}


def join_costs(rounds: int, joins: int) -> dict[str, Any]:
    """A new visitor's join, in this process, one at a time: none / limits / work (d=1)."""
    from django.conf import settings
    from django.test.utils import override_settings

    from ticketqueue import invites, limits, proofs, services
    from ticketqueue.core import solve
    from ticketqueue.models import Queue
    from ticketqueue.proofs import JoinProof
    from ticketqueue.store import get_store

    base_settings = dict(settings.TICKETQUEUE)
    queues = {}
    knobs: dict[str, dict[str, Any]] = {
        "none": {},
        "limits": {},
        "work": {"work_difficulty": 1},
        "invite": {"who_may_join": "invited"},
        "device": {"device_policy": "one"},
    }
    for name, fields in knobs.items():
        slug = f"proofs-bench-{name}"
        Queue.objects.filter(slug=slug).delete()
        queue = Queue.objects.create(slug=slug, name=slug, mode="always", **fields)
        services.configure(queue)
        queues[name] = queue
    invite = invites.make_invite(queues["invite"], uses=10**9)

    def one(name: str, queue: Any) -> None:
        identity = f"anon:{uuid.uuid4().hex}"
        if name == "limits":
            limits.check(queue.store_id, [("join_ip", "10.0.0.1"), ("join_identity", identity)])
        proof = None
        if name == "work":
            challenge = proofs.challenge(queue, identity, time.time())
            proof = JoinProof(work=challenge["work"], nonce=solve(challenge["work"], 1))
        elif name == "invite":
            proof = JoinProof(invite=invite)
        device = uuid.uuid4().hex if name == "device" else None
        services.join(queue, identity, proof=proof, address="10.0.0.1", device=device)

    samples: dict[str, list[float]] = {name: [] for name in queues}
    rates = {
        **base_settings,
        "THROTTLE_RATES": {"join_ip": "1000000/min", "join_identity": "20/min"},
    }
    try:
        with override_settings(TICKETQUEUE=rates):
            for r in range(rounds):
                order = list(queues) if r % 2 == 0 else list(reversed(list(queues)))
                for name in order:
                    queue = queues[name]
                    started = time.perf_counter()
                    for _ in range(joins):
                        one(name, queue)
                    samples[name].append((time.perf_counter() - started) / joins * 1e6)
    finally:
        for queue in queues.values():
            get_store().delete(queue.store_id)
            queue.delete()
    median = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "us_per_join": median,
        "ratio": {name: median[name] / median["none"] for name in median},
        "rounds": rounds,
        "joins_per_round": joins,
    }


# -- 3. the bot ------------------------------------------------------------------------------


def bot_rates() -> dict[str, float]:
    from ticketqueue.core import solves

    token = fake_token(32)
    started, n = time.process_time(), 0
    while time.process_time() - started < 1.0:
        for i in range(n, n + 10_000):
            solves(token, str(i), 32)
        n += 10_000
    python = n / (time.process_time() - started)
    rates = {"python_hashlib_per_s": python}
    openssl = shutil.which("openssl")
    if openssl:
        out = subprocess.run(
            [openssl, "speed", "-seconds", "2", "-bytes", "64", "-evp", "sha256"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        line = next((x for x in out.splitlines() if x.lower().startswith("sha256")), "")
        kbytes = re.findall(r"([\d.]+)k", line)
        if kbytes:
            rates["openssl_per_s"] = float(kbytes[-1]) * 1000 / 64
    return rates


# -- the report ------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    browser = report["browser"]["by_difficulty"]
    bots = report["bot"]
    fastest = bots.get("openssl_per_s", bots["python_hashlib_per_s"])
    lines = [
        HEADING,
        "",
        f"`.venv/bin/python bench/proofs_bench.py` on {report['machine']}, {report['date']}: "
        f"headless Chromium {report['browser']['chromium']} running the widget's worker "
        "(`work.js`), one solve at a time; the server in this process on PostgreSQL + "
        "RedisStore.",
        "",
        "**The buyer's wait at each difficulty.** A solve takes 2^d tries on average, and the "
        "number of tries is luck (geometric): the median is about 0.7x the mean, one buyer in "
        "ten waits over 2.3x it. Plan with the expected column, from the worker's steady rate:",
        "",
        "| difficulty | solves | mean | median | p90 | max | tries/ms | expected (2^d / rate) "
        "| places per bot CPU-second |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    # The browser's steady hash rate: the hardest difficulty's (the easy ones include warm-up).
    rate = list(browser.values())[-1]["tries_per_ms"]
    for d, row in browser.items():
        places = fastest / 2 ** int(d)
        lines.append(
            f"| {d} | {row['solves']} | {row['mean_ms']:.0f} ms | {row['median_ms']:.0f} ms | "
            f"{row['p90_ms']:.0f} ms | {row['max_ms']:.0f} ms | {row['tries_per_ms']:.0f} | "
            f"{2 ** int(d) / rate:.0f} ms | {places:,.1f} |"
        )
    joins = report["joins"]
    cost = report["verify"]
    lines += [
        "",
        "The last column is a bot on one core of this machine with OpenSSL's SHA-256 "
        f"({fastest / 1e6:.1f} M tries/s, {fastest / 1000 / rate:.1f}x the browser's worker; "
        f"Python's hashlib: {bots['python_hashlib_per_s'] / 1e6:.1f} M/s): what proof of work "
        "costs an attacker. A GPU does far more; the puzzle makes places cost CPU, it does "
        "not stop a rich attacker (the limits and the CAPTCHA are the other layers).",
        "",
        f"**The server's check**: {cost['verify_us']:.1f} us of CPU per solved token (HMAC "
        f"{cost['mac_us']:.1f} us + SHA-256 {cost['hash_us']:.1f} us), then one store call "
        "that spends it. A new visitor's join, one at a time in this process "
        f"({joins['rounds']} alternating rounds of {joins['joins_per_round']}), median us:",
        "",
        "| join | us per join | vs no check |",
        "|---|---:|---:|",
    ]
    labels = {
        "none": "no check (baseline)",
        "limits": "join limits (per address + per identity)",
        "work": "proof of work (server side)",
        "invite": "an invite (a queue of invited people)",
        "device": "one device per person",
    }
    for name, label in labels.items():
        lines.append(
            f"| {label} | {joins['us_per_join'][name]:.0f} | {joins['ratio'][name]:.2f}x |"
        )
    lines += [
        "",
        "Each check is one or two more store round trips on the join: the limits' script; "
        "for work and invites, a read of the identity's place (someone in line keeps it "
        "without a check) and the token's counted use; for one device, the binding. The "
        "CAPTCHA adds the provider's siteverify call, which only the provider's latency sets "
        "(not measured: no network here). None of it is paid by a buyer already in line (a "
        "reconnect or a second tab), and a queue that asks for none pays nothing.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run for CI")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    ensure_database()
    setup_django()
    if args.quick:
        difficulties = [8, 12]
        reps = dict.fromkeys(difficulties, 3)
        rounds, joins, loops = 2, 50, 2_000
    else:
        difficulties = [12, 14, 16, 18, 20, 22]
        reps = {12: 40, 14: 40, 16: 40, 18: 30, 20: 20, 22: 10}
        rounds, joins, loops = 6, 500, 20_000
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "browser": browser_solves(difficulties, reps),
        "verify": verify_cost(loops),
        "joins": join_costs(rounds, joins),
        "bot": bot_rates(),
    }
    publish("proofs", HEADING, report, markdown(report), quick=args.quick, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
