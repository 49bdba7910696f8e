"""Wrap deploy/prometheus/dnft-rules.yml in the PrometheusRule of the kustomize base.

The rules file stays the one source (promtool tests it, the e2e test loads it into a real
Prometheus); this writes deploy/k8s/base/prometheus-rule.yaml with the same groups, comments
included. ``--check`` writes nothing and exits 1 when the PrometheusRule is out of date.

    .venv/bin/python scripts/sync_prometheus_rule.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "dnft-rules.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "base" / "prometheus-rule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/dnft-rules.yml by scripts/sync_prometheus_rule.py:
# edit that file, then re-run the script (tests/unit/test_alert_rules.py checks they agree).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: dnft
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule text for a rules file: its ``groups:`` onwards, under ``spec``."""
    lines = rules_text.splitlines()
    try:
        start = lines.index("groups:")
    except ValueError:
        raise SystemExit(f"{RULES}: no top-level 'groups:' line") from None
    body = [f"  {line}" if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if out of date")
    args = parser.parse_args(argv)
    wanted = render(RULES.read_text())
    current = PROMETHEUS_RULE.read_text() if PROMETHEUS_RULE.exists() else ""
    if args.check:
        if current != wanted:
            print(f"{PROMETHEUS_RULE} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        PROMETHEUS_RULE.parent.mkdir(parents=True, exist_ok=True)
        PROMETHEUS_RULE.write_text(wanted)
        print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
