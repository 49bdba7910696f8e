"""Backfill's fetch, decode and serialise (``historical.read_range``), in a child process: the
parent only produces.

Why a process: the indexer is bound by Python's GIL, and kafka-python's per-record send is
most of it (bench/indexer_backfill.py). Fetching, JSON parsing, decoding and serialising
moved to a child leave the parent's GIL to the producer. Chunks cross the pipe as one blob
(keys, values and event ids concatenated) plus their end offsets: slicing memoryviews in
the parent is far cheaper than unpickling thousands of small objects.

The child ends with its parent: PR_SET_PDEATHSIG (Linux), and a broken pipe on the next
send elsewhere. It never touches Kafka or Postgres: a kill -9 anywhere loses nothing, the
parent checkpoints only what Kafka acknowledged.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ctypes
import multiprocessing
import pickle
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from dnft.config import Settings
from dnft.errors import DnftError
from dnft.logging import configure_logging
from dnft.rpc import RpcClient
from indexer.encode import ChunkEncoder
from indexer.sync.historical import read_range

_PR_SET_PDEATHSIG = 1


class BackfillWorkerError(DnftError, RuntimeError):
    """The backfill worker failed (its error, as it reported it) or died."""


@dataclass(slots=True)
class EncodedChunk:
    """One fetched range, ready to produce: (key, value, event id) records in log order."""

    from_block: int
    to_block: int
    records: list[tuple[memoryview, memoryview, bytes]]
    counts: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    reasons: list[str] = field(default_factory=list)
    # RPC attempts made for this chunk: (method, endpoint, seconds, outcome).
    rpc: list[tuple[str, str, float, str]] = field(default_factory=list)
    cuts: dict[str, int] = field(default_factory=dict)  # values cut to size, per event name


class _RecordingObserver:
    """RPC observations, kept to be sent to the parent's metrics with the next chunk."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float, str]] = []

    def on_request(self, method: str, endpoint: str, seconds: float, outcome: str) -> None:
        self.seen.append((method, endpoint, seconds, outcome))


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(conn: Connection, settings: Settings, network: str, start: int, end: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    configure_logging(settings.log_level)  # a spawned child: warnings (cut batches) as JSON
    try:
        asyncio.run(_fetch_all(conn, settings, network, start, end))
        conn.send_bytes(pickle.dumps(("done", None)))
    except BrokenPipeError:
        return
    except BaseException as exc:  # reported to the parent, which raises it
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


async def _fetch_all(
    conn: Connection, settings: Settings, network: str, start: int, end: int
) -> None:
    net = settings.network(network)
    encoder = ChunkEncoder.from_settings(settings, network)
    observer = _RecordingObserver()
    client = RpcClient(
        net.rpc_urls,
        timeout_s=net.request_timeout_s,
        max_in_flight=net.max_in_flight * 2,
        max_response_bytes=net.max_response_bytes,
        observer=observer,
    )
    try:
        async with contextlib.aclosing(read_range(client, encoder, net, start, end)) as chunks:
            async for chunk in chunks:
                encoded = chunk.encode()
                ends = array.array("Q")
                parts: list[bytes] = []
                position = 0
                for triple in encoded.messages:
                    for part in triple:
                        parts.append(part)
                        position += len(part)
                        ends.append(position)
                meta = (
                    chunk.from_block,
                    chunk.to_block,
                    encoded.counts,
                    encoded.undecodable,
                    encoded.reasons,
                    observer.seen,
                    encoded.cuts,
                )
                observer.seen = []
                conn.send_bytes(pickle.dumps(("chunk", meta)))
                conn.send_bytes(ends.tobytes())
                conn.send_bytes(b"".join(parts))
    finally:
        await client.close()


def _records(ends_raw: bytes, blob: bytes) -> list[tuple[memoryview, memoryview, bytes]]:
    ends = array.array("Q")
    ends.frombytes(ends_raw)
    view = memoryview(blob)
    out: list[tuple[memoryview, memoryview, bytes]] = []
    previous = 0
    bounds = iter(ends)
    for key_end in bounds:
        value_end = next(bounds)
        id_end = next(bounds)
        out.append((view[previous:key_end], view[key_end:value_end], blob[value_end:id_end]))
        previous = id_end
    return out


class BackfillWorker:
    """The child process for one backfill range; iterate ``chunks()`` in block order."""

    def __init__(self, settings: Settings, network: str, start: int, end: int) -> None:
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        self._conn, child_conn = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_child,
            args=(child_conn, settings, network, start, end),
            name=f"dnft-backfill-{network}",
            daemon=True,
        )
        self._process.start()
        child_conn.close()

    def _receive(self) -> Any:
        try:
            # Our own child's pipe, not outside data; the child never reads untrusted pickles.
            kind, meta = pickle.loads(self._conn.recv_bytes())  # noqa: S301
            if kind != "chunk":
                return kind, meta
            return kind, (meta, self._conn.recv_bytes(), self._conn.recv_bytes())
        except EOFError:
            return "error", f"the backfill worker died (exit code {self._process.exitcode})"

    async def chunks(self) -> AsyncIterator[EncodedChunk]:
        """Encoded chunks until the range is done; raises BackfillWorkerError on failure."""
        while True:
            kind, payload = await asyncio.to_thread(self._receive)
            if kind == "done":
                return
            if kind == "error":
                raise BackfillWorkerError(str(payload))
            meta, ends, blob = payload
            from_block, to_block, counts, undecodable, reasons, rpc, cuts = meta
            yield EncodedChunk(
                from_block, to_block, _records(ends, blob), counts, undecodable, reasons, rpc, cuts
            )

    async def aclose(self) -> None:
        """Stop the child and release the pipe. The child holds nothing worth a graceful exit
        (the parent produced and checkpoints), so it is killed rather than waited for: its
        interpreter shutdown took 1.4 s, which a blocking join spent on the event loop."""
        if self._process.is_alive():
            self._process.kill()
        await asyncio.to_thread(self._process.join, 5)
        self._conn.close()
