"""The RPC layer and the decoder against a real anvil node.

Logs come from two hand-assembled contracts (there is no Solidity compiler on the Python
side): ``LOOP`` emits N ERC-20 ``Transfer`` logs per call, ``EMIT3`` emits one LOG3 with
the topics and data given in calldata, so tests can emit any 2-indexed-argument event.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3

from dnft.devservices import AnvilService
from dnft.rpc import RpcClient, get_block_headers, iter_logs
from indexer import EventDecoder
from tests.support.abi import TRANSFER, event_abi, normalise_web3

TRANSFER_SIG = "Transfer(address,address,uint256)"
TRANSFER_TOPIC = keccak(text=TRANSFER_SIG)


# --- a tiny EVM assembler -------------------------------------------------------------------

OPCODES = {
    "STOP": 0x00, "ADD": 0x01, "SUB": 0x03, "EQ": 0x14, "CALLER": 0x33,
    "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36, "CALLDATACOPY": 0x37, "CODECOPY": 0x39,
    "MSTORE": 0x52, "JUMP": 0x56, "JUMPI": 0x57, "JUMPDEST": 0x5B, "DUP1": 0x80,
    "LOG0": 0xA0, "LOG1": 0xA1, "LOG2": 0xA2, "LOG3": 0xA3, "LOG4": 0xA4, "RETURN": 0xF3,
}  # fmt: skip


def asm(*items: str | int | bytes) -> bytes:
    """Assemble opcodes (names), ``:label`` definitions, ``@label`` jumps targets (PUSH1),
    ints (PUSH1) and bytes (PUSH<len>). Code must stay under 256 bytes."""

    def size(item: str | int | bytes) -> int:
        if isinstance(item, str):
            return 0 if item.startswith(":") else 2 if item.startswith("@") else 1
        return 2 if isinstance(item, int) else 1 + len(item)

    labels: dict[str, int] = {}
    position = 0
    for item in items:
        if isinstance(item, str) and item.startswith(":"):
            labels[item[1:]] = position
        position += size(item)
    out = bytearray()
    for item in items:
        if isinstance(item, bytes):
            out += bytes([0x5F + len(item)]) + item
        elif isinstance(item, int):
            out += bytes([0x60, item])
        elif item.startswith("@"):
            out += bytes([0x60, labels[item[1:]]])
        elif not item.startswith(":"):
            out.append(OPCODES[item])
    assert len(out) < 256
    return bytes(out)


def creation(runtime: bytes) -> bytes:
    """Init code that deploys ``runtime`` as the contract's code."""
    head = asm(len(runtime), "DUP1", 11, 0, "CODECOPY", 0, "RETURN")
    assert len(head) == 11
    return head + runtime


# calldata: uint256 n -> emits Transfer(caller, address(i), i) for i in 0..n-1
LOOP = asm(
    0,
    ":loop", "JUMPDEST",
    "DUP1", 0, "CALLDATALOAD", "EQ", "@end", "JUMPI",
    "DUP1", 0, "MSTORE",
    "DUP1", "CALLER", TRANSFER_TOPIC, 32, 0, "LOG3",
    1, "ADD", "@loop", "JUMP",
    ":end", "JUMPDEST", "STOP",
)  # fmt: skip

# calldata: topic0 | topic1 | topic2 | data... -> LOG3(data, topic0, topic1, topic2)
EMIT3 = asm(
    64, "CALLDATALOAD", 32, "CALLDATALOAD", 0, "CALLDATALOAD",
    96, "CALLDATASIZE", "SUB",
    "DUP1", 96, 0, "CALLDATACOPY",
    0, "LOG3", "STOP",
)  # fmt: skip


# --- anvil ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anvil_url(anvil: AnvilService) -> str:
    """The session's shared anvil (tests/integration/conftest.py): other modules' blocks and
    logs may be there too, so every read below is scoped to this module's blocks."""
    return anvil.rpc_url


@pytest_asyncio.fixture(loop_scope="session")
async def rpc(anvil_url: str) -> AsyncIterator[RpcClient]:
    async with RpcClient(anvil_url, max_in_flight=8) as client:
        yield client


class Chain:
    """Sends transactions from anvil's first unlocked account."""

    def __init__(self, rpc: RpcClient, account: str) -> None:
        self.rpc, self.account = rpc, account

    async def send(self, to: str | None, data: bytes) -> dict[str, Any]:
        tx = {"from": self.account, "data": "0x" + data.hex(), "gas": hex(10_000_000)}
        if to is not None:
            tx["to"] = to
        # Returns the receipt once mined (anvil automines each transaction in ~45 ms).
        receipt: dict[str, Any] = await self.rpc.call("eth_sendTransactionSync", [tx])
        assert receipt["status"] == "0x1"
        return receipt

    async def deploy(self, runtime: bytes) -> str:
        address: str = (await self.send(None, creation(runtime)))["contractAddress"]
        return address

    async def head(self) -> int:
        return int(await self.rpc.call("eth_blockNumber"), 16)


@pytest_asyncio.fixture(loop_scope="session")
async def chain(rpc: RpcClient) -> Chain:
    (account, *_) = await rpc.call("eth_accounts")
    return Chain(rpc, account)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def transfers(anvil_url: str) -> dict[str, Any]:
    """~4,500 Transfer logs from 15 transactions, with empty blocks between them."""
    async with RpcClient(anvil_url) as client:
        (account, *_) = await client.call("eth_accounts")
        c = Chain(client, account)
        loop = await c.deploy(LOOP)
        first = await c.head() + 1
        for _ in range(15):
            await c.send(loop, encode(["uint256"], [300]))
            await client.call("anvil_mine", [hex(3)])
        return {"address": loop, "from": first, "to": await c.head()}


