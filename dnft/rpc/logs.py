"""Bulk chain reads for historical sync: ordered, concurrent, range-adaptive ``eth_getLogs``,
and block headers through JSON-RPC batches."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from dnft.rpc.client import RpcClient
from dnft.rpc.errors import BlockNotFoundError, RangeTooLargeError
from dnft.rpc.types import Header, RawLog

__all__ = ["LogChunk", "get_block_headers", "iter_logs"]

# Consecutive successful chunks before the range doubles again: after a refusal the range
# creeps back up slowly, so a dense stretch costs a few refusals, not one per chunk.
GROW_AFTER: Final = 8
HEADER_BATCH: Final = 200  # blocks per JSON-RPC batch; providers commonly cap batches at 1000


class LogChunk(list[RawLog]):
    """The logs of blocks ``from_block..to_block`` (inclusive), in the node's order.

    A plain list, plus the range it covers, so a caller can checkpoint ``to_block`` even
    when the chunk is empty.
    """

    __slots__ = ("from_block", "to_block")

    def __init__(self, logs: Iterable[RawLog], from_block: int, to_block: int) -> None:
        super().__init__(logs)
        self.from_block = from_block
        self.to_block = to_block

    def __repr__(self) -> str:
        return f"LogChunk(blocks={self.from_block}..{self.to_block}, logs={len(self)})"


@dataclass(slots=True)
class _Slot:
    start: int
    end: int
    task: asyncio.Task[list[RawLog]] | None = None

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def succeeded(self) -> bool:
        t = self.task
        return t is not None and t.done() and not t.cancelled() and t.exception() is None


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Mark failures of tasks we may cancel or drop unawaited as seen (no "never retrieved").
    if not task.cancelled():
        task.exception()


async def iter_logs(
    client: RpcClient,
    addresses: Sequence[str],
    topics: Sequence[Any] | None,
    from_block: int,
    to_block: int,
    *,
    max_range: int = 2000,
    in_flight: int = 4,
) -> AsyncGenerator[LogChunk, None]:
    """Yield the logs of ``from_block..to_block`` chunk by chunk, in block order.

    Up to ``in_flight`` ``eth_getLogs`` requests run at once, but chunks are yielded in
    order, each exactly once, and empty chunks are yielded too. At most ``in_flight``
    chunks are held (running or finished), whatever the consumer's pace: memory stays flat.

    A chunk the provider refuses (``RangeTooLargeError``) is split at the provider's
    suggested end block, or its stated cap, or in half, and later chunks use the smaller
    range; after ``GROW_AFTER`` successes in a row the range doubles again, never above
    ``max_range`` or a cap the provider stated. Raises ``RangeTooLargeError`` when a single
    block is refused, and any other ``RpcError`` from the client (transient failures have
    already been retried there). Closing the generator (``aclose()``, or
    ``contextlib.aclosing`` around an ``async for`` that may break) cancels requests still
    running.
    """
    if max_range < 1 or in_flight < 1:
        raise ValueError("max_range and in_flight must be >= 1")
    base: dict[str, Any] = {}
    if addresses:
        base["address"] = list(addresses)
    if topics is not None:
        base["topics"] = list(topics)

    async def fetch(start: int, end: int) -> list[RawLog]:
        params = {**base, "fromBlock": hex(start), "toBlock": hex(end)}
        result: list[RawLog] = await client.call("eth_getLogs", [params])
        return result

    window: deque[_Slot] = deque()
    cursor = from_block
    cap = span = max_range
    successes = 0

    def start_tasks() -> None:
        nonlocal cursor
        while len(window) < in_flight and cursor <= to_block:
            end = min(cursor + span - 1, to_block)
            window.append(_Slot(cursor, end))
            cursor = end + 1
        for slot in itertools.islice(window, in_flight):
            if slot.task is None:
                slot.task = asyncio.create_task(fetch(slot.start, slot.end))
                slot.task.add_done_callback(_retrieve)

    def chop(start: int, end: int) -> Iterator[_Slot]:
        while start <= end:
            stop = min(start + span - 1, end)
            yield _Slot(start, stop)
            start = stop + 1

    def replan(head: _Slot, first: int) -> None:
        # After a refusal: the head becomes ``first`` blocks plus span-sized pieces, and
        # every later chunk that has not succeeded and is bigger than the new span is cut
        # likewise (it would only be refused too). Chunks that already succeeded are kept.
        # The window is then cut back to in_flight slots and the cursor rewound to the first
        # block dropped, which keeps memory bounded and lets dropped blocks be re-planned
        # with whatever span applies when they are reached.
        nonlocal cursor
        later = list(window)[1:]
        window.clear()

        def planned() -> Iterator[_Slot]:
            yield _Slot(head.start, head.start + first - 1)
            yield from chop(head.start + first, head.end)
            for slot in later:
                if slot.succeeded() or slot.size <= span:
                    yield slot
                else:
                    yield from chop(slot.start, slot.end)

        for slot in planned():
            if len(window) == in_flight:
                cursor = slot.start
                break
            window.append(slot)
        kept = {id(slot) for slot in window}
        for slot in later:
            if id(slot) not in kept and slot.task is not None:
                slot.task.cancel()

    try:
        while True:
            start_tasks()
            if not window:
                return
            head = window[0]
            assert head.task is not None
            try:
                logs = await head.task
            except RangeTooLargeError as exc:
                if head.size == 1:
                    raise
                if exc.max_range is not None:
                    cap = min(cap, exc.max_range)
                if exc.suggested_to is not None and head.start <= exc.suggested_to < head.end:
                    first = exc.suggested_to - head.start + 1
                else:
                    first = max(1, head.size // 2)
                first = min(first, cap)
                span, successes = first, 0
                replan(head, first)
                continue
            window.popleft()
            successes += 1
            if successes >= GROW_AFTER and span < cap:
                span, successes = min(cap, span * 2), 0
            yield LogChunk(logs, head.start, head.end)
    finally:
        for slot in window:
            if slot.task is not None:
                slot.task.cancel()


async def get_block_headers(
    client: RpcClient,
    numbers: Iterable[int],
    *,
    batch_size: int = HEADER_BATCH,
    in_flight: int = 4,
) -> list[Header]:
    """Fetch headers for ``numbers`` (in that order) with ``eth_getBlockByNumber`` batches.

    Runs up to ``in_flight`` batches at once. Raises ``BlockNotFoundError`` for a height the
    node does not have, and any ``RpcError`` from the client.
    """
    if batch_size < 1 or in_flight < 1:
        raise ValueError("batch_size and in_flight must be >= 1")
    wanted = list(numbers)
    batches = [wanted[i : i + batch_size] for i in range(0, len(wanted), batch_size)]

    async def fetch(batch: list[int]) -> list[Header]:
        blocks = await client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in batch])
        headers = []
        for number, block in zip(batch, blocks, strict=True):
            if block is None:
                raise BlockNotFoundError(number)
            headers.append(
                Header(
                    number=int(block["number"], 16),
                    hash=block["hash"],
                    parent_hash=block["parentHash"],
                    timestamp=int(block["timestamp"], 16),
                )
            )
        return headers

    out: list[Header] = []
    for i in range(0, len(batches), in_flight):
        tasks = [asyncio.create_task(fetch(b)) for b in batches[i : i + in_flight]]
        try:
            for headers in await asyncio.gather(*tasks):
                out.extend(headers)
        finally:
            for task in tasks:  # on failure, stop the sibling batches too
                task.cancel()
    return out
