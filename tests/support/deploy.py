"""Helpers for the deploy/ checks: where things are, and which metric names dnft exports."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from dnft import metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES_DIR = DEPLOY / "prometheus"
RULES = RULES_DIR / "dnft-rules.yml"
RULES_TEST = RULES_DIR / "dnft-rules.test.yml"
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/dnft/dnft/blob/main/docs/runbook.md"

_METRIC = re.compile(r"\bdnft_[a-z0-9_]+\b")
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def exported_metric_names() -> set[str]:
    """Every sample name the metrics declared in dnft/metrics.py can expose."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + s for s in _SUFFIXES[family.type])
    return names


def referenced_metrics(promql: str) -> set[str]:
    """The ``dnft_*`` metric names a PromQL expression reads."""
    return set(_METRIC.findall(promql))


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped,
    spaces to dashes)."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif line.startswith("#") and not in_code:
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            anchors.add(title.replace(" ", "-"))
    return anchors
