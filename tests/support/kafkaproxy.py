"""A Kafka-protocol-aware TCP proxy in front of a broker, for restarting the broker the way a
durable broker can be restarted: drain first, then stop.

tansu's S3 storage writes one produce as three objects (the producer's sequence, the
partition's high watermark, then the batch) and acknowledges after the last. Stopped between
them, it has recorded the sequence without the batch: the client's retry after the restart
is answered DUPLICATE_SEQUENCE_NUMBER, which Kafka clients treat as success, and the batch is
lost (``python -m bench.broker_restart`` measures it). Apache Kafka appends a batch and its
producer state to the log as one write, so a restart never leaves that gap; a fault test on
tansu that cuts the broker mid-write therefore tests tansu, not dnft.

:meth:`KafkaProxy.drain` stops forwarding new requests, waits until the broker has answered
every request it already received (Kafka frames are a 4-byte big-endian size and a body, one
response per request with acks=all), then cuts every connection; clients see a broker that
went away, and retry. :meth:`KafkaProxy.restore` lets them in again. The broker must
advertise the proxy's address (``TansuService(advertised_port=...)``) so clients never
bypass it. Runs its own event loop on a thread, so the test's loop cannot delay its traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

__all__ = ["KafkaProxy"]

_CHUNK = 1 << 16


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    broker: asyncio.StreamWriter
    pending: int = 0  # requests sent to the broker and not yet answered
    answered: asyncio.Event = field(default_factory=asyncio.Event)


class KafkaProxy:
    """Forward ``127.0.0.1:port`` to ``upstream_port`` until :meth:`drain`; :meth:`close` at
    the end. ``port`` is chosen at construction, so the broker can advertise it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self._listener = listener
        self.port: int = listener.getsockname()[1]
        self._links: set[_Link] = set()
        self._open = True
        self._loop = asyncio.new_event_loop()
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="kafka-proxy", daemon=True
        )
        self._thread.start()
        started.result(timeout=10)

    # -- control (from any thread) -----------------------------------------------------------

    def drain(self, timeout_s: float = 60.0) -> float:
        """Refuse new requests, wait until every request the broker received is answered,
        then cut all connections. Returns the seconds the wait took; raises TimeoutError."""
        started = time.monotonic()
        asyncio.run_coroutine_threadsafe(self._drain(timeout_s), self._loop).result()
        return time.monotonic() - started

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._loop.call_soon_threadsafe(setattr, self, "_open", True)

    def close(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- the proxy's own loop ----------------------------------------------------------------

    def _serve(self, started: Future[None]) -> None:
        asyncio.set_event_loop(self._loop)

        async def listen() -> asyncio.Server:
            return await asyncio.start_server(self._accept, sock=self._listener)

        server = self._loop.run_until_complete(listen())
        started.set_result(None)
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._requests(reader, link), self._responses(up_reader, link))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.discard(link)
            link.answered.set()
            for w in (writer, up_writer):
                w.close()

    async def _requests(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Client -> broker, one whole frame at a time, while the proxy is open."""
        while True:
            frame = await _frame(reader)
            if not self._open:
                return  # drained: the request never reaches the broker; the client retries
            link.pending += 1
            link.answered.clear()
            link.broker.write(frame)
            await link.broker.drain()

    async def _responses(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Broker -> client; each frame answers one request."""
        while True:
            frame = await _frame(reader)
            link.pending = max(0, link.pending - 1)
            if link.pending == 0:
                link.answered.set()
            link.client.write(frame)
            await link.client.drain()

    async def _drain(self, timeout_s: float) -> None:
        self._open = False
        links = [link for link in self._links if link.pending]
        if links:
            await asyncio.wait_for(
                asyncio.gather(*(link.answered.wait() for link in links)), timeout_s
            )
        await self._cut()

    async def _cut(self) -> None:
        self._open = False
        for link in list(self._links):
            for w in (link.client, link.broker):
                with contextlib.suppress(Exception):
                    w.close()
        self._links.clear()


async def _frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    (size,) = struct.unpack(">i", head)
    return head + await reader.readexactly(size)
