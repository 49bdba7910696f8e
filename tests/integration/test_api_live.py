"""`dnft api` over real HTTP, against real Postgres, tansu and a blob store, with versions
rendered by the regenerator's own planner and render worker: the gallery's pages, their live
stream of new versions, and `dnft api` as a process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from dnft.devservices.ports import free_port
from tests.support.api import ApiWorld, another_server, api_config, error_of, get
from tests.support.cli import write_config
from tests.support.daemon import DaemonProcess
from tests.support.messages import event


class TestGalleryPages:
    """Pages escape on-chain strings and carry a strict Content-Security-Policy."""

    async def test_token_page(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{sample_api.base}/tokens/1/view") as response:
            assert response.status == 200
            csp = response.headers["Content-Security-Policy"]
            page = await response.text()
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "<script>alert" not in page
        assert "onerror=alert(2)>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert page.count("<script") == 1, "only the gallery's own script"
        assert 'id="art"' in page
        assert page.count('<li><a href="?version=') == 3

    async def test_index(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{sample_api.base}/") as response:
            assert response.status == 200
            page = await response.text()
        assert 'href="/tokens/1/view"' in page
        assert 'href="/tokens/2/view"' in page
        assert "Critter #1" in page


class TestLiveStream:
    """Server-sent events carry each new version, resume by Last-Event-ID, and survive a lost
    LISTEN connection."""

    async def test_new_versions_arrive(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        await sample_api.maker.step([event(30, "Transfer", 8, to="0xee")])
        url = f"{sample_api.base}/tokens/8/events?after=1"
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=60)) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert (await stream.content.readuntil(b"\n\n")).startswith(b"retry:")
            await asyncio.sleep(0.2)  # the stream has subscribed and read once
            await sample_api.maker.step([event(31, "Fed", 8, amount="1")])
            message = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
            assert message.startswith(b"id: 2\nevent: version\ndata: ")
            entry = orjson.loads(message.split(b"data: ", 1)[1])
            assert entry["version"] == 2
            assert entry["triggers"][0]["event"] == "Fed"

            # The LISTEN connection dies: the feed reconnects and the stream still hears.
            assert sample_api.server.context is not None
            async with sample_api.pool.acquire() as conn:
                killed = await conn.fetchval(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                    "where query like 'LISTEN %' and datname = current_database()"
                )
            assert killed == 1
            for _ in range(50):
                await asyncio.sleep(0.1)
                if sample_api.server.context.live.connected:
                    break
            assert sample_api.server.context.live.connected, "LISTEN connection restored"
            await sample_api.maker.step([event(32, "Fed", 8, amount="1")])
            message = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
            assert message.startswith(b"id: 3\n")

        # A reconnecting EventSource sends Last-Event-ID: versions after it come first.
        async with http.get(
            f"{sample_api.base}/tokens/8/events", headers={"Last-Event-ID": "1"}
        ) as stream:
            await stream.content.readuntil(b"\n\n")
            ids = [
                (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)).split(b"\n")[0]
                for _ in range(2)
            ]
            assert ids == [b"id: 2", b"id: 3"]

    async def test_bad_stream_requests(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        status, error = await error_of(http, f"{sample_api.base}/tokens/999/events")
        assert (status, error["error"]) == (404, "not_found")
        status, error = await error_of(http, f"{sample_api.base}/tokens/1/events?after=x")
        assert (status, error["error"]) == (400, "bad_request")


class TestLiveCaps:
    """Open streams are capped per client address (429) as well as per replica (503)."""

    async def test_per_client_cap(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        # Short keep-alives: a closed stream is noticed on its next write.
        caps = {
            "max_live_per_client": 2,
            "max_live_clients": 3,
            "trusted_proxies": 1,
            "keepalive_s": 0.2,
        }
        async with contextlib.AsyncExitStack() as stack:
            base = await stack.enter_async_context(another_server(sample_api, **caps))

            async def open_stream(client: str) -> aiohttp.ClientResponse:
                response = await stack.enter_async_context(
                    http.get(
                        f"{base}/tokens/1/events?after=3",
                        headers={"X-Forwarded-For": f"6.6.6.6, {client}"},
                    )
                )
                if response.status == 200:
                    assert (await response.content.readuntil(b"\n\n")).startswith(b"retry:")
                return response

            first = await open_stream("203.0.113.1")
            assert (await open_stream("203.0.113.1")).status == 200
            refused = await open_stream("203.0.113.1")
            assert refused.status == 429
            assert refused.headers["Retry-After"] == "5"
            assert (await refused.json())["error"] == "rate_limited"
            # Another client still gets one; then the replica's cap is reached: 503.
            assert (await open_stream("203.0.113.2")).status == 200
            assert (await open_stream("203.0.113.3")).status == 503
            # A closed stream frees its client's place.
            first.close()
            for _ in range(50):
                again = await open_stream("203.0.113.1")
                if again.status == 200:
                    break
                await asyncio.sleep(0.1)
            assert again.status == 200


class TestDaemon:
    """`dnft api` as a process: serves, reports ready, stops cleanly on SIGTERM."""

    async def test_command(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession, tmp_path: Path
    ) -> None:
        config = api_config(
            dsn=sample_api.settings.postgres.dsn,
            bootstrap=sample_api.settings.kafka.bootstrap_servers[0],
            root=tmp_path,
        )
        config["regenerator"]["storage"]["path"] = str(sample_api.settings.regenerator.storage.path)
        health_port, api_port = free_port(), free_port()
        config["http"]["port"] = health_port
        config["api"]["port"] = api_port
        path = write_config(tmp_path / "dnft.yaml", config)
        daemon = DaemonProcess("api", path, health_port, tmp_path / "api.log")
        daemon.start()
        try:
            for _ in range(150):
                try:
                    status, _, body = await get(http, f"http://127.0.0.1:{api_port}/tokens/1")
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail((tmp_path / "api.log").read_text()[-2000:])
            assert status == 200
            assert orjson.loads(body)["name"] == "Critter #1"
            status, _, _ = await get(http, f"http://127.0.0.1:{health_port}/readyz")
            assert status == 200
            assert "dnft_api_requests_total" in await daemon.metrics_text()
            # A gallery page's stream is open at SIGTERM: it ends, and the process exits 0.
            async with http.get(f"http://127.0.0.1:{api_port}/tokens/1/events?after=3") as stream:
                assert (await stream.content.readuntil(b"\n\n")).startswith(b"retry:")
                assert "dnft_api_live_clients 1.0" in await daemon.metrics_text()
                assert daemon.proc is not None
                started = time.monotonic()
                daemon.proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(stream.content.read(), 10) == b"", "stream ended"
            code = await asyncio.to_thread(daemon.proc.wait, 30)
            assert time.monotonic() - started < 10
        finally:
            daemon.kill9()
        assert code == 0, (tmp_path / "api.log").read_text()[-2000:]
