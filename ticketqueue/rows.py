"""The system of record's writes: a new entry's row, committed before its join is answered
(grouped with other joins' under a threaded server), and the store's changes copied into the
rows with the admission log. The services decide when; this module knows the tables, and the
PostgreSQL statements that keep a 1,000-admission tick cheap (other databases use the ORM).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Case, Q, Value, When
from django.db.models.constants import OnConflict

from .core import EntryState, GroupCommit, moved_from
from .models import Admission as AdmissionRow
from .models import Entry, Queue
from .store import Change, Placement

__all__ = [
    "as_datetime",
    "create_entries",
    "create_entry",
    "grouped_inserts",
    "insert_entries",
    "write",
]


def as_datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def create_entry(queue: Queue, placement: Placement, now: float) -> None:
    """Commit a new entry's row (and its admission's, when it was admitted at once) before
    the join is answered: in the caller's transaction if there is one, else at once, maybe in
    one statement with other joins' (``grouped_inserts``)."""
    values = _entry_values(queue, placement, now)
    if placement.state is not EntryState.ADMITTED:
        if connection.in_atomic_block or not connection.get_autocommit():
            _raise_clash(insert_entries([values]))  # the caller's transaction commits it, or not
        else:
            grouped_inserts.submit(values)  # committed, maybe in one statement with other joins'
        return
    _create_admitted(queue, placement, values, now)


def create_entries(
    queue: Queue, placements: Sequence[Placement], now: float
) -> dict[int, Exception]:
    """``create_entry`` for many new entries at once (a socket process's joins of one moment):
    the waiting ones in one INSERT (in autocommit, its own commit), each one admitted at once
    with its admission in a transaction of its own. Returns, by position in ``placements``,
    the entries whose row was not written and why; the others are committed."""
    failed: dict[int, Exception] = {}
    waiting = [i for i, p in enumerate(placements) if p.state is not EntryState.ADMITTED]
    if waiting:
        try:
            clashes = insert_entries([_entry_values(queue, placements[i], now) for i in waiting])
        except Exception as exc:  # noqa: BLE001 - each join hears it as its own
            failed.update(dict.fromkeys(waiting, exc))
        else:
            failed.update({waiting[k]: error for k, error in clashes.items()})
    for i, placement in enumerate(placements):
        if placement.state is EntryState.ADMITTED:
            try:
                _create_admitted(queue, placement, _entry_values(queue, placement, now), now)
            except Exception as exc:  # noqa: BLE001 - that join's alone
                failed[i] = exc
    return failed


def _entry_values(queue: Queue, placement: Placement, now: float) -> dict[str, Any]:
    """A new entry's row: field name -> database value."""
    moment = connection.ops.adapt_datetimefield_value  # what the ORM would send for a datetime
    return {
        "queue": queue.pk,
        "identity": placement.identity,
        "seq": placement.seq,
        "order": placement.order or float(placement.seq),
        "state": placement.state.value,
        "joined_at": moment(as_datetime(now)),
        "admitted_at": moment(as_datetime(placement.admitted_at)),
        "pass_expires_at": moment(as_datetime(placement.expires_at)),
        "admission_number": placement.admission_number,
    }


def _create_admitted(
    queue: Queue, placement: Placement, values: dict[str, Any], now: float
) -> None:
    with transaction.atomic():  # the entry and its admission, or neither
        _raise_clash(insert_entries([values]))
        _log_admissions(
            queue,
            [
                Change(
                    placement.seq,
                    placement.identity,
                    placement.state,
                    placement.order,
                    now,
                    placement.admitted_at,
                    placement.expires_at,
                    placement.admission_number,
                )
            ],
        )


def _raise_clash(clashes: dict[int, IntegrityError]) -> None:
    if clashes:
        raise next(iter(clashes.values()))


def insert_entries(rows: Sequence[dict[str, Any]]) -> dict[int, IntegrityError]:
    """INSERT entry rows (field name -> database value, the same fields in each), skipping any
    that a tick's journal sync wrote first.

    Returns, by position in ``rows``, those skipped because a different row holds their seq
    or their identity's live place: the store handed out again what it had lost (a failover),
    and ``services.repair`` loads it from the rows.

    Every new visitor's join pays for this, so it is one plain statement: in autocommit it is
    the whole commit (``bulk_create`` wraps even one row in BEGIN ... COMMIT, two more round
    trips), and its SQL is built once per database vendor and row count rather than compiled
    per call. It reports only how many rows it wrote; rows are read back only when that is
    fewer than all of them, which a join sees after a failover or a journal sync that came
    first, not otherwise.
    """
    # In seq order, as a journal sync inserts them: two transactions that insert the same
    # keys in different orders can each wait for the other's uncommitted row (a deadlock).
    ordered = sorted(rows, key=lambda row: row["seq"])
    names = tuple(ordered[0])
    if connection.vendor == "postgresql" and len(ordered) >= UNNEST_FROM:
        sql, params = _entry_unnest(names), [[row[name] for row in ordered] for name in names]
    else:
        sql = _entry_insert(connection.vendor, names, len(ordered))
        params = [value for row in ordered for value in row.values()]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount == len(rows):
            return {}
    # Some were skipped: each written already (by a journal sync, the same row), or clashing
    # with a different row.
    same = Q()
    for row in rows:
        same |= Q(queue_id=row["queue"], seq=row["seq"], identity=row["identity"])
    written = set(Entry.objects.filter(same).values_list("queue_id", "seq"))
    return {
        i: IntegrityError(f"entry {row['seq']} clashes with a row of another place")
        for i, row in enumerate(rows)
        if (row["queue"], row["seq"]) not in written
    }


