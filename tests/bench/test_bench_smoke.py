"""`make bench` as a check, so that the benchmark never drifts from the code: every scenario (the anchors and
tokengate's) is started and must answer its checked request right, before and after a short load
(`bench/run.py --check`). How fast, or how many requests the load completed, is not asserted: that depends
on the machine and on what else runs on it; figures come from a full `make bench` on an idle machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_bench_scenario_runs_and_answers_correctly():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--check", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    latest = json.loads((ROOT / "bench" / "results" / "bench-check-latest.json").read_text())
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from run import TITLES
    finally:
        sys.path.remove(str(ROOT / "bench"))
    statuses = {key: scenario["status"] for key, scenario in latest["scenarios"].items()}
    assert statuses == dict.fromkeys(TITLES, "checked"), statuses
