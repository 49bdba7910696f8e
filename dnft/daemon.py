"""Running a long-lived daemon: logging, the health side server, signals, a shutdown deadline.

SIGTERM or SIGINT sets the ``stopping`` event: the daemon stops taking work, finishes or hands
back what is in flight and returns. If it has not returned within ``shutdown_deadline_s`` its
task is cancelled (Kubernetes would SIGKILL it soon after anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from dnft import metrics
from dnft.config import Settings
from dnft.health import HealthServer, ReadinessCheck

log = structlog.get_logger("dnft.daemon")

DaemonMain = Callable[[asyncio.Event, HealthServer], Coroutine[Any, Any, None]]


async def run_daemon(
    name: str,
    settings: Settings,
    main: DaemonMain,
    *,
    readiness: dict[str, ReadinessCheck] | None = None,
) -> int:
    """Run ``main(stopping, health)`` until it returns or a signal stops it; exit code.

    A signal sets ``stopping``; ``main`` then has ``settings.shutdown_deadline_s`` to return.
    """
    shutdown_deadline_s = settings.shutdown_deadline_s
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    health = HealthServer(settings.http.host, settings.http.port)
    for check_name, check in (readiness or {}).items():
        health.add_readiness_check(check_name, check)
    await health.start()
    metrics.build_info.info({"daemon": name, "version": _version()})
    log.info("daemon started", daemon=name, http_port=health.bound_port)
    task: asyncio.Task[None] = asyncio.create_task(main(stopping, health), name=name)
    stop_wait = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("stopping", daemon=name, deadline_s=shutdown_deadline_s)
            done, _ = await asyncio.wait({task}, timeout=shutdown_deadline_s)
            if not done:
                log.error("shutdown deadline passed; cancelling", daemon=name)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return 1
        task.result()  # re-raise the daemon's own failure
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        stop_wait.cancel()
        metrics.daemon_ready.labels(name).set(0)
        await health.stop()
        log.info("daemon stopped", daemon=name)


def together(parts: Mapping[str, DaemonMain]) -> DaemonMain:
    """One daemon main running every part as its own task, sharing ``stopping`` and the
    health server: the first part to fail stops the others, and its error is raised (the
    whole process stops, as separate daemons would)."""

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        log.info("running", parts=sorted(parts))
        tasks = [asyncio.create_task(run(stopping, health), name=n) for n, run in parts.items()]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a failed part stops them all
            await asyncio.gather(*tasks)
        finally:
            stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    return main


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dnft")
    except PackageNotFoundError:
        return "unknown"
