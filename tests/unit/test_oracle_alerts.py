"""The staleness alert fires when it should: promtool runs the rules' own unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make system-deps` installs Debian's prometheus"
    for args in (
        ["check", "rules", "oracle-rules.yml"],
        ["test", "rules", "oracle-rules.test.yml"],
    ):
        done = subprocess.run(
            [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
