"""A dnft daemon (`dnft indexer`, `dnft run --all`, ...) as a real subprocess, for crash tests:
start it, read its health port, wait on it (failing at once if it died), kill or stop it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp

from tests.support.cli import clean_env, dnft_argv

T = TypeVar("T")


class DaemonProcess:
    def __init__(self, command: str, config: Path, port: int, log: Path) -> None:
        self.command, self.config, self.port, self.log = command, config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> None:
        """Start it, its output appended to the log; ``env`` adds variables (DNFT_* of the
        test environment never leak in)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                dnft_argv(self.config, *self.command.split()),
                stdout=out,
                stderr=out,
                env=clean_env(**env),
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:]

    async def _get(self, path: str) -> tuple[int, str] | None:
        """(status, body) of a GET on the daemon's health port; None while it does not answer."""
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    f"http://127.0.0.1:{self.port}{path}", timeout=aiohttp.ClientTimeout(total=1)
                ) as r,
            ):
                return r.status, await r.text()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def metrics_text(self) -> str:
        """The daemon's /metrics page, or "" while it does not answer."""
        answer = await self._get("/metrics")
        return "" if answer is None else answer[1]

    async def ready(self) -> bool:
        """Whether /readyz answers 200."""
        answer = await self._get("/readyz")
        return answer is not None and answer[0] == 200

    async def metrics(self) -> dict[str, float]:
        """dnft_* samples by metric name (the last sample of each, labels dropped)."""
        out: dict[str, float] = {}
        for line in (await self.metrics_text()).splitlines():
            if line.startswith("dnft_") and "{" in line:
                out[line.split("{", 1)[0]] = float(line.rsplit(" ", 1)[1])
        return out

    async def until(self, check: Callable[[], Awaitable[T]], timeout_s: float, what: str) -> T:
        """Await ``check()`` every 0.05 s until it returns something truthy, and return that;
        fails at once (with the log's tail) if the daemon is not running."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.alive(), self.log_tail()
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}: {self.log_tail()}")

    async def metric_reaches(
        self, name: str, predicate: Callable[[float], bool], timeout_s: float
    ) -> float:
        """The value of metric ``name`` once ``predicate`` holds for it (see :meth:`until`)."""

        async def reached() -> list[float]:
            value = (await self.metrics()).get(name)
            return [value] if value is not None and predicate(value) else []

        (value,) = await self.until(reached, timeout_s, f"{name} to reach the expected value")
        return value

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self) -> int:
        """SIGTERM; the exit code once it is gone (30 s at most)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


async def start_indexer_pair(leader: DaemonProcess, standby: DaemonProcess) -> None:
    """Start two `dnft indexer` replicas of one network: the first leads and follows the head
    before the second starts, which then stands by."""
    leader.start()
    await leader.metric_reaches("dnft_indexer_following_head", lambda v: v == 1, 60)
    standby.start()
    await standby.metric_reaches("dnft_daemon_leader", lambda v: v == 0, 30)
