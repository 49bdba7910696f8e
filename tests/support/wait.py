"""Polling until a condition holds: the one way tests wait for something to happen elsewhere
(a daemon, a broker, a chain). Each raises AssertionError naming what it waited for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Until ``predicate()`` (a plain function, checked every 0.05 s) is true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_for(
    what: str, check: Callable[[], Awaitable[T]], timeout_s: float, every_s: float = 0.1
) -> T:
    """Await ``check()`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(every_s)
