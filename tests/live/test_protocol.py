"""The wire protocol's pure parts: parsing client frames, the frames sent at scale, the bucket."""

import json

import pytest

from ticketqueue.core import InvalidInput
from ticketqueue.live.protocol import (
    FrameTooLarge,
    InvalidFrame,
    InvalidJSON,
    InvalidMessage,
    MessageBucket,
    UnknownType,
    parse_client_message,
    update_frame,
)


@pytest.mark.parametrize("kind", ["join", "leave", "heartbeat", "status"])
def test_client_messages_parse(kind):
    assert parse_client_message(json.dumps({"type": kind, "extra": 1}), None, 100)["type"] == kind


@pytest.mark.parametrize(
    ("text", "data", "error"),
    [
        (None, b"{}", InvalidFrame),
        ("{", None, InvalidJSON),
        ('"join"', None, InvalidMessage),
        ('{"type": null}', None, InvalidMessage),
        ('{"type": "grant_me"}', None, UnknownType),
        ('{"type": "join", "x": "' + "a" * 100 + '"}', None, FrameTooLarge),
        ('{"type":"join","x":"' + "€" * 30 + '"}', None, FrameTooLarge),  # 90 bytes of text
    ],
)
def test_bad_frames_raise_coded_errors(text, data, error):
    with pytest.raises(error) as caught:
        parse_client_message(text, data, 100)
    assert isinstance(caught.value, InvalidInput) and caught.value.code


def test_the_update_frame_is_json():
    frame = update_frame(
        queue_state="open", state="waiting", position=3, waiting=9, active=2, eta_seconds=None
    )
    assert json.loads(frame) == {
        "type": "queue_update",
        "queue_state": "open",
        "state": "waiting",
        "position": 3,
        "waiting": 9,
        "active": 2,
        "eta_seconds": None,
    }


def test_the_bucket_refills_at_its_rate(clock):
    bucket = MessageBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.should_warn() and not bucket.should_warn()
    clock.advance(0.5)
    assert bucket.take() and not bucket.take()
    clock.advance(10)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.should_warn()
