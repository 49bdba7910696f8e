"""A JSON-RPC proxy in front of anvil that misbehaves like hosted providers do.

Real HTTP on 127.0.0.1 (aiohttp), forwarding to the real node; faults are drawn from a seeded
RNG so a failing run can be repeated.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiohttp import web


@dataclass
class Faults:
    max_log_range: int | None = None  # refuse wider eth_getLogs, Alchemy-style
    p_429: float = 0.0
    p_500: float = 0.0
    p_garbage: float = 0.0
    p_drop: float = 0.0
    p_delay: float = 0.0
    delay_s: float = 0.3
    # A node that stopped syncing at this block: it reports it as the head, has no later
    # blocks, and refuses logs past it (None: in sync).
    behind_at: int | None = None
    seed: int = 1
    counts: dict[str, int] = field(default_factory=dict)


class RpcProxy:
    """Forwards to ``upstream`` with ``faults``: ``start``/``stop``, or ``async with``."""

    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def _count(self, what: str) -> None:
        self.faults.counts[what] = self.faults.counts.get(what, 0) + 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> RpcProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        f, r = self.faults, self._rng.random()
        if r < f.p_429:
            self._count("429")
            return web.Response(status=429, headers={"Retry-After": "0"}, text="slow down")
        r -= f.p_429
        if r < f.p_500:
            self._count("500")
            return web.Response(status=500, text="<html>internal error</html>")
        r -= f.p_500
        if r < f.p_drop:
            self._count("drop")
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        r -= f.p_drop
        if r < f.p_delay:
            self._count("delay")
            await asyncio.sleep(f.delay_s)
        payload = orjson.loads(body)
        if f.behind_at is not None:
            stuck = self._behind(payload, f.behind_at)
            if stuck is not None:
                self._count("behind")
                return web.Response(body=orjson.dumps(stuck), content_type="application/json")
            body = orjson.dumps(payload)  # "latest" was pinned to the stuck head
        if f.max_log_range is not None and not isinstance(payload, list):
            refused = self._refuse_range(payload, f.max_log_range)
            if refused is not None:
                self._count("range")
                return web.Response(body=orjson.dumps(refused), content_type="application/json")
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as up:
            answer = await up.read()
        if self._rng.random() < f.p_garbage:
            self._count("garbage")
            return web.Response(body=answer[: len(answer) // 2], content_type="application/json")
        return web.Response(body=answer, content_type="application/json")

    @staticmethod
    def _behind(payload: object, head: int) -> object | None:
        """The answer of a node stuck at ``head`` when it differs from the real node's
        (None: forward ``payload``, whose "latest" tags are rewritten in place)."""
        requests = payload if isinstance(payload, list) else [payload]
        answers: list[object] = []
        own = False
        for req in requests:
            assert isinstance(req, dict)
            method, params = req.get("method"), req.get("params") or []
            answer: object = None
            if method == "eth_blockNumber":
                answer = {"jsonrpc": "2.0", "id": req.get("id"), "result": hex(head)}
            elif method == "eth_getBlockByNumber" and params:
                if params[0] in ("latest", "safe", "finalized", "pending"):
                    params[0] = hex(head)
                elif isinstance(params[0], str) and int(params[0], 16) > head:
                    answer = {"jsonrpc": "2.0", "id": req.get("id"), "result": None}
            elif (
                method == "eth_getLogs"
                and params
                and isinstance(params[0], dict)
                and "blockHash" not in params[0]
            ):
                to_block = params[0].get("toBlock", "latest")
                if to_block == "latest":
                    params[0]["toBlock"] = hex(head)
                elif isinstance(to_block, str) and int(to_block, 16) > head:
                    answer = {
                        "jsonrpc": "2.0",
                        "id": req.get("id"),
                        "error": {"code": -32000, "message": "block range extends beyond "
                                  "current head block"},
                    }  # fmt: skip
            own = own or answer is not None
            answers.append(answer)
        if not own:
            return None
        if not isinstance(payload, list):
            return answers[0]
        # A batch with some answers of its own: the rest is answered with a retryable error.
        return [
            a if a is not None else {
                "jsonrpc": "2.0", "id": r.get("id"),
                "error": {"code": -32603, "message": "header not found"},
            }
            for a, r in zip(answers, requests, strict=True)
            if isinstance(r, dict)
        ]  # fmt: skip

    @staticmethod
    def _refuse_range(payload: dict[str, object], limit: int) -> dict[str, object] | None:
        if payload.get("method") != "eth_getLogs":
            return None
        params = payload.get("params")
        assert isinstance(params, list)
        flt = params[0]
        start, end = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        if end - start + 1 <= limit:
            return None
        suggestion = f"[{hex(start)}, {hex(start + limit - 1)}]"
        return {
            "jsonrpc": "2.0",
            "id": payload.get("id"),
            "error": {
                "code": -32602,
                "message": "Log response size exceeded. You can make "
                f"eth_getLogs requests with up to a 2K block range and no limit on the "
                f"response size, or you can request any block range with a cap of 10K "
                f"logs in the response. Based on your parameters, this block range "
                f"should work: {suggestion}",
            },
        }
