"""The public names: everything in ``__all__`` exists, and nothing private leaks."""

import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "ticketqueue",
        "ticketqueue.core",
        "ticketqueue.store",
        "ticketqueue.services",
        "ticketqueue.testing",
    ],
)
def test_all_names_exist(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"
        assert not name.startswith("_") or name == "__version__"


def test_the_public_surface_both_ways():
    """As httpx checks its own: every exported name resolves, and every public function or class
    the package itself holds is exported (submodules and imported helpers aside)."""
    import types

    import ticketqueue

    for name in ticketqueue.__all__:
        assert getattr(ticketqueue, name) is not None, name
    held = {
        name
        for name, value in vars(ticketqueue).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("ticketqueue")
    }
    assert held <= set(ticketqueue.__all__)
    assert dir(ticketqueue) == sorted(ticketqueue.__all__)
    assert ticketqueue.HasQueuePass is importlib.import_module("ticketqueue.api").HasQueuePass
    with pytest.raises(AttributeError):
        ticketqueue.not_a_name  # noqa: B018


def test_core_imports_no_django():
    import subprocess
    import sys

    code = "import sys, ticketqueue.core; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
