"""The event stream (server-sent events) on a real server, both ways of serving the sockets:
the socket's messages from the same hub, the socket's identity and limits, refusals as HTTP
answers, presence while it is open, heartbeats said for the client."""

import http.client
import json
import time
from urllib.parse import urlparse

import pytest

from ticketqueue import services
from ticketqueue.models import Queue

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 15


@pytest.fixture
def server_settings():
    """The server of these tests: two streams a minute per identity, a heartbeat a second."""
    return {"THROTTLE_RATES": {"connect_identity": "2/min"}, "HEARTBEAT_INTERVAL": 1}


class Stream:
    """One ``GET .../stream/`` read event by event (http.client undoes the chunking)."""

    def __init__(self, base, slug, visitor=None, **headers):
        url = urlparse(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT)
        if visitor:
            headers["Cookie"] = f"tq_visitor={visitor}"
        self.conn.request("GET", f"/queue/api/queues/{slug}/stream/", headers=headers)
        self.response = self.conn.getresponse()
        self.comments = 0

    def event(self):
        """The next event: (name, data as JSON); comment lines are counted, not returned."""
        name, data = "message", []
        while True:
            line = self.response.readline().decode()
            if not line:
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif line == "" and data:
                return name, json.loads("\n".join(data))

    def wait_for_comments(self, count):
        """Read on until ``count`` comment lines came; the data lines meanwhile, returned."""
        seen = []
        deadline = time.monotonic() + TIMEOUT
        while self.comments < count and time.monotonic() < deadline:
            line = self.response.readline().decode()
            if not line:
                raise EOFError("the stream ended")
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("data: "):
                seen.append(json.loads(line[len("data: ") :]))
        return seen

    def until(self, test):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            name, message = self.event()
            if test(name, message):
                return name, message
        raise AssertionError("no such event")

    def close(self):
        self.conn.close()


@pytest.fixture
def open_stream(asgi_server):
    """Opens streams on the server, and closes each after the test."""
    opened = []

    def open_one(slug, visitor=None, **headers):
        stream = Stream(asgi_server, slug, visitor, **headers)
        opened.append(stream)
        return stream

    yield open_one
    for stream in opened:
        stream.response.close()
        stream.close()


def rest(base, method, path, visitor=None):
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT)
    headers = {"Cookie": f"tq_visitor={visitor}"} if visitor else {}
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    signed = response.getheader("X-Queue-Visitor") or visitor
    conn.close()
    return response.status, body, signed


def make_line():
    queue = Queue.objects.create(slug="club", name="Club", mode="always", capacity=1)
    services.configure(queue)
    services.join(queue, "user:1")
    services.tick(queue)  # user:1 holds the one pass: everyone after waits
    return queue


def test_the_stream_carries_the_sockets_messages_from_the_same_hub(asgi_server, open_stream):
    queue = make_line()
    status, body, visitor = rest(asgi_server, "POST", "/queue/api/queues/club/join/")
    assert (status, body["state"], body["position"]) == (200, "waiting", 1)

    stream = open_stream("club", visitor)
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    _name, first = stream.until(lambda n, m: m.get("type") == "queue_update")
    assert (first["state"], first["position"]) == ("waiting", 1)
    # Present while the stream is open: the real path marks it, nobody else does.
    assert services.connected(queue, [body_identity(queue, body["seq"])])

    entry = queue.entries.get(identity="user:1")
    services.release_entry(queue, entry.seq)
    services.tick(queue)
    _name, granted = stream.until(lambda n, m: m.get("type") == "granted")
    assert granted["seq"] == body["seq"] and granted["pass"]


def test_a_stream_hears_its_milestones_and_no_notifier_does(asgi_server, open_stream, settings):
    from ticketqueue import ticker
    from ticketqueue.notifications import LocmemNotifier

    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.notifications.LocmemNotifier"],
    }
    LocmemNotifier.outbox.clear()
    queue = make_line()
    queue.notify_within = 5
    queue.save()
    status, body, visitor = rest(asgi_server, "POST", "/queue/api/queues/club/join/")
    stream = open_stream("club", visitor)
    stream.until(lambda n, m: m.get("type") == "queue_update")
    services.join(queue, "user:away")  # 2nd in line, with no stream or socket
    ticker.run_tick(queues=[queue], batches=1, sleep=lambda s: None)
    _name, news = stream.until(lambda n, m: m.get("type") == "milestone")
    assert news == {"type": "milestone", "milestone": "near", "within": 5}
    assert [(r.identity, r.milestone) for r in LocmemNotifier.outbox] == [("user:away", "near")]


def body_identity(queue, seq):
    return queue.entries.get(seq=seq).identity


def test_a_closed_queue_ends_the_stream_with_a_close_event(asgi_server, open_stream):
    queue = make_line()
    _status, _body, visitor = rest(asgi_server, "POST", "/queue/api/queues/club/join/")
    stream = open_stream("club", visitor)
    stream.until(lambda n, m: m.get("type") == "queue_update")
    services.close(queue)
    stream.until(lambda n, m: m.get("type") == "closed")
    name, data = stream.until(lambda n, m: n == "close")
    assert data == {"code": 4410}
    with pytest.raises(EOFError):
        stream.event()


def test_refusals_are_http_answers_an_event_source_does_not_retry(asgi_server, open_stream):
    make_line()
    nobody = open_stream("club")
    assert nobody.response.status == 401
    assert json.loads(nobody.response.read())["code"] == "identity_required"
    _status, _body, visitor = rest(asgi_server, "POST", "/queue/api/queues/club/join/")
    missing = open_stream("no-such-queue", visitor)
    assert missing.response.status == 404
    assert json.loads(missing.response.read())["code"] == "queue_not_found"
    foreign = open_stream("club", visitor, Origin="https://elsewhere.example")
    assert foreign.response.status == 403
    # An app without cookies names its visitor as over REST.
    app = open_stream("club", **{"X-Queue-Visitor": visitor})
    assert app.response.status == 200
    assert app.until(lambda n, m: m.get("type") == "queue_update")[1]["position"] == 1


def test_the_stream_keeps_the_socket_limits_and_says_it_is_still_here(asgi_server, open_stream):
    make_line()
    _status, _body, visitor = rest(asgi_server, "POST", "/queue/api/queues/club/join/")
    first = open_stream("club", visitor)
    first.until(lambda n, m: m.get("type") == "queue_update")
    second = open_stream("club", visitor)
    assert second.response.status == 200
    second.response.close()
    third = open_stream("club", visitor)
    assert third.response.status == 429
    assert json.loads(third.response.read())["code"] == "throttled"
    assert int(third.response.getheader("Retry-After")) >= 1
    # Heartbeats (every HEARTBEAT_INTERVAL: 1 s here) are said for the client, no error.
    meanwhile = first.wait_for_comments(2)
    assert first.comments >= 2
    assert all(m.get("type") != "error" for m in meanwhile), meanwhile


def test_delete_of_the_stream_is_not_a_leave(asgi_server):
    make_line()
    url = urlparse(asgi_server)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT)
    conn.request("POST", "/queue/api/queues/club/stream/")
    response = conn.getresponse()
    assert response.status == 405 and json.loads(response.read())["code"] == "method_not_allowed"
    conn.close()
