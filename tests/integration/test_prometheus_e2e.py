"""A real Prometheus (Debian's) scrapes a running `dnft oracle` with the project's own alert
rules loaded; stopping the feed's HTTP server makes FeedStale fire, as Prometheus's HTTP API
reports it.

Only the ``for:`` durations are shortened (to 1 s) so the test takes seconds, not minutes:
every expression is the one in deploy/prometheus/dnft-rules.yml.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from dnft.devservices.ports import free_port
from tests.support.cli import write_settings
from tests.support.daemon import DaemonProcess
from tests.support.oracle import FeedServer, OracleSettingsFor, http_feed, unique_feed_id

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "dnft-rules.yml"
FAST = "1s"  # scrape and evaluation interval


def fast_rules(path: Path) -> dict[str, str]:
    """Write the project's rules with every ``for:`` set to 1 s; returns the expressions."""
    doc = yaml.safe_load(RULES.read_text())
    exprs = {}
    for group in doc["groups"]:
        group["interval"] = FAST
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = FAST
                exprs[rule["alert"]] = rule["expr"]
    path.write_text(yaml.safe_dump(doc))
    return exprs


class Prometheus:
    """``/usr/bin/prometheus`` on a free loopback port with its own storage directory."""

    def __init__(self, workdir: Path, targets: dict[str, int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.exprs = fast_rules(workdir / "rules.yml")
        config = {
            "global": {"scrape_interval": FAST, "evaluation_interval": FAST},
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: `make system-deps` installs Debian's prometheus"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=out,
                cwd=self.workdir,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    async def get(self, path: str, **params: str) -> Any:
        """``data`` of a successful API answer; raises on anything else."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{self.url}{path}", params=params, timeout=aiohttp.ClientTimeout(total=2)
            ) as r,
        ):
            body = await r.json()
        assert body["status"] == "success", body
        return body["data"]

    async def wait(self, predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                value = await predicate()
            except (aiohttp.ClientError, TimeoutError):
                value = None  # not listening yet
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {self.log.read_text()[-2000:]}")

    async def alerts(self, name: str) -> list[dict[str, Any]]:
        data = await self.get("/api/v1/alerts")
        return [a for a in data["alerts"] if a["labels"]["alertname"] == name]


class TestFeedStale:
    """Stopping the feed server makes FeedStale fire in a real Prometheus."""

    async def test_feed_server_down_fires_feed_stale(
        self, server: FeedServer, oracle_settings_for: OracleSettingsFor, tmp_path: Path
    ) -> None:
        feed = unique_feed_id("e2e")
        # Polled every 0.2 s: stale after 10 intervals without a good reading, 2 s.
        settings = oracle_settings_for(http_feed(server, feed, interval_s=0.2, heartbeat_s=60))
        server.serve("eth", server.price("100"))
        port = free_port()
        config = write_settings(tmp_path / "dnft.yaml", settings, http={"port": port})
        daemon = DaemonProcess("oracle", config, port, tmp_path / "oracle.log")
        prometheus = Prometheus(tmp_path, {"dnft-oracle": port})
        try:
            daemon.start()
            prometheus.start()

            async def scraped_leading() -> Any:
                result = await prometheus.get(
                    "/api/v1/query", query='dnft_daemon_leader{job="dnft-oracle",daemon="oracle"}'
                )
                return result["result"] and result["result"][0]["value"][1] == "1"

            await prometheus.wait(scraped_leading, 30, "a scrape of the leading oracle")

            async def feed_age() -> Any:
                result = await prometheus.get(
                    "/api/v1/query", query=f'dnft_oracle_value_age_seconds{{feed="{feed}"}}'
                )
                return result["result"]

            await prometheus.wait(feed_age, 10, "the feed's age in Prometheus")
            rules = await prometheus.get("/api/v1/rules", type="alert")
            loaded = {r["name"]: r for g in rules["groups"] for r in g["rules"]}
            assert set(loaded) == set(prometheus.exprs), "every alert of the project is loaded"
            assert loaded["FeedStale"]["duration"] == 1
            # The feed reads fine: several evaluations later, FeedStale is not even pending.
            await asyncio.sleep(3)
            assert daemon.alive(), daemon.log.read_text()[-3000:]
            assert await prometheus.alerts("FeedStale") == []

            stopped_at = time.monotonic()
            await server.stop()  # the source goes down (the fixture's stop is then a no-op)

            async def firing() -> Any:
                return [a for a in await prometheus.alerts("FeedStale") if a["state"] == "firing"]

            (alert,) = await prometheus.wait(firing, 30, "FeedStale firing")
            took = time.monotonic() - stopped_at
            assert alert["labels"]["feed"] == feed
            assert alert["labels"]["job"] == "dnft-oracle"
            assert alert["labels"]["severity"] == "page"
            assert alert["annotations"]["runbook_url"].endswith("/docs/runbook.md#feedstale")
            # 2 s to go stale, then pending for 1 s, at 1 s scrapes and evaluations.
            assert 2.0 <= took < 15, took
            assert daemon.alive(), "the oracle keeps running; only its source is gone"
        finally:
            prometheus.stop()
            daemon.kill9()
