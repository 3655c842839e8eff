"""Deleting a queue (admin, queryset, ``queue.delete()``) takes its hot state out of the store
once the deletion is committed: no ``<prefix>:{<id>}:*`` key is left on Redis."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from ticketqueue import notifications, presence, services, ticker
from ticketqueue.models import Entry, Queue

pytestmark = pytest.mark.django_db


def keys_of(store, queue_id):
    # SCAN may return a key more than once (when Redis resizes its table meanwhile).
    keys = store.client.scan_iter(match=f"{store.prefix}:{{{queue_id}}}:*", count=1000)
    return sorted(set(keys))


@pytest.fixture
def busy_queue(make_queue, live_store, fake_pacing, settings):
    """A queue with everything a sale leaves in Redis: a line, passes, a journal, a lease's
    fence, presence, counters and notification claims."""
    if not hasattr(live_store, "client"):
        pytest.skip("keys are a RedisStore matter")
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.notifications.LocmemNotifier"],
    }

    def make(slug):
        queue = make_queue(slug=slug, mode="always", capacity=2)
        for i in range(5):
            services.join(queue, f"anon:{i}")
        presence.mark_connected(queue.store_id, "anon:0")
        ticker.run_tick(queues=[queue], batches=1, **fake_pacing)  # admits two, tells anon:1
        services.leave(queue, "anon:4")  # a departure not drained yet, a counter
        names = {k.split("}:", 1)[1] for k in keys_of(live_store, queue.store_id)}
        expected = {"meta", "line", "active", "tickfence", "presence", "counters"}
        assert expected <= names, names
        assert any(name.startswith("notified:") for name in names), names
        return queue

    return make


def test_queue_delete_removes_every_key_once_committed(
    busy_queue, live_store, django_capture_on_commit_callbacks
):
    queue, other = busy_queue("sale"), busy_queue("other")
    queue_id = queue.store_id
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        queue.delete()
        assert keys_of(live_store, queue_id)  # not committed yet: a rollback still needs them
    assert len(callbacks) == 1
    assert keys_of(live_store, queue_id) == []
    assert not live_store.is_loaded(queue_id)
    assert keys_of(live_store, other.store_id)  # the other queue keeps its own


def test_a_queryset_delete_removes_each_queue(
    busy_queue, live_store, django_capture_on_commit_callbacks
):
    queues = [busy_queue("one"), busy_queue("two")]
    ids = [q.store_id for q in queues]
    with django_capture_on_commit_callbacks(execute=True):
        Queue.objects.filter(pk__in=[q.pk for q in queues]).delete()
    assert [keys_of(live_store, i) for i in ids] == [[], []]


def test_a_rolled_back_delete_keeps_the_hot_state(
    busy_queue, live_store, django_capture_on_commit_callbacks
):
    queue = busy_queue("sale")
    before = keys_of(live_store, queue.store_id)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                Queue.objects.get(pk=queue.pk).delete()
                raise RuntimeError("the deleting request failed")
        except RuntimeError:
            pass
    assert callbacks == []
    assert Queue.objects.filter(pk=queue.pk).exists()
    assert keys_of(live_store, queue.store_id) == before
    assert services.status(queue, "anon:2").position == 1  # the line still works


def test_the_admin_deletes_a_queue_with_its_line_and_its_keys(
    busy_queue, live_store, client, django_capture_on_commit_callbacks
):
    queue = busy_queue("sale")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    url = f"/admin/ticketqueue/queue/{queue.pk}/delete/"
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    # A summary, not a list of every entry of a long line, and no permission missing.
    assert "Entries: 5" in text and "anon:3" not in text
    assert not page.context["perms_lacking"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Queue.objects.filter(pk=queue.pk).exists()
    assert not Entry.objects.filter(queue_id=queue.pk).exists()
    assert keys_of(live_store, queue.store_id) == []
    assert notifications.LocmemNotifier.outbox  # (the claims it took are gone with the rest)
