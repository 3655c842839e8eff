"""The REST API (DRF): queue info, join, status, leave, heartbeat, release, the JWKS and the
OpenAPI schema; and ``HasQueuePass``, the permission that guards a site's purchase views.
"""

from .permissions import HasQueuePass

__all__ = ["HasQueuePass"]
