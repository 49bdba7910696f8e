"""Learning about new chain heads: ``newHeads`` over WebSocket where configured, else polling.

With a WebSocket, polling still runs at a slower pace as a safety net: a socket can die
silently, and anvil re-sends heads for re-mined heights, which a poll alone would miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import orjson
import structlog

from dnft.rpc import RpcClient, redact_url, scrub_urls

log = structlog.get_logger("dnft.indexer.heads")

# With a live WebSocket, polls are only a safety net: this many times rarer.
_POLL_SLOWDOWN_WITH_WS = 5


class HeadWatcher:
    """Tracks the newest head number; :meth:`wait` wakes on every notification."""

    def __init__(
        self, client: RpcClient, *, ws_url: str | None, poll_interval_s: float, network: str
    ) -> None:
        self._client = client
        self._ws_url = ws_url
        self._poll_interval_s = poll_interval_s
        self._network = network
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ws_live = False
        self.latest: int = -1
        # monotonic time when each head number was first seen, for head-to-Kafka latency
        self.seen_at: dict[int, float] = {}

    async def start(self) -> None:
        self._note(int(await self._client.call("eth_blockNumber"), 16))
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="heads-poll"))
        if self._ws_url:
            self._tasks.append(asyncio.create_task(self._ws_loop(self._ws_url), name="heads-ws"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def wait(self, timeout_s: float) -> None:
        """Return after the next head notification or poll, or after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        self._changed.clear()

    def _note(self, number: int, *, notify: bool = True) -> None:
        if number not in self.seen_at:
            self.seen_at[number] = time.monotonic()
            if len(self.seen_at) > 4096:  # bounded: drop the oldest half
                for key in sorted(self.seen_at)[:2048]:
                    del self.seen_at[key]
        if number > self.latest:
            self.latest = number
        if notify:
            self._changed.set()

    async def _poll_loop(self) -> None:
        while True:
            interval = self._poll_interval_s * (_POLL_SLOWDOWN_WITH_WS if self._ws_live else 1)
            await asyncio.sleep(interval)
            try:
                self._note(int(await self._client.call("eth_blockNumber"), 16))
            except Exception as exc:  # keep polling: the sync loop reports RPC failures
                log.warning("head poll failed", network=self._network, error=scrub_urls(str(exc)))

    async def _ws_loop(self, url: str) -> None:
        backoff = 0.5
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.ws_connect(url, heartbeat=20) as ws:
                        await ws.send_bytes(
                            orjson.dumps(
                                {
                                    "jsonrpc": "2.0",
                                    "id": 1,
                                    "method": "eth_subscribe",
                                    "params": ["newHeads"],
                                }
                            )
                        )
                        backoff = 0.5
                        async for msg in ws:
                            if msg.type != aiohttp.WSMsgType.TEXT:
                                continue
                            body = orjson.loads(msg.data)
                            if body.get("id") == 1:
                                self._ws_live = "result" in body
                                continue
                            head = body.get("params", {}).get("result", {})
                            if isinstance(head, dict) and isinstance(head.get("number"), str):
                                # Re-sent heights (re-mined blocks) still wake the sync loop.
                                self._note(int(head["number"], 16))
                except (aiohttp.ClientError, OSError, ValueError) as exc:
                    # aiohttp's texts echo the URL it failed on (a handshake error names the
                    # whole URL, API key included): every URL in them is redacted.
                    log.warning(
                        "newHeads socket failed; polling meanwhile",
                        network=self._network,
                        url=redact_url(url),
                        error=f"{type(exc).__name__}: {scrub_urls(str(exc))}",
                    )
                self._ws_live = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 15)
