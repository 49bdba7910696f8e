"""The JSON-RPC calls the pusher makes, over the indexer's client (retry, failover, caps).

Quantities come back as ints and hashes as lowercase 0x-hex. Node refusals raise
``RpcNodeError`` (e.g. "nonce too low"), exhausted retries ``RpcGiveUpError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dnft.rpc import RpcClient, RpcNodeError


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    # The lowercase addresses of the receipt's logs, one per log: whether the called contract
    # emitted anything (an announcement nobody can see is worth a warning).
    log_addresses: tuple[str, ...] = ()


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class Chain:
    def __init__(self, client: RpcClient) -> None:
        self._client = client

    async def chain_id(self) -> int:
        return _int(await self._client.call("eth_chainId"))

    async def head(self) -> int:
        return _int(await self._client.call("eth_blockNumber"))

    async def tagged_block(self, tag: str) -> int:
        """The number of the node's ``safe`` or ``finalized`` block; -1 when the node has none
        yet (a young chain): nothing is that final."""
        block = await self._client.call("eth_getBlockByNumber", [tag, False])
        return -1 if block is None else _int(block["number"])

    async def base_fee(self) -> int:
        block = await self._client.call("eth_getBlockByNumber", ["latest", False])
        return _int(block.get("baseFeePerGas") or 0)

    async def nonce(self, address: str, tag: str) -> int:
        """Transactions of ``address`` in ``latest`` blocks or also ``pending`` in the pool."""
        return _int(await self._client.call("eth_getTransactionCount", [address, tag]))

    async def balance(self, address: str) -> int:
        return _int(await self._client.call("eth_getBalance", [address, "latest"]))

    async def estimate_gas(self, sender: str, to: str, data: bytes) -> int:
        """Raises RpcNodeError when the call reverts (the message says why)."""
        call = {"from": sender, "to": to, "data": "0x" + data.hex()}
        return _int(await self._client.call("eth_estimateGas", [call]))

    async def send_raw(self, raw: bytes) -> str | None:
        """Broadcast; returns None when accepted, else the node's reason. A refusal is not an
        error here: "already known" or "nonce too low" after a crash are expected, and the
        receipts tell what happened."""
        try:
            await self._client.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        except RpcNodeError as exc:
            return exc.message
        return None

    async def receipts(self, hashes: list[str]) -> dict[str, Receipt]:
        """Receipts of the mined ones among ``hashes`` (one batch request)."""
        if not hashes:
            return {}
        results = await self._client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        out: dict[str, Receipt] = {}
        for h, r in zip(hashes, results, strict=True):
            if r and r.get("blockNumber") is not None:
                out[h] = Receipt(
                    tx_hash=h,
                    block=_int(r["blockNumber"]),
                    block_hash=str(r["blockHash"]).lower(),
                    status=_int(r.get("status", 1)),
                    gas_used=_int(r["gasUsed"]),
                    effective_gas_price=_int(r.get("effectiveGasPrice") or 0),
                    log_addresses=tuple(
                        str(entry.get("address", "")).lower() for entry in r.get("logs") or ()
                    ),
                )
        return out

    async def block_hash(self, number: int) -> str | None:
        block = await self._client.call("eth_getBlockByNumber", [hex(number), False])
        return None if block is None else str(block["hash"]).lower()
