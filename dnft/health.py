"""The side HTTP server each daemon runs: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the event loop serves requests (liveness: a blocked loop fails
it). ``/readyz`` answers 200 only when every registered readiness check passes, 503 with the
failing checks' reasons otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dnft import metrics

# A readiness check returns None when ready, else a short reason.
ReadinessCheck = Callable[[], Awaitable[str | None]]


class HealthServer:
    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._checks: dict[str, ReadinessCheck] = {}
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"alive"}', content_type="application/json")

    async def _readyz(self, _: web.Request) -> web.Response:
        failing: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                reason = await check()
            except Exception as exc:  # a crashing check means "not ready", with why
                reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                failing[name] = reason
        status = 503 if failing else 200
        body = {"status": "not ready" if failing else "ready", "failing": failing}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
