"""The oracle's source in a chaos run: a seeded random walk of a price over HTTP, which can
flap, lie (spike) or go stale on demand."""

from __future__ import annotations

import random
import time
from decimal import Decimal

from aiohttp import web

from dnft.devservices.ports import free_port


class PriceSource:
    """``GET /price`` -> ``{"price": "612.5", "ts": 1700000000}``: a seeded random walk across
    the demo collection's market buckets, or a fault: ``flap`` (500s, dropped connections and
    broken JSON in turn), ``spike`` (every other reading 25x the walk) or ``stale`` (a value
    stamped an hour ago). Every lie served is remembered, to check none was published."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.value = Decimal("450")
        self.mode = "ok"
        self.lies: set[Decimal] = set()
        self.served = 0
        self._turn = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/price"

    def step(self) -> None:
        """Move the walk (a bucket boundary every few steps: 200/400/700/1000)."""
        move = Decimal(self.rng.randint(-150, 150))
        self.value = min(max(self.value + move, Decimal(120)), Decimal(1300))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/price", self._price)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _price(self, request: web.Request) -> web.StreamResponse:
        self.served += 1
        self._turn += 1
        now = int(time.time())
        if self.mode == "flap":
            kind = self._turn % 4
            if kind == 0:
                return web.Response(status=500, text="upstream error")
            if kind == 1:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if kind == 2:
                return web.Response(text='{"price": "61', content_type="application/json")
        if self.mode == "spike" and self._turn % 2 == 0:
            lie = self.value * 25
            self.lies.add(lie)
            return web.json_response({"price": str(lie), "ts": now})
        if self.mode == "stale":
            lie = Decimal("977.13") + Decimal(self._turn % 7)  # distinctive values
            self.lies.add(lie)
            return web.json_response({"price": str(lie), "ts": now - 3600})
        return web.json_response({"price": str(self.value), "ts": now})
