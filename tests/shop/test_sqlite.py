"""The embedded default under concurrent purchases: the demo's own settings on a SQLite file,
rounds of buyers purchasing at the same moment (tests/shop/sqlite_purchases.py, run in a
process of its own since the suite's database is another)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_purchases_on_the_embedded_default_all_succeed(tmp_path):
    env = {
        **os.environ,
        "DEMO_VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DEMO_LOG_LEVEL": "WARNING",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "shop" / "sqlite_purchases.py"), "8", "20"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    # Every buyer holds a pass and there is a ticket for each: every purchase is sold.
    assert outcomes == {"201": 160}, done.stderr[-3000:]
