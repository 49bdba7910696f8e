"""A dnft daemon (`dnft indexer`, `dnft run --all`, ...) as a real subprocess, for crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp


class DaemonProcess:
    def __init__(self, command: str, config: Path, port: int, log: Path) -> None:
        self.command, self.config, self.port, self.log = command, config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNFT_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dnft", "--config", str(self.config), *self.command.split()],
                stdout=out,
                stderr=out,
                env=env,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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