@functools.cache
def _entry_insert(vendor: str, names: tuple[str, ...], rows: int) -> str:
    """The statement that inserts ``rows`` rows of the fields ``names`` on this vendor's
    database, skipping those that clash with a row there."""
    ops, meta = connection.ops, Entry._meta
    fields = [meta.get_field(name) for name in names]
    row = f"({', '.join(['%s'] * len(fields))})"
    sql = (
        f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {ops.quote_name(meta.db_table)} "
        f"({', '.join(ops.quote_name(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * rows)} "
        f"{ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)}"
    )
    return sql.rstrip()


#: From this many rows a PostgreSQL INSERT sends them as arrays (``_entry_unnest``): arrays
#: cost this process about twice the CPU of a VALUES list for one row, as much at 10 rows and
#: half at 100 (bench/insert_bench.py).
UNNEST_FROM = 10


@functools.cache
def _entry_unnest(names: tuple[str, ...]) -> str:
    """PostgreSQL's form of ``_entry_insert``: one array per field, so the statement and its
    parameters are the same for any number of rows. psycopg parses a statement for its
    placeholders afresh when it is long: with a VALUES list of 100 rows (900 placeholders)
    that was a tenth of a socket process's CPU in a burst of joins."""
    ops, meta = connection.ops, Entry._meta
    fields = [meta.get_field(name) for name in names]
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    return (
        f"INSERT INTO {ops.quote_name(meta.db_table)} "  # noqa: S608 - names from the model
        f"({', '.join(ops.quote_name(f.column) for f in fields)}) "
        f"SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
    )


#: Group commit for new visitors' rows. Each join must wait for its row's commit (an
#: acknowledged join is never lost), and under a threaded server the joins that wait at the
#: same moment in one process share one INSERT and one commit: the disk flush and most of
#: PostgreSQL's work are paid once per batch instead of once per visitor. A join alone (a
#: sync worker) writes alone, as before. 100 rows of 9 fields stay under SQLite's oldest
#: limit of 999 parameters per statement. (The lambda looks ``insert_entries`` up at each
#: write, so a test that replaces it reaches the grouped joins too.)
grouped_inserts: GroupCommit[dict[str, Any]] = GroupCommit(
    lambda rows: insert_entries(rows), limit=100
)


def write(queue: Queue, changes: Sequence[Change]) -> None:
    """Make the rows say what these store changes say, in one transaction: insert the rows
    that are missing, move the others forward (never back), log each admission once.
    Idempotent: a change written twice, or late, changes nothing more."""
    if not changes:
        return
    with transaction.atomic():
        _lock_rows_of(queue)
        existing = _existing(queue, [c.seq for c in changes])
        # A row of another identity under a change's seq: the store handed the seq out again
        # after losing the first (a failover); the row stands, services.repair reloads.
        changes = [c for c in changes if existing.get(c.seq, c.identity) == c.identity]
        # In seq order, as a group commit inserts them (see insert_entries).
        missing = sorted((c for c in changes if c.seq not in existing), key=lambda c: c.seq)
        Entry.objects.bulk_create(
            [
                Entry(
                    queue=queue,
                    identity=c.identity,
                    seq=c.seq,
                    order=c.order or float(c.seq),
                    state=c.state.value,
                    joined_at=as_datetime(
                        c.at if c.state is EntryState.WAITING else c.admitted_at or c.at
                    ),
                    admitted_at=as_datetime(c.admitted_at),
                    pass_expires_at=as_datetime(c.expires_at),
                    admission_number=c.admission_number,
                    ended_at=None if c.state.is_live else as_datetime(c.at),
                )
                for c in missing
            ],
            ignore_conflicts=True,
        )
        # One UPDATE per kind of change: a tick's admissions share their time and state.
        groups: dict[tuple[EntryState, float, float | None, float | None], list[Change]] = (
            defaultdict(list)
        )
        for c in changes:
            if c.seq in existing and c.state is not EntryState.WAITING:
                groups[(c.state, c.at, c.admitted_at, c.expires_at)].append(c)
        for (state, at, admitted_at, expires_at), group in groups.items():
            values: dict[str, Any] = {"state": state.value}
            if admitted_at is not None:
                values.update(
                    admitted_at=as_datetime(admitted_at), pass_expires_at=as_datetime(expires_at)
                )
            if not state.is_live:
                values["ended_at"] = as_datetime(at)
            predecessors = sorted(s.value for s in moved_from(state))  # rows never go back
            if connection.vendor == "postgresql":
                _pg_update(queue, group, values, predecessors, numbered=admitted_at is not None)
                continue
            if admitted_at is not None:
                values["admission_number"] = Case(
                    *[When(seq=c.seq, then=Value(c.admission_number)) for c in group],
                    output_field=BigIntegerField(),
                )
            Entry.objects.filter(
                queue=queue, seq__in=[c.seq for c in group], state__in=predecessors
            ).update(**values)
        _log_admissions(queue, [c for c in changes if c.admitted_at is not None])


