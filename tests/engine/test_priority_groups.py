"""Priority groups through the services, on the real store and database: a presale group
joins with its invites (in a queue open to anyone) or by the site's resolver, is admitted
before the public line, first come first served within each group, and the admission log
proves both."""

import pytest

from ticketqueue import invites, services
from ticketqueue.core import InviteInvalid, Throttled, priority_of
from ticketqueue.models import Admission, Entry, PriorityGroup, Queue
from ticketqueue.proofs import JoinProof

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_800_000_000.0


@pytest.fixture
def queue(live_store):
    queue = Queue.objects.create(slug="gig", name="Gig", mode="always", capacity=100)
    services.configure(queue, T0)
    return queue


def members(queue, identity):
    """A site's PRIORITY_RESOLVER: its members are in the 'members' group."""
    return "members" if identity.startswith("user:") else None


def test_a_presale_group_goes_first_and_the_log_proves_fifo_within_each(queue, settings):
    presale = PriorityGroup.objects.create(queue=queue, name="presale", priority=2)
    PriorityGroup.objects.create(queue=queue, name="members", priority=1)
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "PRIORITY_RESOLVER": "tests.engine.test_priority_groups.members",
    }
    code = invites.make_invite(queue, uses=3, group=presale, now=T0)
    joined = []
    for i in range(12):
        who = f"user:{i}" if i % 4 == 1 else f"anon:{i:032d}"
        proof = JoinProof(invite=code) if i % 4 == 3 else None
        status = services.join(queue, who, T0 + i, proof=proof)
        joined.append((who, status.seq))
    # The fourth invitee finds the code used up.
    with pytest.raises(InviteInvalid):
        services.join(queue, "anon:" + "f" * 32, T0 + 20, proof=JoinProof(invite=code))
    services.tick(queue, T0 + 30)
    orders = dict(Entry.objects.filter(queue=queue).values_list("seq", "order"))
    seqs = Admission.objects.filter(queue=queue).order_by("number").values_list("seq", flat=True)
    log = [(seq, orders[seq]) for seq in seqs]
    groups = [priority_of(order) for _, order in log]
    assert groups == [2] * 3 + [1] * 3 + [0] * 6  # presale, then members, then the public
    for group in (0, 1, 2):
        seqs = [seq for (seq, _), g in zip(log, groups, strict=True) if g == group]
        assert seqs == sorted(seqs)  # first come, first served within the group


def test_an_invite_to_a_group_of_another_queue_or_a_deleted_group(queue, live_store):
    other = Queue.objects.create(slug="other", name="Other", mode="always")
    services.configure(other, T0)
    group = PriorityGroup.objects.create(queue=other, name="presale", priority=1)
    with pytest.raises(ValueError):
        invites.make_invite(queue, group=group)
    mine = PriorityGroup.objects.create(queue=queue, name="presale", priority=1)
    code = invites.make_invite(queue, group=mine, now=T0)
    mine.delete()
    # The group is gone: the invite still lets its holder in, at the back of the public line.
    services.join(queue, "user:1", T0)
    status = services.join(queue, "user:2", T0, proof=JoinProof(invite=code))
    assert status.position == 2


def test_a_rest_joins_limits_neither_spend_an_invite_nor_lose_its_group(queue, settings):
    """The limits a REST join counts (``hits``): with an invite they are counted before it is
    spent, and the place is still in the invite's group."""
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "THROTTLE_RATES": {"join_ip": "2/min"}}
    presale = PriorityGroup.objects.create(queue=queue, name="presale", priority=1)
    code = invites.make_invite(queue, group=presale, now=T0)  # one use
    here, there = [("join_ip", "192.0.2.1")], [("join_ip", "192.0.2.2")]
    assert services.join(queue, "anon:" + "a" * 32, T0, hits=here).position == 1
    assert services.join(queue, "anon:" + "b" * 32, T0, hits=here).position == 2
    with pytest.raises(Throttled):  # the address is over its limit: nothing is spent
        services.join(queue, "user:1", T0, proof=JoinProof(invite=code), hits=here)
    status = services.join(queue, "user:1", T0, proof=JoinProof(invite=code), hits=there)
    assert status.position == 1  # the group's band, ahead of the public
    with pytest.raises(InviteInvalid):  # spent now
        services.join(queue, "user:2", T0, proof=JoinProof(invite=code), hits=there)
    assert Entry.objects.filter(queue=queue).count() == 3
