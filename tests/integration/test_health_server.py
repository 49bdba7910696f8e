"""The daemon side server answers /healthz, /readyz and /metrics over real HTTP."""

from __future__ import annotations

import aiohttp

from dnft import metrics
from dnft.health import HealthServer


class TestHealthServer:
    """Liveness always answers; readiness reflects the checks; metrics use dnft_ names."""

    async def test_probes_and_metrics(self) -> None:
        ready: list[str | None] = ["kafka not connected"]

        async def check() -> str | None:
            return ready[0]

        server = HealthServer("127.0.0.1", 0)
        server.add_readiness_check("kafka", check)
        await server.start()
        base = f"http://127.0.0.1:{server.bound_port}"
        metrics.indexer_head_block.labels("local").set(42)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/healthz") as r:
                    assert r.status == 200
                async with http.get(f"{base}/readyz") as r:
                    assert r.status == 503
                    assert (await r.json())["failing"] == {"kafka": "kafka not connected"}
                ready[0] = None
                async with http.get(f"{base}/readyz") as r:
                    assert r.status == 200
                async with http.get(f"{base}/metrics") as r:
                    text = await r.text()
                    assert r.status == 200
                    assert 'dnft_indexer_head_block{network="local"} 42.0' in text
        finally:
            await server.stop()
