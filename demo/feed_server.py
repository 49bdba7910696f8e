"""A local price feed: an HTTP server on 127.0.0.1 replaying a daily series, accelerated.

``GET /eth-usd`` answers ``{"price": "321.32", "day": "2017-11-09", "index": 0}``: the close of
the day the replay has reached. ``dnft oracle`` reads it as any ``http`` feed (with
``allow_private_hosts``, since it is on loopback).
"""

from __future__ import annotations

import time

from aiohttp import web

from demo.prices import DailyClose, Replay
from dnft.devservices.web import LoopbackSite

FEED_PATH = "/eth-usd"


class FeedServer:
    """Serves ``replay``: the first day until :meth:`begin`, then one day per ``day_s``."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.requests = 0
        self._started: float | None = None
        app = web.Application()
        app.router.add_get(FEED_PATH, self._price)
        self._site = LoopbackSite(app)

    @property
    def port(self) -> int:
        return self._site.port

    @property
    def url(self) -> str:
        return f"{self._site.base_url}{FEED_PATH}"

    def begin(self) -> None:
        """Start the replay clock (the world is ready to watch)."""
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return 0.0 if self._started is None else time.monotonic() - self._started

    def current(self) -> DailyClose:
        return self.replay.at(self.elapsed())

    async def start(self) -> None:
        """Listen on a free loopback port. Raises OSError when it cannot bind."""
        await self._site.start()

    async def stop(self) -> None:
        await self._site.stop()

    async def _price(self, request: web.Request) -> web.Response:
        self.requests += 1
        elapsed = self.elapsed()
        point = self.replay.at(elapsed)
        return web.json_response(
            {
                "price": str(point.close),
                "day": point.day.isoformat(),
                "index": self.replay.index_at(elapsed),
            }
        )
