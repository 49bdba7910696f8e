"""Security checks against real processes and servers: the signer key stays out of a running
pusher's logs, metrics and core dumps; feeds cannot reach loopback through any spelling of it;
oversized requests to the API are refused and the server keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from dnft.config import HttpFeedSettings
from dnft.devservices import AnvilService, PostgresService
from dnft.devservices.ports import free_port
from oracle_feeds import HttpFeed, Rejected
from tests.support.api import ApiWorld, api_world
from tests.support.chain import make_world
from tests.support.cli import write_config
from tests.support.daemon import DaemonProcess
from tests.support.messages import event
from tests.support.oracle import FeedServer, http_feed
from tests.support.pusher import PusherConfigFor, funded_updater


def core_limit(pid: int) -> str:
    """The 'Max core file size' line of /proc/PID/limits (soft and hard)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split()[4:6])
    raise AssertionError("no core limit line")


class TestPusherKeySecrecy:
    """A running `dnft pusher`: no core dumps, and its key in neither logs nor /metrics."""

    async def test_running_pusher(
        self, fresh_anvil: AnvilService, pusher_config_for: PusherConfigFor, tmp_path: Path
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url)
        updater = await funded_updater(world)
        port = free_port()
        config = write_config(
            tmp_path / "dnft.yaml", pusher_config_for(world, updater, http_port=port)
        )
        log = tmp_path / "pusher.log"
        daemon = DaemonProcess("pusher", config, port, log)
        daemon.start()
        try:

            async def serving() -> bool:
                return "dnft_daemon_leader" in await daemon.metrics_text()

            await daemon.until(serving, 60, "the pusher's /metrics")
            assert daemon.proc is not None
            assert core_limit(daemon.proc.pid) == "0 0", "core dumps are off (soft and hard)"
            metrics = await daemon.metrics_text()
        finally:
            if daemon.alive():
                daemon.terminate()
        text = log.read_text()
        assert '"secrets_protected"' in text
        assert '"not_dumpable": true' in text, "prctl(PR_SET_DUMPABLE, 0) succeeded"
        key = updater.key_hex.lower()
        for where, content in (("log", text), ("/metrics", metrics)):
            lowered = content.lower()
            assert key not in lowered, f"the key is in the {where}"
            assert key[:16] not in lowered, f"part of the key is in the {where}"
        assert updater.address.lower() in text.lower(), "the log names the signer by address"


LOOPBACK_SPELLINGS = [
    "2130706433",  # 127.0.0.1 as one decimal number
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",  # hex
    "0x7f000001",
    "127.1",  # short form
    "localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
]


class TestFeedSsrf:
    """Every spelling of loopback is refused before a request reaches the server."""

    @pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
    async def test_loopback_spellings(self, server: FeedServer, host: str) -> None:
        server.serve("eth", server.price("1"))
        raw = http_feed(server, "ssrf", allow_private_hosts=False, url=server.url("eth", host))
        feed = HttpFeed(HttpFeedSettings.model_validate(raw))
        try:
            with pytest.raises(Rejected) as info:
                await feed.read()
        finally:
            await feed.close()
        assert info.value.reason == "blocked_host", info.value
        assert server.count("eth") == 0, "no request reached the server"

    @pytest.mark.parametrize("host", ["2130706433", "[::ffff:127.0.0.1]", "localhost"])
    async def test_redirect_to_loopback_spelling(self, server: FeedServer, host: str) -> None:
        """Even with loopback allowed (the configured host is 127.0.0.1), a redirect to another
        spelling of it is another origin: refused, never followed."""
        server.serve("old", server.redirect(server.url("eth", host)))
        server.serve("eth", server.price("1"))
        feed = HttpFeed(HttpFeedSettings.model_validate(http_feed(server, "ssrf-r", path="old")))
        try:
            with pytest.raises(Rejected) as info:
                await feed.read()
        finally:
            await feed.close()
        assert info.value.reason == "redirect"
        assert server.count("eth") == 0


@pytest.fixture(scope="module")
async def small_world(
    postgres: PostgresService, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiWorld]:
    """One rendered token, served by a real `dnft api` server."""
    root = tmp_path_factory.mktemp("api-security")
    async with api_world(postgres, kafka_bootstrap, root) as w:
        assert await w.maker.step([event(1, "Transfer", 1, to="0xaa")]) == [1]
        yield w


async def status_of(url: str | URL, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        await response.read()
        return response.status


class TestApiOversizedInput:
    """Oversized paths, queries and headers are refused (4xx), and the API keeps serving."""

    @pytest.mark.parametrize(
        ("path", "headers"),
        [
            ("/tokens/" + "1" * 20_000, None),  # request line beyond the parser's limit
            ("/tokens/" + "9" * 5_000, None),
            ("/tokens/1/versions?after=" + "9" * 5_000, None),
            ("/tokens/1/versions?limit=" + "9" * 5_000, None),
            ("/tokens/1/versions?" + "&".join(f"a{i}=1" for i in range(1_500)), None),
            ("/images/" + "a" * 10_000, None),
            ("/tokens/1", {"X-Big": "x" * 20_000}),  # one header beyond the limit
            ("/tokens/1", {"If-None-Match": '"' + "a" * 9_000 + '"'}),
        ],
    )
    async def test_refused_and_still_serving(
        self, small_world: ApiWorld, path: str, headers: dict[str, str] | None
    ) -> None:
        url = URL(small_world.base + path, encoded=True)
        try:
            status = await status_of(url, headers)
        except aiohttp.ClientError:
            status = 0  # the server closed the connection on it: refused too
        assert status in (0, 400, 404, 413, 414, 431), (path[:60], status)
        assert await status_of(f"{small_world.base}/tokens/1") == 200

    async def test_many_connections_with_huge_headers(self, small_world: ApiWorld) -> None:
        async def one() -> int:
            try:
                return await status_of(f"{small_world.base}/tokens/1", {"X-Big": "y" * 60_000})
            except aiohttp.ClientError:
                return 0

        statuses = await asyncio.gather(*(one() for _ in range(50)))
        assert all(s in (0, 400, 431) for s in statuses), statuses
        assert await status_of(f"{small_world.base}/tokens/1") == 200
