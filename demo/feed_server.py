"""A local price feed: an HTTP server on 127.0.0.1 replaying a daily series, accelerated.

``GET /eth-usd`` answers ``{"price": "321.32", "day": "2017-11-09", "index": 0}``: the close of
the day the replay has reached. ``dnft oracle`` reads it as any ``http`` feed (with
``allow_private_hosts``, since it is on loopback).
"""

from __future__ import annotations

import socket
import time

from aiohttp import web

from demo.prices import DailyClose, Replay

FEED_PATH = "/eth-usd"


class FeedServer:
    """Serves ``replay``: the first day until :meth:`begin`, then one day per ``day_s``."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.port = 0
        self.requests = 0
        self._started: float | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{FEED_PATH}"

    def begin(self) -> None:
        """Start the replay clock (the world is ready to watch)."""
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return 0.0 if self._started is None else time.monotonic() - self._started

    def current(self) -> DailyClose:
        return self.replay.at(self.elapsed())

    async def start(self) -> None:
        """Listen on a free loopback port. Raises OSError when it cannot bind."""
        app = web.Application()
        app.router.add_get(FEED_PATH, self._price)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
