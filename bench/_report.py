"""What every benchmark does with its figures: save the JSON, print the table, and put the
section into docs/benchmarks.md (full runs only; --quick runs for CI touch neither)."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"


def run_header(script: str) -> dict[str, str]:
    """What every report starts with: the command that made it, when, and on what."""
    return {
        "command": " ".join([".venv/bin/python", f"bench/{script}", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
    }


def write_section(heading: str, section: str, docs: Path = DOCS) -> None:
    """Replace the section under ``heading`` (up to the next ``## ``), or append it."""
    text = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def publish(
    name: str,
    heading: str,
    report: dict[str, Any],
    section: str,
    *,
    quick: bool,
    write: bool = True,
) -> None:
    """Print ``section``; unless ``write`` is off, save ``report`` as bench/results/<name>.json
    (``<name>_quick.json`` for --quick) and, for full runs, the section into the docs."""
    print()
    print(section)
    if not write:
        return
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / (f"{name}_quick.json" if quick else f"{name}.json")
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not quick:
        write_section(heading, section)
