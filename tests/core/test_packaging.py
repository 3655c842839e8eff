"""The wheel a site installs carries what ticketqueue needs at run time, and its license."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_license_scripts_templates_and_static_files(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("ticketqueue-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE"
    for needed in (
        "ticketqueue/store/lua/admit.lua",
        "ticketqueue/store/lua/_common.lua",
        "ticketqueue/templates/ticketqueue/widget.html",
        "ticketqueue/static/ticketqueue/widget.js",
        "ticketqueue/py.typed",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "demo_project/", "bench/")) for n in names)