class TestLogs:
    """iter_logs and get_block_headers agree with plain single reads."""

    async def test_iter_logs_equals_one_read(
        self, rpc: RpcClient, transfers: dict[str, Any]
    ) -> None:
        flt = {"address": transfers["address"], "fromBlock": hex(transfers["from"]),
               "toBlock": hex(transfers["to"])}  # fmt: skip
        single = await rpc.call("eth_getLogs", [flt])
        assert len(single) == 15 * 300
        chunks = [
            chunk
            async for chunk in iter_logs(
                rpc, [transfers["address"]], ["0x" + TRANSFER_TOPIC.hex()],
                transfers["from"], transfers["to"], max_range=3, in_flight=4,
            )
        ]  # fmt: skip
        assert [log for chunk in chunks for log in chunk] == single
        assert chunks[0].from_block == transfers["from"]
        assert chunks[-1].to_block == transfers["to"]

    async def test_iter_logs_with_no_filter(
        self, rpc: RpcClient, transfers: dict[str, Any]
    ) -> None:
        single = await rpc.call(
            "eth_getLogs",
            [{"fromBlock": hex(transfers["from"] - 1), "toBlock": hex(transfers["to"])}],
        )
        first, last = transfers["from"] - 1, transfers["to"]
        chunks = iter_logs(rpc, [], None, first, last, max_range=7)
        streamed = [log async for chunk in chunks for log in chunk]
        assert streamed == single

    async def test_block_headers(self, rpc: RpcClient, transfers: dict[str, Any]) -> None:
        numbers = list(range(transfers["from"] - 1, transfers["to"] + 1))
        headers = await get_block_headers(rpc, numbers, batch_size=16)
        blocks = await asyncio.gather(
            *(rpc.call("eth_getBlockByNumber", [hex(n), False]) for n in numbers)
        )
        assert [h.number for h in headers] == numbers
        for header, block in zip(headers, blocks, strict=True):
            assert header.hash == block["hash"]
            assert header.parent_hash == block["parentHash"]
            assert header.timestamp == int(block["timestamp"], 16)
        for parent, child in itertools.pairwise(headers):
            assert child.parent_hash == parent.hash


RICH = event_abi(
    "Rich", ("who", "address", True), ("tag", "string", True), ("name", "string", False),
    ("blob", "bytes", False), ("ids", "uint256[]", False), ("delta", "int24", False),
    ("flag", "bool", False), ("code", "bytes4", False), ("s", "tuple", False),
)  # fmt: skip
RICH["inputs"][-1]["components"] = [
    {"name": "x", "type": "uint64"},
    {"name": "y", "type": "address"},
]
RICH_SIG = "Rich(address,string,string,bytes,uint256[],int24,bool,bytes4,(uint64,address))"


class TestDecodeParity:
    """Our decoder and web3.py's process_log agree on real logs read through web3."""

    async def test_parity(self, anvil_url: str, chain: Chain, transfers: dict[str, Any]) -> None:
        emitter = await chain.deploy(EMIT3)
        start = await chain.head()
        for i in range(12):
            data = encode(
                ["string", "bytes", "uint256[]", "int24", "bool", "bytes4", "(uint64,address)"],
                [f"token #{i} ✓", bytes(range(i)), list(range(i)), -(2**23) + i, i % 2 == 0,
                 b"\xde\xad\xbe\xef", (2**64 - 1 - i, "0x" + f"{i:040x}")],
            )  # fmt: skip
            topics = [keccak(text=RICH_SIG), encode(["address"], [chain.account]),
                      keccak(text=f"tag{i}")]  # fmt: skip
            await chain.send(emitter, b"".join(topics) + data)
        await chain.send(
            emitter, TRANSFER_TOPIC + bytes(12) + bytes([1]) * 20 + bytes(32) + bytes(32)
        )

        addresses = [Web3.to_checksum_address(a) for a in (transfers["address"], emitter)]

        def read_with_web3() -> list[Any]:
            w3 = Web3(HTTPProvider(anvil_url))
            contract = w3.eth.contract(abi=[RICH, TRANSFER])
            logs = w3.eth.get_logs(
                {"address": addresses, "fromBlock": transfers["from"], "toBlock": "latest"}
            )
            out = []
            for log in logs:
                topic0 = log["topics"][0]
                event = (
                    contract.events.Rich
                    if topic0 == keccak(text=RICH_SIG)
                    else contract.events.Transfer
                )
                out.append(event().process_log(log))
            return out

        theirs = await asyncio.to_thread(read_with_web3)
        flt = {"address": addresses, "fromBlock": hex(transfers["from"]), "toBlock": "latest"}
        raw = await chain.rpc.call("eth_getLogs", [flt])
        decoder = EventDecoder.from_abi([RICH, TRANSFER])
        ours = [decoder.decode(log) for log in raw]
        assert len(ours) == len(theirs) == 15 * 300 + 13
        assert sum(1 for e in ours if e is not None and e.name == "Rich") == 12
        assert all(e is not None and e.block_number > start for e in ours[-13:])
        for mine, web3_event in zip(ours, theirs, strict=True):
            assert mine is not None
            assert mine.name == web3_event["event"]
            assert mine.args == normalise_web3(dict(web3_event["args"]))
            assert mine.block_number == web3_event["blockNumber"]
            assert mine.log_index == web3_event["logIndex"]
            assert mine.block_hash == "0x" + web3_event["blockHash"].hex()
            assert mine.tx_hash == "0x" + web3_event["transactionHash"].hex()
            assert mine.address == web3_event["address"].lower()
