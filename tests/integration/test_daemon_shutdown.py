"""dnft/daemon.py: SIGTERM stops a daemon within its configured deadline, and a daemon that
does not finish in time is cancelled with exit code 1."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from dnft.config import Settings, settings_from_mapping
from dnft.daemon import run_daemon
from dnft.health import HealthServer


def settings(deadline_s: float) -> Settings:
    return settings_from_mapping(
        {
            "http": {"port": 0},
            "shutdown_deadline_s": deadline_s,
            "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},
            "postgres": {"dsn": "postgresql://127.0.0.1:1/x"},
        },
        {},
    )


class TestShutdown:
    """What a daemon does between SIGTERM and its deadline."""

    async def test_graceful_stop_returns_0(self) -> None:
        finished: list[bool] = []

        async def main(stopping: asyncio.Event, health: HealthServer) -> None:
            await stopping.wait()
            await asyncio.sleep(0.1)  # hand back what is in flight
            finished.append(True)

        asyncio.get_running_loop().call_later(0.3, os.kill, os.getpid(), signal.SIGTERM)
        assert await run_daemon("test", settings(5), main) == 0
        assert finished == [True]

    async def test_deadline_is_configurable_and_enforced(self) -> None:
        async def stubborn(stopping: asyncio.Event, health: HealthServer) -> None:
            await stopping.wait()
            await asyncio.sleep(60)  # ignores the deadline

        asyncio.get_running_loop().call_later(0.3, os.kill, os.getpid(), signal.SIGTERM)
        began = time.monotonic()
        assert await run_daemon("test", settings(0.5), stubborn) == 1
        assert time.monotonic() - began < 5, "cancelled at the 0.5 s deadline, not after 60 s"
