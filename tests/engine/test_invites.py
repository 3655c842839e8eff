"""Queues of invited people: signed invite tokens (one place or N), checked on every new place,
counted in the store; someone in line keeps the place without spending anything."""

import functools
import io
import time

import pytest
from django.core.management import call_command

from ticketqueue import invites, services
from ticketqueue.core import InviteInvalid, InviteRequired, ProofRequired, solve
from ticketqueue.models import Entry
from ticketqueue.proofs import JoinProof

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_800_000_000.0


@pytest.fixture
def make_queue(make_queue):
    return functools.partial(
        make_queue, slug="presale", name="The presale", mode="always", who_may_join="invited"
    )


def join(queue, identity, invite="", now=T0, **proof):
    return services.join(queue, identity, now, proof=JoinProof(invite=invite, **proof))


def test_an_invite_gives_its_places_and_no_more(make_queue):
    queue = make_queue()
    with pytest.raises(InviteRequired):
        services.join(queue, "user:1", T0)
    pair = invites.make_invite(queue, uses=2, now=T0)
    assert join(queue, "user:1", pair).position == 1
    assert join(queue, "user:2", pair).position == 2
    with pytest.raises(InviteInvalid):
        join(queue, "user:3", pair)
    # In line already: the used-up invite (or none) keeps the place.
    assert join(queue, "user:1", pair).position == 1
    assert services.join(queue, "user:2", T0).position == 2
    assert Entry.objects.count() == 2


def test_forged_expired_and_foreign_invites_are_refused(make_queue):
    queue = make_queue()
    other = make_queue(slug="other")
    good = invites.make_invite(queue, expires=T0 + 60, now=T0)
    for token in (
        invites.make_invite(other, now=T0),  # another queue's
        good[:-2] + ("AB" if good[-2:] != "AB" else "BA"),  # forged (never the mac itself)
        "5" + good[1:],  # more places than it was given
        "x" * 200,
        "1.2.3",
    ):
        with pytest.raises(InviteInvalid):
            join(queue, "user:1", token)
    with pytest.raises(InviteInvalid):
        join(queue, "user:1", good, now=T0 + 61)
    assert join(queue, "user:1", good).state == "waiting"


def test_a_refused_proof_does_not_spend_the_invite(make_queue):
    queue = make_queue(work_difficulty=4)
    single = invites.make_invite(queue, now=T0)
    with pytest.raises(ProofRequired) as refused:
        join(queue, "user:1", single)
    work = refused.value.challenge["work"]
    assert join(queue, "user:1", single, work=work, nonce=solve(work, 4)).state == "waiting"


def test_a_queue_open_to_anyone_ignores_an_invite_to_no_group_but_refuses_a_bad_one(
    make_queue,
):
    queue = make_queue(who_may_join="anyone")
    plain = invites.make_invite(queue, now=T0)
    assert join(queue, "user:1", plain).state == "waiting"
    assert join(queue, "user:2", plain).state == "waiting"  # not spent: it means nothing here
    with pytest.raises(InviteInvalid):  # the person learns the code did not work
        join(queue, "user:3", "not-even-a-token")


def test_the_command_prints_links_that_work(make_queue):
    queue = make_queue()
    out = io.StringIO()
    call_command(
        "ticketqueue_invites", "presale", count=3, uses=1, base="https://t.example", stdout=out
    )
    links = out.getvalue().split()
    assert len(links) == 3 and len(set(links)) == 3
    assert links[0].startswith("https://t.example/queue/presale/wait/?invite=")
    token = links[0].split("=", 1)[1]
    assert join(queue, "user:1", token, now=time.time()).state == "waiting"
