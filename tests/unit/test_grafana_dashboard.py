"""The Grafana dashboard is valid JSON Grafana can import, covers what operations watch, and
every PromQL query in it reads only metrics dnft exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploy import DEPLOY, exported_metric_names, referenced_metrics

DASHBOARD = DEPLOY / "grafana" / "dnft.json"

# A panel for each thing the issue asks to watch, found by the metric it plots.
WATCHED = {
    "head lag": "dnft_indexer_head_lag_seconds",
    "consumer lag": "dnft_kafka_consumer_lag_messages",
    "renders and failures": "dnft_renders_total",
    "render seconds": "dnft_render_seconds_bucket",
    "feed age": "dnft_oracle_value_age_seconds",
    "pusher pending": "dnft_pusher_pending_updates",
    "pusher transactions": "dnft_pusher_transactions_total",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


class TestDashboard:
    """Structure Grafana needs to import it, panels for what operations watch."""

    def test_structure(self) -> None:
        board = dashboard()
        assert board["uid"]
        assert board["title"]
        assert isinstance(board["schemaVersion"], int)
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        names = {v["name"] for v in board["templating"]["list"]}
        for panel in board["panels"]:
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
            if panel["type"] != "row":
                assert panel["targets"], f"{panel['title']} plots nothing"
                # Every panel uses the dashboard's datasource variable, not a fixed uid.
                assert panel["datasource"]["uid"].strip("${}") in names, panel["title"]

    @pytest.mark.parametrize("what", sorted(WATCHED))
    def test_watched(self, what: str) -> None:
        plotted = set().union(*(referenced_metrics(expr) for _, expr in queries()))
        assert WATCHED[what] in plotted, f"no panel for {what}"


class TestQueries:
    """Every query names only exported metrics and is valid PromQL (promtool parses it)."""

    def test_metrics_exist(self) -> None:
        exported = exported_metric_names()
        for title, expr in queries():
            unknown = referenced_metrics(expr) - exported
            assert not unknown, f"{title}: not in dnft/metrics.py: {unknown}"

    def test_promql_parses(self, tmp_path: Path) -> None:
        # promtool parses every expression of a rules file: wrap the queries as recording rules.
        rules = {
            "groups": [
                {
                    "name": "dashboard",
                    "rules": [
                        {"record": f"dashboard:query{i}", "expr": expr}
                        for i, (_, expr) in enumerate(queries())
                    ],
                }
            ]
        }
        path = tmp_path / "dashboard-rules.json"
        path.write_text(json.dumps(rules))  # JSON is YAML
        promtool = shutil.which("promtool")
        assert promtool, "promtool is missing: `make system-deps` installs Debian's prometheus"
        done = subprocess.run(
            [promtool, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
