"""Chainlink ``AggregatorV3Interface`` feeds, read with raw JSON-RPC.

Each read asks for the head, then for ``AnswerUpdated`` logs since the previous read; the
newest becomes the reading (rounds that came and went between two reads are folded into the
latest, as a polled price would be). Without a new log (and on the first read) the reading
is ``latestRoundData()`` at the head block. Answers are scaled by ``decimals()``.

Provenance: the sha256 of the ABI-encoded ``latestRoundData`` return data (anyone can repeat
the ``eth_call`` at the recorded block), or of the log's canonical JSON (sorted keys).
Reorgs are not tracked: a reading from an orphaned block stays published until the next one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from decimal import Decimal
from typing import Any, Final

import orjson
from eth_abi.abi import decode

from dnft import metrics
from dnft.config import ChainlinkFeedSettings, NetworkSettings
from dnft.errors import RpcError
from dnft.rpc import RetryPolicy, RpcClient
from oracle_feeds.types import Clock, Reading, SourceObservation, SystemClock
from oracle_feeds.validate import Rejected

# keccak256("AnswerUpdated(int256,uint256,uint256)"): Chainlink's AggregatorInterface event.
ANSWER_UPDATED_TOPIC: Final = "0x0559884fd3a460db3073b7fc896cc77986f16e378210ded43186175bf646fc5f"
LATEST_ROUND_DATA: Final = "0xfeaf968c"  # selector of latestRoundData()
DECIMALS: Final = "0x313ce567"  # selector of decimals()


class ChainlinkFeed:
    """Implements ``oracle_feeds.types.Feed`` for ``kind: chainlink``."""

    def __init__(
        self,
        settings: ChainlinkFeedSettings,
        network: NetworkSettings,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._address = settings.address.lower()
        self.source_name = f"chainlink:{network.name}:{self._address}"
        self._client = RpcClient(
            network.rpc_urls,
            timeout_s=settings.timeout_s,
            max_in_flight=4,
            retry=RetryPolicy(max_attempts=3, budget_s=settings.timeout_s),
        )
        self._decimals: int | None = None
        self._next_block: int | None = None

    @property
    def id(self) -> str:
        return self._settings.id

    async def read(self) -> Reading:
        """Raises ``Rejected`` (``rpc_error``, ``timeout``, ``malformed``, ``stale``)."""
        timeout_s = self._settings.timeout_s
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                return await self._read()
        except TimeoutError:
            raise Rejected("timeout", f"aggregator read took over {timeout_s:g} s") from None
        except RpcError as exc:
            raise Rejected("rpc_error", str(exc)) from None
        finally:
            metrics.oracle_request_seconds.labels(self.id).observe(time.perf_counter() - started)

    async def _read(self) -> Reading:
        head = _int(await self._client.call("eth_blockNumber"))
        if self._decimals is None:
            (self._decimals,) = _decode(["uint8"], await self._eth_call(DECIMALS, head))
        logs: list[dict[str, Any]] = []
        if self._next_block is not None and head >= self._next_block:
            logs = await self._client.call(
                "eth_getLogs",
                [
                    {
                        "address": self._address,
                        "topics": [ANSWER_UPDATED_TOPIC],
                        "fromBlock": hex(self._next_block),
                        "toBlock": hex(head),
                    }
                ],
            )
        reading = self._from_log(logs) if logs else await self._latest_round(head)
        self._next_block = head + 1
        return reading

    async def _latest_round(self, block: int) -> Reading:
        raw = await self._eth_call(LATEST_ROUND_DATA, block)
        round_id, answer, _started, updated_at, answered_in = _decode(
            ["uint80", "int256", "uint256", "uint256", "uint80"], raw
        )
        if updated_at == 0:
            raise Rejected("stale", f"round {round_id} is not complete (updatedAt 0)")
        if answered_in < round_id:
            raise Rejected("stale", f"round {round_id} was answered in older round {answered_in}")
        return self._reading(answer, updated_at, round_id, block, hashlib.sha256(raw).hexdigest())

    def _from_log(self, logs: list[dict[str, Any]]) -> Reading:
        log = max(logs, key=lambda e: (_int(e["blockNumber"]), _int(e["logIndex"])))
        topics = log["topics"]
        if len(topics) != 3:
            raise Rejected("malformed", f"AnswerUpdated log with {len(topics)} topics")
        (answer,) = _decode(["int256"], _hex_bytes(topics[1]))
        round_id = _int(topics[2])
        (updated_at,) = _decode(["uint256"], _hex_bytes(log["data"]))
        sha256 = hashlib.sha256(orjson.dumps(log, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return self._reading(answer, updated_at, round_id, _int(log["blockNumber"]), sha256)

    def _reading(
        self, answer: int, updated_at: int, round_id: int, block: int, sha256: str
    ) -> Reading:
        assert self._decimals is not None
        value = Decimal(answer).scaleb(-self._decimals)
        source = SourceObservation(
            source=self.source_name,
            value=value,
            response_sha256=sha256,
            observed_at=float(updated_at),
            block_number=block,
            source_round_id=round_id,
        )
        return Reading(self.id, value, float(updated_at), (source,))

    async def _eth_call(self, selector: str, block: int) -> bytes:
        result = await self._client.call(
            "eth_call", [{"to": self._address, "data": selector}, hex(block)]
        )
        return _hex_bytes(result)

    async def close(self) -> None:
        await self._client.close()


def _int(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise Rejected("malformed", f"expected a hex quantity, got {value!r}")
    return int(value, 16)


def _hex_bytes(value: Any) -> bytes:
    try:
        if isinstance(value, str) and value.startswith("0x"):
            return bytes.fromhex(value[2:])
    except ValueError:
        pass
    raise Rejected("malformed", f"expected 0x-prefixed hex data, got {str(value)[:40]!r}")


def _decode(types: list[str], data: bytes) -> tuple[Any, ...]:
    try:
        return tuple(decode(types, data))
    except Exception as exc:  # eth_abi raises several unrelated types for short/bad data
        raise Rejected(
            "malformed", f"cannot decode {len(data)} bytes as ({','.join(types)}): {exc}"
        ) from None
