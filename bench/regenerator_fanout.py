"""Benchmark: one feed change fans out to 10,000 tokens, all the way to stored metadata.

Real tansu and Postgres; the sample collection with the procedural renderer at 512x512. Setup
applies one mint per token (their first states are planned to a topic nobody renders, so the
measurement starts from tokens that all have a state). Then, timed: the planner applies one
observation that moves every token to a new bucket, and N render workers (`dnft regenerator
--role render` subprocesses in one consumer group, default one per core) render, store and
record each new version.

Baseline in the same run: the procedural renderer alone, in-process, one core. Prints
``fanout_tokens_per_s=``, ``event_to_metadata_p99_s=`` and ``ratio_vs_raw_render=``.

    .venv/bin/python -m bench.regenerator_fanout [--tokens 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import orjson
import yaml

from dnft.collection.bound import BoundCollection
from dnft.collection.rules import load_collection
from dnft.collection.seeds import derive_seed
from dnft.collection.state import derive_state
from dnft.config import settings_from_mapping
from dnft.devservices import PostgresService, TansuService
from dnft.kafka import AsyncProducer, ensure_topics
from dnft.messages import ChainEvent, OracleObservation, decode_message
from dnft.migrations import apply_migrations
from regenerator.metadata import bucket_of, render_prompt
from regenerator.planner import Planner
from regenerator.renderers.base import RenderRequest
from regenerator.renderers.factory import renderer_for

REPO = Path(__file__).resolve().parents[1]

CONTRACT = "0x" + "c0" * 20
COLLECTION = REPO / "collections" / "sample.yaml"


def mint(token: int) -> ChainEvent:
    """A mint as the planner's consumer decodes it."""
    message = decode_message(
        orjson.dumps(
            {
                "schema": "dnft.chain.event.v1",
                "event_id": f"31337:0x{token:064x}:0",
                "chain_id": 31337,
                "network": "bench",
                "contract": CONTRACT,
                "event": "Transfer",
                "args": {"from": "0x" + "00" * 20, "to": "0x" + "ab" * 20, "tokenId": str(token)},
                "token_id": str(token),
                "block_number": token,
                "block_hash": f"0x{token:064x}",
                "block_timestamp": 1_700_000_000,
                "tx_hash": f"0x{token:064x}",
                "log_index": 0,
                "removed": False,
            }
        )
    )
    assert isinstance(message, ChainEvent)
    return message


def observation(round_id: int, value: str) -> OracleObservation:
    """An oracle reading as the planner's consumer decodes it."""
    message = decode_message(
        orjson.dumps(
            {
                "schema": "dnft.oracle.observation.v1",
                "feed_id": "eth-usd",
                "value": value,
                "observed_at": "2026-11-22T10:00:00+00:00",
                "published_at": "2026-11-22T10:00:00+00:00",
                "round_id": round_id,
                "sources": [{"source": "bench", "value": value, "response_sha256": "0" * 64}],
            }
        )
    )
    assert isinstance(message, OracleObservation)
    return message


def raw_render_rate(n: int = 300) -> float:
    """Procedural renders per second on one core, for states like the measured ones."""
    collection = load_collection(COLLECTION)
    renderer = renderer_for(collection)
    started = time.perf_counter()
    for token in range(1, n + 1):
        state = derive_state(collection, token, [], {})
        _, bucket = bucket_of(collection, state)
        renderer.render(
            RenderRequest(
                token_id=token,
                traits=state.traits,
                stage=state.stage,
                bucket=bucket,
                seed=derive_seed(collection.salt, token, state.state_hash),
                prompt=render_prompt(collection, state),
                size=collection.image_size,
            )
        )
    return n / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dnft-fanout-"))
    tansu, pg = TansuService(workdir), PostgresService(workdir)
    tansu.start()
    pg.start()
    procs: list[asyncio.subprocess.Process] = []
    try:
        await apply_migrations(pg.dsn)
        raw = {
            "http": {"port": 0},
            "networks": [{"name": "bench", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
            "contracts": [
                {
                    "name": "collection",
                    "network": "bench",
                    "address": CONTRACT,
                    "abi": str(REPO / "schemas/abi/DynamicCollection.json"),
                }
            ],
            "kafka": {
                "bootstrap_servers": [tansu.bootstrap],
                "partitions": 12,
                "consumer": {
                    "session_timeout_ms": 6000,
                    "heartbeat_interval_ms": 2000,
                    "max_poll_interval_ms": 60000,
                },
            },
            "postgres": {"dsn": pg.dsn},
            "collections": [{"file": str(COLLECTION)}],
            "regenerator": {"storage": {"kind": "local", "path": str(workdir / "blobs")}},
        }
        settings = settings_from_mapping(raw, {})
        topics = settings.kafka.topics
        await ensure_topics(
            settings.kafka,
            {
                topics.render_jobs: 12,
                "bench.setup.jobs": 1,
                topics.metadata_updates: 12,
                topics.dead_letter: 1,
            },
        )
        pool = await asyncpg.create_pool(pg.dsn, min_size=1, max_size=4)
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        bound = BoundCollection(load_collection(COLLECTION), 31337, CONTRACT)

        t0 = time.perf_counter()
        setup = Planner(pool, producer, [bound], jobs_topic="bench.setup.jobs")
        for start in range(1, args.tokens + 1, 1000):
            await setup.apply([mint(t) for t in range(start, min(start + 1000, args.tokens + 1))])
        print(
            f"setup: {args.tokens} tokens with a state ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )

        config = workdir / "dnft.yaml"
        config.write_text(yaml.safe_dump(raw))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNFT_")}
        for i in range(args.workers):
            log = (workdir / f"render-{i}.log").open("wb")
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "dnft",
                    "--config",
                    str(config),
                    "regenerator",
                    "--role",
                    "render",
                    stdout=log,
                    stderr=log,
                    env=env | {"DNFT_HTTP__PORT": "0"},
                )
            )
        await asyncio.sleep(8)  # workers join the group (tansu delays first joins)

        planner = Planner(pool, producer, [bound], jobs_topic=topics.render_jobs)
        started = time.perf_counter()
        jobs = await planner.apply([observation(1, "3000")])
        planned_s = time.perf_counter() - started
        assert len(jobs) == args.tokens, f"planned {len(jobs)} jobs"
        async with pool.acquire() as conn:
            while (count := await conn.fetchval("select count(*) from token_versions")) < len(jobs):
                for p in procs:
                    if p.returncode is not None:
                        raise RuntimeError((workdir / "render-0.log").read_text()[-3000:])
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
            lags = [
                r["lag"]
                for r in await conn.fetch(
                    "select extract(epoch from v.created_at - j.planned_at)::float8 as lag "
                    "from token_versions v join regen_render_jobs j using (collection, token_id, "
                    "state_hash)"
                )
            ]
        await producer.close()
        await pool.close()
        rate = count / elapsed
        lags.sort()
        p99 = lags[int(0.99 * (len(lags) - 1))]
        raw_rate = raw_render_rate()
        print(f"planning the fan-out: {planned_s:.2f}s for {len(jobs)} jobs", flush=True)
        print(f"raw procedural render, one core, in-process: {raw_rate:.0f} images/s")
        print(f"fan-out with {args.workers} render workers: {count} versions in {elapsed:.1f}s")
        print(f"fanout_tokens_per_s={rate:.0f}")
        print(f"event_to_metadata_p99_s={p99:.1f}")
        print(f"ratio_vs_raw_render={rate / raw_rate:.2f}")
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
                await p.wait()
        tansu.stop()
        pg.destroy()


if __name__ == "__main__":
    asyncio.run(main())
