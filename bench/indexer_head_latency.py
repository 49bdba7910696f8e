"""Benchmark: time from the node's head notification to Kafka acknowledging its events.

anvil mines a block every second (``--block-time 1``); a sender puts a `Fed` event in most
blocks; the indexer follows over WebSocket ``newHeads``. For every block the indexer records
the time from the notification to the broker's acknowledgement of the block's events.

Baseline in the same run: a raw kafka-python send of one message and wait for its ack (the
floor any publisher pays), plus one eth_getLogs round trip. Prints p50/p99 and the ratio.

    .venv/bin/python -m bench.indexer_head_latency [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from kafka import KafkaProducer

from dnft.config import settings_from_mapping
from dnft.contracts import DevSigner, at, deploy
from dnft.devservices import AnvilService, PostgresService, TansuService
from dnft.kafka import AsyncProducer, ensure_topics
from dnft.migrations import apply_migrations
from indexer.runtime import NetworkIndexer

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_produce_latencies(bootstrap: str, n: int) -> list[float]:
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], acks="all", enable_idempotence=True, linger_ms=5
    )
    # Warm-up, not timed: the first send creates the topic and fetches its metadata.
    producer.send("bench.latency.floor", value=b"x", key=b"warm-up").get(30)
    out = []
    for i in range(n):
        started = time.perf_counter()
        producer.send("bench.latency.floor", value=b"x" * 600, key=str(i).encode()).get(10)
        out.append(time.perf_counter() - started)
        time.sleep(0.01)
    producer.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)  # >= 100 blocks for a p99
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dnft-latency-"))
    anvil = AnvilService(workdir, block_time=1)
    tansu, pg = TansuService(workdir), PostgresService(workdir)
    for service in (anvil, tansu, pg):
        service.start()
    try:
        await apply_migrations(pg.dsn)
        from web3 import AsyncHTTPProvider, AsyncWeb3

        w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        signer = DevSigner()
        address = await deploy(
            w3, "DynamicCollection", "L", "L", "http://x/", True, 0, sender=signer
        )
        collection = at(w3, "DynamicCollection", address)
        await signer.transact(
            w3, {"to": address, "data": collection.encode_abi("mint", [signer.address])}
        )
        settings = settings_from_mapping(
            {
                "http": {"port": 0},
                "networks": [
                    {
                        "name": "bench",
                        "chain_id": 31337,
                        "rpc_urls": [anvil.rpc_url],
                        "ws_url": anvil.ws_url,
                        "confirmations": {"depth": 3},
                    }
                ],
                "contracts": [
                    {
                        "name": "c",
                        "network": "bench",
                        "address": address,
                        "abi": str(REPO / "schemas/abi/DynamicCollection.json"),
                    }
                ],
                "kafka": {
                    "bootstrap_servers": [tansu.bootstrap],
                    "topics": {"chain_events": "bench.latency.events"},
                },
                "postgres": {"dsn": pg.dsn},
            },
            {},
        )
        # As `dnft indexer` does at start: the topic exists before the first block is sent.
        await ensure_topics(settings.kafka, {settings.kafka.topics.chain_events: 6})
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        stopping = asyncio.Event()
        indexer = NetworkIndexer(settings, "bench", producer)
        task = asyncio.create_task(indexer.run(stopping))
        deadline = time.monotonic() + args.seconds
        data = collection.encode_abi("feed", [1])
        while time.monotonic() < deadline:
            await signer.send(w3, {"to": address, "data": data, "gas": 80_000})
            await asyncio.sleep(0.5)
        stopping.set()
        await task
        await producer.close()
        latencies = list(indexer.head_latencies)
        floor = await asyncio.to_thread(raw_produce_latencies, tansu.bootstrap, 200)
        p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
        f50, f99 = pct(floor, 0.5), pct(floor, 0.99)
        print(
            f"blocks measured: {len(latencies)} (mean {statistics.mean(latencies) * 1000:.1f} ms)"
        )
        print(
            f"baseline raw kafka-python send+ack: p50 {f50 * 1000:.1f} ms, p99 {f99 * 1000:.1f} ms"
        )
        print(f"head_to_kafka_p50_ms={p50 * 1000:.1f}")
        print(f"head_to_kafka_p99_ms={p99 * 1000:.1f}")
        print(f"ratio_p99_vs_raw_send={p99 / f99:.2f}")
    finally:
        for service in (anvil, tansu):
            service.stop()
        pg.destroy()


if __name__ == "__main__":
    asyncio.run(main())
