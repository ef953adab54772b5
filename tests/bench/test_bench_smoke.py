"""`make bench` in one second per scenario, so that the benchmark never drifts from the code: every scenario
(the anchors and tokengate's) must answer its checked request and be measured. No figure is asserted here;
figures come from a full `make bench` on an idle machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_bench_scenario_runs_and_answers_correctly():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--duration", "1", "--warmup", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    latest = json.loads((ROOT / "bench" / "results" / "bench-latest.json").read_text())
    statuses = {key: scenario["status"] for key, scenario in latest["scenarios"].items()}
    assert set(statuses.values()) == {"measured"}, statuses
    assert all(row["value"] is not None for row in latest["ratios"]), latest["ratios"]
