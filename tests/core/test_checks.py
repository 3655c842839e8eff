"""System checks turn nonsense settings into errors with stable ids."""

from django.core.checks import run_checks

from ticketqueue.checks import Codes


def ids(settings, **ticketqueue):
    # The embedded store in DEBUG: the one combination no check complains about by design.
    settings.DEBUG = settings.DEBUG if "STORE" in ticketqueue else True
    settings.TICKETQUEUE = {
        "STORE": "ticketqueue.store.memory.MemoryStore",
        **ticketqueue,
    }
    return {m.id for m in run_checks() if m.id.startswith("ticketqueue.")}


def test_test_settings_are_clean(settings):
    assert ids(settings) == set()


def test_unknown_key(settings):
    assert ids(settings, PURCHASE_WINDOWS=60) == {Codes.UNKNOWN_KEY}


def test_bad_store(settings):
    assert ids(settings, STORE="no.such.Store") == {Codes.STORE}
    assert ids(settings, STORE="ticketqueue.models.Queue") == {Codes.STORE}


def test_non_positive_numbers(settings):
    assert ids(settings, PURCHASE_WINDOW=0) == {Codes.POSITIVE}
    assert ids(settings, DISCONNECT_GRACE=-5) == {Codes.POSITIVE}
    assert ids(settings, TICK_BATCHES="10") == {Codes.POSITIVE}


def test_algorithm_and_keys(settings):
    assert ids(settings, PASS_ALGORITHM="none") == {Codes.ALGORITHM}
    assert ids(settings, PASS_ALGORITHM="RS256") == {Codes.SIGNING_KEYS}


def test_store_failure_mode(settings):
    assert ids(settings, STORE_FAILURE="maybe") == {Codes.STORE_FAILURE}


def test_memory_store_in_production_warns(settings):
    settings.DEBUG = False
    assert ids(settings, STORE="ticketqueue.store.memory.MemoryStore") == {
        Codes.MEMORY_IN_PRODUCTION
    }


def test_every_setting_has_help_and_a_row_in_the_docs():
    from pathlib import Path

    from ticketqueue.conf import DEFAULTS, HELP

    docs = (Path(__file__).parents[2] / "docs" / "settings.md").read_text()
    for key in DEFAULTS:
        assert HELP.get(key), key
        assert f"| `{key}` |" in docs, f"docs/settings.md lacks {key}"
