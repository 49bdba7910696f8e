"""Security checks without outside servers: core dumps off for key holders; the SSRF guard
judges every IPv4-in-IPv6 and numeric spelling of an address, and every address a name
resolves to; node URLs are redacted in logs (against a local server refusing a handshake)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import subprocess
import sys
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.abc import ResolveResult
from aiohttp.test_utils import TestServer

from dnft.rpc import RpcClient, redact_url, scrub_urls
from indexer.sync.heads import HeadWatcher
from oracle_feeds.guard import GuardedResolver, HostGuard, address_problem, ip_literal
from oracle_feeds.validate import Rejected

CHILD = """
import ctypes, ctypes.util, resource
from dnft.hardening import protect_secrets
p = protect_secrets()
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
print(p.core_dumps_off, p.not_dumpable, resource.getrlimit(resource.RLIMIT_CORE),
      libc.prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE
"""


class TestCoreDumps:
    """protect_secrets leaves the process with no core dumps and not dumpable (kernel-checked)."""

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
    def test_child_process(self) -> None:
        out = subprocess.run(
            [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
        ).stdout.split("\n")[-2]
        assert out == "True True (0, 0) 0", out


class TestAddressSpellings:
    """IPv6 forms that carry an IPv4 address are judged as that address."""

    @pytest.mark.parametrize(
        ("address", "problem"),
        [
            ("64:ff9b::7f00:1", "a loopback address"),  # NAT64 of 127.0.0.1
            ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64 of 169.254.169.254
            ("2002:7f00:1::", "a loopback address"),  # 6to4 of 127.0.0.1
            ("2002:a9fe:a9fe::1", "a cloud metadata address"),
            ("::127.0.0.1", "a loopback address"),  # IPv4-compatible (deprecated)
            ("::a9fe:a9fe", "a cloud metadata address"),
            ("::ffff:a9fe:a9fe", "a cloud metadata address"),
            ("fec0::1", "a private address"),  # site-local (deprecated)
            ("64:ff9b::808:808", None),  # NAT64 of a public address
            ("2002:808:808::1", None),
        ],
    )
    def test_embedded_ipv4(self, address: str, problem: str | None) -> None:
        assert address_problem(ipaddress.ip_address(address), allow_private=False) == problem

    def test_metadata_is_refused_in_every_form_even_when_private_is_allowed(self) -> None:
        for form in ("169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
                     "2002:a9fe:a9fe::", "::a9fe:a9fe"):  # fmt: skip
            assert address_problem(ipaddress.ip_address(form), allow_private=True) == (
                "a cloud metadata address"
            ), form

    @pytest.mark.parametrize(
        ("host", "address"),
        [
            ("2130706433", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("2852039166", "169.254.169.254"),
            ("0251.0376.0251.0376", "169.254.169.254"),
            ("::1", "::1"),
            ("example.com", None),
            ("cafe", None),
            ("dead.beef", None),
        ],
    )
    def test_numeric_hosts(self, host: str, address: str | None) -> None:
        found = ip_literal(host)
        assert (str(found) if found else None) == address

    def test_numeric_metadata_url_is_refused_up_front(self) -> None:
        with pytest.raises(Rejected, match="metadata") as info:
            HostGuard("http://2852039166/latest/meta-data/", allow_private=True).check_literal()
        assert info.value.reason == "blocked_host"


class _Answers:
    """An inner resolver that answers with fixed addresses (what a hostile DNS would say)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> Any:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


class TestResolvedNames:
    """A name is refused if any address it resolves to is refused (checked where aiohttp
    connects, so a rebinding DNS answer cannot slip between check and connect)."""

    @pytest.mark.parametrize(
        ("answers", "problem"),
        [
            (("169.254.169.254",), "cloud metadata"),
            (("127.0.0.1",), "loopback"),
            (("93.184.215.14", "10.0.0.7"), "private"),  # one bad address among good ones
            (("::ffff:127.0.0.1",), "loopback"),
            (("fe80::1%eth0",), "link-local"),
            (("64:ff9b::a9fe:a9fe",), "cloud metadata"),
        ],
    )
    async def test_refused(self, answers: tuple[str, ...], problem: str) -> None:
        resolver = GuardedResolver(allow_private=False)
        resolver._inner = _Answers(*answers)  # type: ignore[assignment]
        with pytest.raises(Rejected, match=problem) as info:
            await resolver.resolve("feed.example.com", 443)
        assert info.value.reason == "blocked_host"

    async def test_public_answers_pass(self) -> None:
        resolver = GuardedResolver(allow_private=False)
        resolver._inner = _Answers("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")  # type: ignore[assignment]
        assert len(await resolver.resolve("feed.example.com", 443)) == 2


SECRET = "Zx9SecretKey0123456789abcdef"


class TestUrlRedaction:
    """Node URLs in log lines and errors keep scheme and host, never keys."""

    @pytest.mark.parametrize(
        "text",
        [
            f"403, message='Invalid response status', url='wss://node.example/v2/{SECRET}'",
            f"URL('https://user:{SECRET}@node.example:8545/rpc')",
            f"failed on http://node.example/?apikey={SECRET}&chain=1 (retrying)",
            f"ws://127.0.0.1:9/{SECRET}/",
        ],
    )
    def test_scrub_urls(self, text: str) -> None:
        scrubbed = scrub_urls(text)
        assert SECRET not in scrubbed
        assert "***" in scrubbed
        assert "node.example" in scrubbed or "127.0.0.1:9" in scrubbed

    def test_short_keys_without_digits_are_masked(self) -> None:
        assert redact_url("https://eth.example/v2/abcdefghijklmnop") == "https://eth.example/v2/***"
        assert redact_url("https://[::1]:8545/rpc") == "https://[::1]:8545/rpc"


class TestHeadSocketLogs:
    """A WebSocket handshake refused by the node (a real local server answering 403) logs the
    failure without the URL's key (aiohttp's message names the whole URL)."""

    async def test_handshake_error_logs_no_secret(self) -> None:
        async def rpc(_: web.Request) -> web.Response:
            return web.json_response({"jsonrpc": "2.0", "id": 1, "result": "0x10"})

        async def refuse(_: web.Request) -> web.Response:
            return web.Response(status=403, text="forbidden")

        app = web.Application()
        app.router.add_post("/", rpc)
        app.router.add_get("/{tail:.*}", refuse)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        port = server.port
        ws_url = f"ws://127.0.0.1:{port}/v2/{SECRET}?apikey={SECRET}"
        try:
            async with RpcClient(str(server.make_url("/"))) as client:
                watcher = HeadWatcher(client, ws_url=ws_url, poll_interval_s=60, network="local")
                with structlog.testing.capture_logs() as logs:
                    await watcher.start()
                    for _ in range(100):
                        if any(e["event"].startswith("newHeads socket failed") for e in logs):
                            break
                        await asyncio.sleep(0.02)
                    await watcher.stop()
        finally:
            await server.close()
        failures = [e for e in logs if e["event"].startswith("newHeads socket failed")]
        assert failures, logs
        assert "403" in failures[0]["error"]  # the reason is kept
        assert f"127.0.0.1:{port}" in failures[0]["url"]
        assert SECRET not in repr(logs)
