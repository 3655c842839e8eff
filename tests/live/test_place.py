"""A version 2 client's own place (``ticketqueue.place``) against a model of the line: with
every line frame it is exactly the true place; frames it never got (a slow reader's, a jump
in the numbers) only ever make it look further back; an exact read older than the line
frames already seen catches up from the remembered departures."""

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ticketqueue.live.protocol import line_frame, update_frame_head, update_frame_tail
from ticketqueue.place import Place


class Line:
    """The server's side, as the store keeps it: orders waiting, the admitted total, the
    departures numbered in the order they left. Frames are made by the real encoders."""

    def __init__(self, size):
        self.waiting = list(range(1, size + 1))
        self.admitted_total = 0
        self.departed_total = 0
        self.departed = []  # since the last line frame

    def exact(self, order):
        position = self.waiting.index(order) + 1
        text = update_frame_head(
            queue_state="open", waiting=len(self.waiting), active=0
        ) + update_frame_tail(
            state="waiting",
            position=position,
            eta_seconds=None,
            seen=(float(order), self.admitted_total, self.departed_total),
        )
        return json.loads(text)

    def admit(self, count):
        self.waiting = self.waiting[count:]
        self.admitted_total += count

    def depart(self, order):
        self.waiting.remove(order)
        self.departed_total += 1
        self.departed.append(float(order))

    def line(self, rate=None, stock=None):
        frame = line_frame(
            queue_state="open",
            waiting=len(self.waiting),
            active=0,
            admitted_total=self.admitted_total,
            departed=self.departed,
            departed_total=self.departed_total,
            rate=rate,
            stock=stock,
        )
        self.departed = []
        return json.loads(frame)


def a_sale(seed, size=60, rounds=12):
    """One person in a line of ``size``; rounds of admissions and departures around them.
    Yields ("exact" | "line", frame, true place) in the order the server would send them."""
    rnd = random.Random(seed)
    line = Line(size)
    me = rnd.randint(size // 2, size)
    yield "exact", line.exact(me), line.waiting.index(me) + 1
    for _ in range(rounds):
        ahead = line.waiting.index(me)
        line.admit(rnd.randint(0, min(2, ahead)))
        for _ in range(rnd.randint(0, 3)):
            others = [o for o in line.waiting if o != me]
            line.depart(rnd.choice(others))
        stock = rnd.choice([None, size // 3, size])
        yield "line", line.line(rate=0.5, stock=stock), line.waiting.index(me) + 1
        if rnd.random() < 0.2:
            yield "exact", line.exact(me), line.waiting.index(me) + 1


@given(st.integers(0, 10**6))
@settings(max_examples=200, deadline=None)
def test_every_line_frame_keeps_the_place_exact(seed):
    place = Place()
    for _, frame, truth in a_sale(seed):
        place.apply(frame)
        assert place.position == truth
        assert place.eta_seconds == (None if frame["type"] == "queue_update" else truth * 2)


@given(st.integers(0, 10**6), st.integers(0, 10**6))
@settings(max_examples=200, deadline=None)
def test_frames_never_heard_only_make_the_place_look_later(seed, drops):
    dropped = random.Random(drops)
    place = Place()
    for kind, frame, truth in a_sale(seed):
        if kind == "line" and dropped.random() < 0.4:
            continue  # a slow reader's frame replaced before it was sent
        place.apply(frame)
        assert place.position >= truth
        if kind == "exact":
            assert place.position == truth  # a read puts it right again


@given(st.integers(0, 10**6))
@settings(max_examples=100, deadline=None)
def test_an_exact_read_older_than_the_lines_catches_up(seed):
    frames = list(a_sale(seed))
    place = Place()
    late = frames[0][1]  # the first read, delivered after some line frames (a held update)
    for _, frame, _ in frames[1:4]:
        place.apply(frame)
    place.apply(late)
    assert place.position == frames[3][2]


def test_the_draw_forgets_the_place_until_its_read():
    place = Place()
    place.apply(
        {
            "type": "queue_update",
            "queue_state": "scheduled",
            "waiting": 3,
            "active": 0,
            "state": "waiting",
            "position": 3,
            "eta_seconds": None,
            "order": 3.0,
            "admitted_total": 0,
            "departed_total": 0,
        }
    )
    opened = Line(3)
    opened.admit(1)
    frame = opened.line()
    frame["queue_state"] = "open"
    place.apply(frame)
    assert place.state == "waiting" and place.position is None  # not moved from an old place


def test_the_turn_comes_only_by_granted_and_the_end_by_revoked_or_left():
    line = Line(3)
    place = Place()
    place.apply(line.exact(3))
    line.admit(2)
    place.apply(line.line())
    assert place.position == 1 and place.state == "waiting"
    line.admit(1)  # its own admission: the place never goes below 1
    place.apply(line.line())
    assert place.position == 1 and place.state == "waiting"
    place.apply({"type": "granted", "pass": "x", "expires_at": 1.0, "seq": 3})
    assert place.state == "admitted" and place.position is None
    place.apply({"type": "revoked", "reason": "expired"})
    assert place.state is None


def test_the_stock_warning_follows_the_line():
    line = Line(10)
    place = Place()
    place.apply(line.exact(8))
    place.apply(line.line(stock=9))
    assert not place.sold_out_likely
    place.apply(line.line(stock=7))
    assert place.sold_out_likely
