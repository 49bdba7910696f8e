"""An aiohttp application on a free 127.0.0.1 port: the small HTTP servers that tests, the
demo and the benchmarks run in-process (price feeds, fault proxies)."""

from __future__ import annotations

import socket

from aiohttp import web

from dnft.devservices.ports import LOOPBACK


class LoopbackSite:
    """Serves ``app`` on 127.0.0.1; the port is chosen by the kernel at :meth:`start`."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> int:
        """Listen; returns the port. Raises OSError when it cannot bind."""
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((LOOPBACK, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self.port

    async def stop(self) -> None:
        """Close every connection and stop listening (again: a no-op)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
