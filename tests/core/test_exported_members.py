"""The public names: everything in ``__all__`` exists, and nothing private leaks."""

import importlib

import pytest


@pytest.mark.parametrize(
    "module", ["ticketqueue", "ticketqueue.core", "ticketqueue.store", "ticketqueue.services"]
)
def test_all_names_exist(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"
        assert not name.startswith("_") or name == "__version__"


def test_core_imports_no_django():
    import subprocess
    import sys

    code = "import sys, ticketqueue.core; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
