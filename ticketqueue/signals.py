"""Signals a site can listen to. Batch signals carry lists: a tick may admit thousands."""

from django.dispatch import Signal

#: sender=Queue, identity=str, device=str (its digest), previous=str: the place moved to
#: another device (one device per person); the live sockets on the others are told
device_moved = Signal()
#: sender=Queue, placement=store.Placement, counts=store.Counts (read with the placement),
#: announced=bool (the store already broadcast it to the live sockets)
entry_joined = Signal()
#: sender=Queue, admissions=list[store.Admission]
entries_admitted = Signal()
#: sender=Queue, changes=list[store.Change] (state EXPIRED)
passes_expired = Signal()
#: sender=Queue, change=store.Change (state COMPLETED)
pass_released = Signal()
#: sender=Queue, changes=list[store.Change] (state REVOKED; ABANDONED with reason "abandoned":
#: passes whose holders were away past the pass idle grace), reason=str
entries_revoked = Signal()
#: sender=Queue, changes=list[store.Change] (LEFT or ABANDONED)
entries_departed = Signal()
#: sender=Queue, previous=str, state=str
queue_state_changed = Signal()
#: sender=Queue, revoked=int (waiting entries told the queue closed)
queue_closed = Signal()
#: sender=Queue, result=services.TickResult; the live layer broadcasts from it
queue_ticked = Signal()