#: First half of the PostgreSQL advisory lock key that serialises row syncs per queue.
_ADVISORY_NAMESPACE = 0x7471


def _lock_rows_of(queue: Queue) -> None:
    """One journal sync per queue at a time: concurrent tickers would otherwise lock the same
    rows in different orders and deadlock. Held to the end of the transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_NAMESPACE, queue.pk])


def _pg_bigints(values: Iterable[int | None]) -> str:
    """Integers as one PostgreSQL array literal ('{1,2,3}'), cast with ``%s::bigint[]``:
    psycopg quotes a Python list element by element, a string in one step. None is NULL."""
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


def _existing(queue: Queue, seqs: list[int]) -> dict[int, str]:
    """The seqs among these that have a row, and the row's identity."""
    if connection.vendor != "postgresql":
        return dict(Entry.objects.filter(queue=queue, seq__in=seqs).values_list("seq", "identity"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.seq, e.identity FROM {Entry._meta.db_table} AS e "  # noqa: S608
            "JOIN unnest(%s::bigint[], %s::bigint[]) AS v(queue_id, seq) "
            "ON e.queue_id = v.queue_id AND e.seq = v.seq",
            [_pg_bigints([queue.pk] * len(seqs)), _pg_bigints(seqs)],
        )
        return dict(cursor.fetchall())


def _pg_update(
    queue: Queue,
    group: Sequence[Change],
    values: dict[str, Any],
    predecessors: list[str],
    *,
    numbered: bool,
) -> None:
    """One UPDATE joined to arrays of (queue, seq, admission number), the number set when
    the changes are passes (``numbered``): a CASE with a branch per row made a 1,000-admission
    tick spend a second in PostgreSQL's planner.

    The queue id comes in as a column of the arrays and the state test cannot use an index
    (``state || ''``), on purpose: a sale's new queue is not in the table's statistics until
    the next ANALYZE, so ``queue_id = <new queue>`` (and its waiting rows) look like a row or
    two, and PostgreSQL then hashed every waiting row of the queue on every round (measured:
    18 ms a round at 60,000 waiting, 1.5 ms with current statistics). As written, the only
    ways in are the ``(queue_id, seq)`` index, once per row, or a scan of the whole table
    when the table is small enough for that to be cheaper; the queue's size does not count.
    """
    table = Entry._meta.db_table
    assignments = ", ".join(f"{column} = %s" for column in values)
    if numbered:
        assignments += ", admission_number = v.number"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS e SET {assignments} "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS v(queue_id, seq, number) "
            "WHERE e.queue_id = v.queue_id AND e.seq = v.seq AND (e.state || '') = ANY(%s)",
            [
                *values.values(),
                _pg_bigints([queue.pk] * len(group)),
                _pg_bigints(c.seq for c in group),
                _pg_bigints(c.admission_number for c in group),
                predecessors,
            ],
        )


def _log_admissions(queue: Queue, changes: Sequence[Change]) -> None:
    if changes and connection.vendor == "postgresql":
        # Arrays instead of one parameter per value, and the times as plain parameters (the
        # admissions of one call share them; quoting 2,000 datetimes in an array took longer
        # than the INSERT): one statement per distinct (admitted_at, expires_at), usually one.
        table = AdmissionRow._meta.db_table
        by_time: dict[tuple[float | None, float | None], list[Change]] = defaultdict(list)
        for c in changes:
            by_time[(c.admitted_at, c.expires_at)].append(c)
        with connection.cursor() as cursor:
            for (admitted_at, expires_at), group in by_time.items():
                cursor.execute(
                    f"INSERT INTO {table} "  # noqa: S608
                    "(queue_id, seq, number, identity, admitted_at, expires_at) "
                    "SELECT %s, v.seq, v.number, v.identity, %s, %s "
                    "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) "
                    "AS v(seq, number, identity) "
                    "ON CONFLICT DO NOTHING",  # exactly one row per admission, however often synced
                    [
                        queue.pk,
                        as_datetime(admitted_at),
                        as_datetime(expires_at),
                        _pg_bigints(c.seq for c in group),
                        _pg_bigints(c.admission_number or 0 for c in group),
                        [c.identity for c in group],
                    ],
                )
        return
    if changes:
        AdmissionRow.objects.bulk_create(
            [
                AdmissionRow(
                    queue=queue,
                    seq=c.seq,
                    number=c.admission_number or 0,
                    identity=c.identity,
                    admitted_at=as_datetime(c.admitted_at),
                    expires_at=as_datetime(c.expires_at),
                )
                for c in changes
            ],
            ignore_conflicts=True,  # exactly one row per admission, however often synced
        )
