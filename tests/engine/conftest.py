import pytest
from django.db import DEFAULT_DB_ALIAS, connections

T0 = 1_800_000_000.0


@pytest.fixture
def make_queue(live_store):
    """Queue rows configured in the store at T0 (tests/engine's clock), 'sale' unless named."""
    from ticketqueue import services
    from ticketqueue.models import Queue

    def make(**fields):
        fields.setdefault("slug", "sale")
        fields.setdefault("name", "The sale")
        queue = Queue.objects.create(**fields)
        services.configure(queue, T0)
        return queue

    return make


def committed_entries(queue, *columns):
    """``queue``'s entry rows (those columns) as another connection sees them: what is
    committed, nothing still in flight."""
    from ticketqueue.models import Entry

    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(columns)} FROM {Entry._meta.db_table} "  # noqa: S608
                "WHERE queue_id = %s ORDER BY seq",
                [queue.pk],
            )
            return cursor.fetchall()
    finally:
        other.close()
