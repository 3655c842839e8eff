"""CPU of this process per new entry's row, by how many rows one INSERT carries, in the two
forms ``ticketqueue.rows.insert_entries`` can send to PostgreSQL: a VALUES list (one
placeholder per field and row) and one array per field (``unnest``). What ``UNNEST_FROM``
rests on.

    .venv/bin/python bench/insert_bench.py [--rounds 15] [--quick]

Each round inserts fresh rows into the gate bench's database (bench/gate_bench.py makes it)
inside a transaction that is rolled back; the median of the rounds is printed (nothing is
written: docs/benchmarks.md quotes it in "The durable join burst").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gate_bench import ensure_database, setup_django  # noqa: E402

SIZES = (1, 10, 100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 3
    setup_django()
    ensure_database()
    from django.db import connection, transaction

    from ticketqueue import rows
    from ticketqueue.models import Queue

    queue, _ = Queue.objects.get_or_create(slug="insert-bench", defaults={"name": "bench"})
    moment = connection.ops.adapt_datetimefield_value

    def values(seq: int) -> dict[str, Any]:
        return {
            "queue": queue.pk,
            "identity": f"visitor:bench{seq}",
            "seq": seq,
            "order": float(seq),
            "state": "waiting",
            "joined_at": moment(rows.as_datetime(time.time())),
            "admitted_at": None,
            "pass_expires_at": None,
            "admission_number": None,
        }

    def us_per_row(size: int, unnest: bool) -> float:
        rows.UNNEST_FROM = 1 if unnest else 10**9
        spent = []
        for r in range(args.rounds):
            batch = [values(r * 1000 + i + 1) for i in range(size)]
            with transaction.atomic():
                started = time.process_time()
                rows.insert_entries(batch)
                spent.append(time.process_time() - started)
                transaction.set_rollback(True)
        return statistics.median(spent) / size * 1e6

    threshold = rows.UNNEST_FROM
    print("| rows per INSERT | VALUES list, us per row | arrays, us per row |")
    print("|---:|---:|---:|")
    try:
        for size in SIZES:
            print(f"| {size} | {us_per_row(size, False):.1f} | {us_per_row(size, True):.1f} |")
    finally:
        rows.UNNEST_FROM = threshold
        queue.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
