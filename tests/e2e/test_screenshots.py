"""docs/screenshots/take.py still reaches every state it photographs (it waits for each in
the widget before its shot), at both widths."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from .test_demo_browser import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
STATES = ["waiting", "likely-sold-out", "left", "scheduled", "granted", "sold-out"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def png_width(path: Path) -> int:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">I", head[16:20])[0]


def test_the_screenshot_script_photographs_every_state(tmp_path):
    done = subprocess.run(
        [sys.executable, "docs/screenshots/take.py", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for state in STATES:
        for width in (1280, 375):
            assert png_width(tmp_path / f"{state}-{width}.png") == width
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{s}-{w}.png" for s in STATES for w in (1280, 375)
    )
