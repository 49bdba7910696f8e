"""RpcClient and iter_logs against a real local aiohttp server that misbehaves on demand."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from dnft.rpc import (
    RangeTooLargeError,
    ResponseTooLargeError,
    RetryPolicy,
    RpcClient,
    RpcGiveUpError,
    RpcHttpError,
    RpcNodeError,
    get_block_headers,
    iter_logs,
)
from tests.support.rpcnode import FakeNode, Recorder

FAST_RETRY = RetryPolicy(max_attempts=5, budget_s=5.0, base_delay_s=0.01, max_delay_s=0.05)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server() -> AsyncIterator[tuple[FakeNode, str]]:
    node = FakeNode()
    app = web.Application()
    app.router.add_post("/", node.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield node, str(test_server.make_url("/"))
    await test_server.close()


@pytest.fixture
def node(server: tuple[FakeNode, str]) -> FakeNode:
    server[0].reset()
    return server[0]


@pytest.fixture
def url(server: tuple[FakeNode, str]) -> str:
    return server[1]


def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def client(urls: str | list[str], **kw: Any) -> RpcClient:
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("timeout_s", 2.0)
    return RpcClient(urls, **kw)


class TestCall:
    """Single calls: results, node errors and every retried misbehaviour."""

    async def test_ok(self, node: FakeNode, url: str) -> None:
        async with client(url) as rpc:
            assert await rpc.call("eth_blockNumber") == "0x10"
            assert await rpc.call("echo", [1, "a"]) == [1, "a"]

    async def test_node_error_is_not_retried(self, node: FakeNode, url: str) -> None:
        async with client(url) as rpc:
            with pytest.raises(RpcNodeError) as info:
                await rpc.call("fail")
        assert info.value.code == -32601
        assert len(node.bodies) == 1

    @pytest.mark.parametrize("misbehaviour", ["500", "drop", "cut_body", "truncated", "429"])
    async def test_retries_then_succeeds(self, node: FakeNode, url: str, misbehaviour: str) -> None:
        node.script = [misbehaviour, misbehaviour]
        recorder = Recorder()
        async with client(url, observer=recorder) as rpc:
            assert await rpc.call("eth_blockNumber") == "0x10"
        assert len(node.bodies) == 3
        assert recorder.outcomes[-1] == "ok"
        assert recorder.outcomes[0] in {"http_5xx", "connection", "bad_response", "rate_limited"}

    async def test_honours_retry_after(self, node: FakeNode, url: str) -> None:
        node.script = ["429"]
        async with client(url) as rpc:
            started = time.monotonic()
            await rpc.call("eth_blockNumber")
        assert time.monotonic() - started >= 0.3

    async def test_timeout_then_retry(self, node: FakeNode, url: str) -> None:
        node.script = ["slow"]
        recorder = Recorder()
        async with client(url, timeout_s=0.2, observer=recorder) as rpc:
            started = time.monotonic()
            assert await rpc.call("eth_blockNumber") == "0x10"
        assert time.monotonic() - started < 0.9
        assert recorder.outcomes == ["timeout", "ok"]

    async def test_gives_up_naming_method_and_redacted_endpoint(
        self, node: FakeNode, url: str
    ) -> None:
        node.script = ["500"] * 10
        secret_url = url + "?apikey=s3cr3t-k3y"
        async with client(secret_url) as rpc:
            with pytest.raises(RpcGiveUpError) as info:
                await rpc.call("eth_chainId")
        message = str(info.value)
        assert "eth_chainId" in message
        assert "127.0.0.1" in message
        assert "s3cr3t" not in message
        assert info.value.attempts == FAST_RETRY.max_attempts
        assert info.value.__cause__ is not None
        assert "s3cr3t" not in str(info.value.__cause__)

    async def test_time_budget(self, node: FakeNode, url: str) -> None:
        node.script = ["429"] * 10  # each asks for 0.3 s; a 0.5 s budget allows one wait
        policy = RetryPolicy(max_attempts=50, budget_s=0.5, base_delay_s=0.01)
        async with client(url, retry=policy) as rpc:
            with pytest.raises(RpcGiveUpError):
                await rpc.call("eth_blockNumber")
        assert len(node.bodies) == 2

    async def test_http_error_is_not_retried(self, node: FakeNode, url: str) -> None:
        node.script = ["401"]
        async with client(url) as rpc:
            with pytest.raises(RpcHttpError) as info:
                await rpc.call("eth_blockNumber")
        assert info.value.status == 401
        assert len(node.bodies) == 1


class TestFailover:
    """Dead or sick endpoints are skipped and cooled down."""

    async def test_dead_then_good(self, node: FakeNode, url: str) -> None:
        recorder = Recorder()
        dead = dead_url()
        async with client([dead, url], observer=recorder, cooldown_s=60) as rpc:
            assert await rpc.call("eth_blockNumber") == "0x10"
            assert await rpc.call("eth_blockNumber") == "0x10"
        assert [(s[1] == url, s[3]) for s in recorder.seen] == [
            (False, "connection"),
            (True, "ok"),
            (True, "ok"),  # the dead endpoint is cooling: not tried again
        ]

    async def test_5xx_fails_over_without_waiting(self, node: FakeNode, url: str) -> None:
        node.script = ["500"]
        recorder = Recorder()
        async with client([url, url + "?replica=2"], observer=recorder) as rpc:
            assert await rpc.call("eth_blockNumber") == "0x10"
        assert recorder.outcomes == ["http_5xx", "ok"]
        assert recorder.seen[1][1].endswith("replica=***")

    async def test_all_dead_gives_up(self) -> None:
        async with client([dead_url(), dead_url()]) as rpc:
            with pytest.raises(RpcGiveUpError, match="eth_blockNumber"):
                await rpc.call("eth_blockNumber")


class TestBatch:
    """JSON-RPC batches: matched by id, partial answers re-sent, item errors raised."""

    async def test_matches_by_id(self, node: FakeNode, url: str) -> None:
        async with client(url) as rpc:
            results = await rpc.batch([("echo", [i]) for i in range(50)])
        assert results == [[i] for i in range(50)]

    async def test_item_error(self, node: FakeNode, url: str) -> None:
        async with client(url) as rpc:
            with pytest.raises(RpcNodeError):
                await rpc.batch([("echo", [1]), ("fail", [])])
            mixed = await rpc.batch([("echo", [1]), ("fail", [])], return_exceptions=True)
        assert mixed[0] == [1]
        assert isinstance(mixed[1], RpcNodeError)

    async def test_missing_item_is_resent_alone(self, node: FakeNode, url: str) -> None:
        node.script = ["partial_batch"]
        async with client(url) as rpc:
            results = await rpc.batch([("echo", [i]) for i in range(5)])
        assert results == [[i] for i in range(5)]
        assert [len(b) for b in node.bodies] == [5, 1]

    async def test_whole_batch_refused(self, node: FakeNode, url: str) -> None:
        node.script = ["batch_error"]
        async with client(url) as rpc:
            with pytest.raises(RpcNodeError, match="batch too large"):
                await rpc.batch([("echo", [1])])

    async def test_in_flight_limit(self, node: FakeNode, url: str) -> None:
        node.delay = 0.03
        async with client(url, max_in_flight=3) as rpc:
            await asyncio.gather(*(rpc.call("echo", [i]) for i in range(20)))
        assert node.max_in_flight == 3

    async def test_block_headers(self, node: FakeNode, url: str) -> None:
        async with client(url) as rpc:
            headers = await get_block_headers(rpc, range(1, 451), batch_size=200)
        assert [h.number for h in headers] == list(range(1, 451))
        assert headers[9].parent_hash == f"0x{9:064x}"
        assert headers[9].timestamp == 1_700_000_000 + 120
        assert [len(b) for b in node.bodies] == [200, 200, 50]


async def collect(rpc: RpcClient, start: int, end: int, **kw: Any) -> list[Any]:
    chunks = [c async for c in iter_logs(rpc, ["0x" + "aa" * 20], None, start, end, **kw)]
    # Chunks tile the range exactly, in order.
    assert chunks[0].from_block == start
    assert chunks[-1].to_block == end
    for a, b in itertools.pairwise(chunks):
        assert b.from_block == a.to_block + 1
    return [log for chunk in chunks for log in chunk]


def expected_logs(start: int, end: int, density: int) -> list[tuple[int, int]]:
    return [(n, i) for n in range(start, end + 1) for i in range(density)]


def keys(logs: list[Any]) -> list[tuple[int, int]]:
    return [(int(x["blockNumber"], 16), int(x["logIndex"], 16)) for x in logs]


class TestIterLogs:
    """Ordered, concurrent, range-adaptive eth_getLogs."""

    async def test_order_under_concurrency(self, node: FakeNode, url: str) -> None:
        node.jitter = 0.01  # responses finish out of order
        async with client(url) as rpc:
            logs = await collect(rpc, 5, 1004, max_range=37, in_flight=6)
        assert keys(logs) == expected_logs(5, 1004, 2)

    @pytest.mark.parametrize("shape", ["alchemy", "infura", "wide", "timeout"])
    async def test_adapts_to_refusals(self, node: FakeNode, url: str, shape: str) -> None:
        node.max_results, node.refusal, node.jitter = 100, shape, 0.002
        async with client(url) as rpc:
            logs = await collect(rpc, 0, 2999, max_range=1000, in_flight=4)
        assert keys(logs) == expected_logs(0, 2999, 2)
        assert node.refused > 0
        # Once adapted, most requests fit: refusals stay a small share.
        assert node.refused < len(node.getlogs_ranges) / 3

    async def test_provider_block_cap_is_kept(self, node: FakeNode, url: str) -> None:
        node.max_blocks = 100
        async with client(url) as rpc:
            logs = await collect(rpc, 0, 1999, max_range=1000, in_flight=2)
        assert keys(logs) == expected_logs(0, 1999, 2)
        assert node.refused <= 2  # learnt from the message, never grown past it

    async def test_single_block_refused(self, node: FakeNode, url: str) -> None:
        node.max_results, node.density = 1, 5
        async with client(url) as rpc:
            with pytest.raises(RangeTooLargeError):
                await collect(rpc, 0, 10, max_range=4)

    async def test_memory_stays_flat(self, node: FakeNode, url: str) -> None:
        async with client(url) as rpc:
            consumed = 0
            async for chunk in iter_logs(rpc, [], None, 0, 499, max_range=10, in_flight=3):
                consumed += 1
                await asyncio.sleep(0.005)  # a slow consumer
                # Requested but not yet consumed chunks never exceed in_flight.
                assert len(node.getlogs_ranges) - consumed <= 3
                assert len(chunk) == 20
        assert consumed == 50

    async def test_close_cancels(self, node: FakeNode, url: str) -> None:
        node.delay = 0.05
        async with client(url) as rpc:
            gen = iter_logs(rpc, [], None, 0, 10_000, max_range=10, in_flight=4)
            await anext(gen)
            await gen.aclose()
            await asyncio.sleep(0.1)
            assert node.in_flight == 0
            assert len(node.getlogs_ranges) <= 5

    async def test_empty_range(self, node: FakeNode, url: str) -> None:
        async with client(url) as rpc:
            assert [c async for c in iter_logs(rpc, [], None, 10, 9)] == []


class TestResponseCap:
    """Bodies past ``max_response_bytes`` are cut off while arriving (a real server)."""

    async def test_endless_body_is_cut_while_streaming(self, node: FakeNode, url: str) -> None:
        node.script = ["endless"]
        async with client(url, max_response_bytes=1024 * 1024) as rpc:
            with pytest.raises(ResponseTooLargeError, match=r"networks\[\]\.max_response_bytes"):
                await rpc.call("eth_blockNumber")
        await asyncio.sleep(0.2)
        # Read up to the cap and stopped: never the whole GiB (socket buffers aside).
        assert node.streamed < 64 * 1024 * 1024

    async def test_declared_length_over_the_cap_is_refused(self, node: FakeNode, url: str) -> None:
        node.density = 50  # 100 blocks of logs: far over 4 KiB, sent with Content-Length
        recorder = Recorder()
        async with client(url, max_response_bytes=4096, observer=recorder) as rpc:
            with pytest.raises(ResponseTooLargeError):
                await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(100)])
        assert recorder.outcomes == ["too_large"]  # not retried: retrying cannot help

    async def test_too_large_logs_split_the_range(self, node: FakeNode, url: str) -> None:
        # Two logs of a few hundred bytes per block: a 16 KiB cap fits a few dozen blocks.
        async with client(url, max_response_bytes=16 * 1024) as rpc:
            logs = await collect(rpc, 0, 399, max_range=400, in_flight=2)
        assert keys(logs) == expected_logs(0, 399, 2)
        assert max(end - start + 1 for start, end in node.getlogs_ranges) == 400
        assert len(node.getlogs_ranges) > 16  # split until the answers fit

    async def test_single_block_too_large(self, node: FakeNode, url: str) -> None:
        node.density = 100
        async with client(url, max_response_bytes=4096) as rpc:
            with pytest.raises(RangeTooLargeError, match="max_response_bytes"):
                await collect(rpc, 0, 3, max_range=4)
