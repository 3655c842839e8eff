from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TicketQueueConfig(AppConfig):
    name = "ticketqueue"
    verbose_name = _("Waiting rooms")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            apikeys,  # noqa: F401 - a key left naming no queue is revoked
            checks,  # noqa: F401 - registers the system checks
        )
        from .live import publisher  # noqa: F401 - connects the live broadcasts
        from .revocation import connect_signals

        connect_signals()  # the purchase gate hears of released and revoked passes
        from . import (
            metrics,
            tick_loop,
            ticker,  # noqa: F401 - a deleted queue leaves the store
        )

        metrics.connect_signals()  # the Prometheus counters hear of joins, expiries, ...
        tick_loop.start_embedded_if_serving()  # EMBEDDED_TICKER: only in a serving process
