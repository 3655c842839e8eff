"""Live updates for the waiting room's sockets: the wire protocol, the per-process fan-out
(``hub``), the broadcasts the services' signals become (``publisher``) and how they travel.
"""

from .hub import Hub, Room, Seat, get_hub, shutdown

__all__ = ["Hub", "Room", "Seat", "get_hub", "shutdown"]
