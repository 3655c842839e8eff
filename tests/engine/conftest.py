import pytest

from ticketqueue.store import get_store, reset_store

from ..conftest import drop_store


@pytest.fixture
def live_store(settings):
    """The configured store (real Redis unless TICKETQUEUE_TEST_STORE=memory), emptied after."""
    reset_store()
    store = get_store()
    yield store
    drop_store(store)
    reset_store()
