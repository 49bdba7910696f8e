"""A JSON-RPC node on 127.0.0.1 that misbehaves on demand (:class:`FakeNode`, served by an
aiohttp app in the RPC client tests) and an observer that keeps every call (:class:`Recorder`).
Unit tests only: integration tests talk to anvil."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from aiohttp import web


class FakeNode:
    """A JSON-RPC node on 127.0.0.1. ``script`` holds one misbehaviour per coming request
    (``429``, ``500``, ``drop``, ``cut_body``, ``truncated``, ``slow``, ``partial_batch``,
    ``batch_error``, ``401``, ``endless``); an empty script answers correctly.

    ``eth_getLogs`` serves ``density`` synthetic logs per block and refuses ranges with more
    than ``max_results`` logs (or more than ``max_blocks`` blocks) in the ``refusal`` shape.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.script: list[str] = []
        self.bodies: list[Any] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.jitter = 0.0
        self.density = 2
        self.max_results: int | None = None
        self.max_blocks: int | None = None
        self.refusal = "alchemy"
        self.getlogs_ranges: list[tuple[int, int]] = []
        self.refused = 0
        self.streamed = 0  # bytes the ``endless`` action wrote

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.bodies.append(body)
        action = self.script.pop(0) if self.script else "ok"
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay + random.uniform(0, self.jitter))
            return await self._act(request, action, body)
        finally:
            self.in_flight -= 1

    async def _act(self, request: web.Request, action: str, body: Any) -> web.StreamResponse:
        if action == "429":
            return web.Response(status=429, headers={"Retry-After": "0.3"}, text="slow down")
        if action == "500":
            return web.Response(status=500, text="<html>oops</html>")
        if action == "401":
            return web.Response(status=401, text="unauthorized")
        if action == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(text="never sent")
        if action == "cut_body":
            resp = web.StreamResponse(headers={"Content-Length": "500"})
            await resp.prepare(request)
            await resp.write(b'{"jsonrpc":"2.0","id":1,"result":"0x')
            assert request.transport is not None
            request.transport.close()
            return resp
        if action == "truncated":
            return web.Response(
                body=b'{"jsonrpc":"2.0","id":1,"res', content_type="application/json"
            )
        if action == "slow":
            await asyncio.sleep(1.0)
        if action == "endless":  # a chunked body of up to 1 GiB, written as it is read
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            chunk = b" " * 65536
            try:
                while self.streamed < 1024**3:
                    await resp.write(chunk)
                    self.streamed += len(chunk)
            except (ConnectionResetError, RuntimeError):
                pass  # the client hung up: what it did not read was never sent
            return resp
        if action == "batch_error":
            error = {"code": -32600, "message": "batch too large"}
            return self._json({"jsonrpc": "2.0", "id": None, "error": error})
        if isinstance(body, list):
            answers = [self._answer(call) for call in body]
            if action == "partial_batch":
                answers = answers[:-1]
            random.shuffle(answers)  # clients must match by id, not position
            return self._json(answers)
        return self._json(self._answer(body))

    @staticmethod
    def _json(value: Any) -> web.Response:
        return web.Response(body=orjson.dumps(value), content_type="application/json")

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        method, params = call["method"], call["params"]
        try:
            result = self._result(method, params)
        except _Refuse as refusal:
            return {"jsonrpc": "2.0", "id": call["id"], "error": refusal.error}
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}

    def _result(self, method: str, params: Any) -> Any:
        if method == "eth_blockNumber":
            return "0x10"
        if method == "echo":
            return params
        if method == "fail":
            raise _Refuse({"code": -32601, "message": "method not found"})
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            if n > 10_000:
                return None
            return {"number": hex(n), "hash": f"0x{n:064x}", "parentHash": f"0x{n - 1:064x}",
                    "timestamp": hex(1_700_000_000 + 12 * n)}  # fmt: skip
        if method == "eth_getLogs":
            return self._logs(params[0])
        raise _Refuse({"code": -32601, "message": f"no method {method}"})

    def _logs(self, flt: dict[str, Any]) -> list[dict[str, Any]]:
        start, end = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        self.getlogs_ranges.append((start, end))
        blocks = end - start + 1
        if self.max_blocks is not None and blocks > self.max_blocks:
            self.refused += 1
            message = f"eth_getLogs is limited to a {self.max_blocks:,} range"
            raise _Refuse({"code": -32614, "message": message})
        if self.max_results is not None and blocks * self.density > self.max_results:
            self.refused += 1
            fits = start + self.max_results // self.density - 1
            shapes = {
                "alchemy": {"code": -32602, "message": "Log response size exceeded. this block "
                            f"range should work: [{hex(start)}, {hex(fits)}]"},
                "infura": {"code": -32005, "message": "query returned more than "
                           f"{self.max_results} results", "data": {"to": hex(fits)}},
                "wide": {"code": -32000, "message": "block range is too wide"},
                "timeout": {"code": -32000, "message": "Query timeout exceeded"},
            }  # fmt: skip
            raise _Refuse(shapes[self.refusal])
        return [
            {"address": "0x" + "aa" * 20, "topics": ["0x" + "bb" * 32], "data": "0x",
             "blockNumber": hex(n), "blockHash": f"0x{n:064x}", "transactionHash": "0x" + "cc" * 32,
             "transactionIndex": "0x0", "logIndex": hex(i), "removed": False}
            for n in range(start, end + 1)
            for i in range(self.density)
        ]  # fmt: skip


class _Refuse(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error


class Recorder:
    """An RpcObserver that keeps every call."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float, str]] = []

    def on_request(self, method: str, endpoint: str, seconds: float, outcome: str) -> None:
        self.seen.append((method, endpoint, seconds, outcome))

    @property
    def outcomes(self) -> list[str]:
        return [s[3] for s in self.seen]
