"""Benchmark: `dnft indexer` backfill against the limits of its node and its broker.

One run, on this machine, against real servers started here (anvil, tansu, Postgres):

  (a) node limit:    raw eth_getLogs (aiohttp + orjson, 8 requests in flight) + hand decoding
  (b) broker limit:  raw kafka-python produce of pre-serialised messages of the indexer's
                     message size, with the indexer's producer settings
  (c) dnft indexer:  the real daemon (`dnft indexer`, a subprocess) from start of backfill
                     until the last event is acknowledged by Kafka and checkpointed
  (d) ethereum-etl:  `ethereumetl export_token_transfers` over the same blocks, in its own
                     virtualenv (it pins web3 5)

Prints per-line figures, then as its last lines ``indexer_logs_per_s=``, ``ratio_vs_limit=``
(c over the smaller of a and b) and ``ratio_vs_ethereum_etl=``.

    .venv/bin/python -m bench.indexer_backfill [--logs 200000] [--skip-etl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bench.procfs import usage
from dnft.contracts import DevSigner, at, deploy
from dnft.devservices import AnvilService, PostgresService, TansuService
from dnft.devservices.ports import free_port
from dnft.kafka import partition_for
from dnft.migrations import apply_migrations

REPO = Path(__file__).resolve().parents[1]

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
MINT_BATCH = 500  # 12.5M gas: keeps each mint transaction well inside a 30M-gas block
ETL_VENV = REPO / ".bench" / "etl-venv"
# Each request asks for about this many blocks; with MINT_BATCH logs per block a request
# returns ~5k logs, below the 10k-result cap of hosted providers.
BLOCKS_PER_REQUEST = 10


async def make_chain(rpc_url: str, n_logs: int) -> tuple[str, int]:
    from web3 import AsyncHTTPProvider, AsyncWeb3

    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    signer = DevSigner()
    address = await deploy(
        w3, "DynamicCollection", "Bench", "B", "http://127.0.0.1/", True, 0, sender=signer
    )
    collection = at(w3, "DynamicCollection", address)
    data = collection.encode_abi("mintBatch", [signer.address, MINT_BATCH])
    last = None
    for _ in range(n_logs // MINT_BATCH):
        last = await signer.send(w3, {"to": address, "data": data, "gas": 14_000_000})
    assert last is not None
    await w3.eth.wait_for_transaction_receipt(last, timeout=120, poll_latency=0.05)
    head = int(await w3.eth.block_number)
    await w3.provider.disconnect()
    return address, head


async def node_limit(
    rpc_url: str, address: str, head: int, in_flight: int = 8
) -> tuple[int, float]:
    """Raw eth_getLogs over ranges, 8 in flight, topics decoded by hand: logs/s."""
    ranges = [
        (s, min(s + BLOCKS_PER_REQUEST - 1, head)) for s in range(0, head + 1, BLOCKS_PER_REQUEST)
    ]
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for r in ranges:
        queue.put_nowait(r)
    total = 0
    checksum = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal total, checksum
        while not queue.empty():
            start, end = queue.get_nowait()
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getLogs",
                "params": [{"address": address, "fromBlock": hex(start), "toBlock": hex(end)}],
            }
            async with session.post(
                rpc_url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as r:
                logs = orjson.loads(await r.read())["result"]
            for log in logs:
                topics = log["topics"]
                if topics[0] == TRANSFER_TOPIC:
                    checksum ^= int(topics[3], 16)  # tokenId
                    _to = "0x" + topics[2][26:]
                total += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))
    return total, time.perf_counter() - started


def broker_limit(bootstrap: str, n: int, size: int) -> float:
    """kafka-python produce of pre-serialised messages shaped like the indexer's (size, key,
    event-id header), with its producer settings and partitioning (dnft's key hash, 6
    partitions)."""
    topic = f"bench.limit.{os.getpid()}"
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    admin.create_topics([NewTopic(topic, 6, 1)])
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap],
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
    )
    value = b"x" * size
    keys = [f"31337:0x{'ab' * 20}:{i}".encode() for i in range(n)]
    producer.send(topic, value=value, key=keys[0], partition=0).get(30)  # warm metadata
    started = time.perf_counter()
    count = len(producer.partitions_for(topic))
    header = [("event-id", b"31337:0x" + b"ab" * 32 + b":100")]  # as the indexer's messages
    for key in keys:
        producer.send(
            topic, value=value, key=key, headers=header, partition=partition_for(key, count)
        )
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return n / elapsed


async def run_indexer(
    workdir: Path, rpc_url: str, address: str, head: int, bootstrap: str, dsn: str
) -> tuple[float, float, str]:
    """Run `dnft indexer` until the head is checkpointed; (seconds, peak RSS MB, its topic)."""
    port = free_port()
    topic = f"bench.chain.{os.getpid()}"
    config = {
        "http": {"port": port},
        "networks": [
            {
                "name": "bench",
                "chain_id": 31337,
                "rpc_urls": [rpc_url],
                "confirmations": {"depth": 0},
                "max_block_range": BLOCKS_PER_REQUEST,
                "max_in_flight": 8,
                "poll_interval_s": 0.5,
            }
        ],
        "contracts": [
            {
                "name": "collection",
                "network": "bench",
                "address": address,
                "abi": str(REPO / "schemas/abi/DynamicCollection.json"),
            }
        ],
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": {"chain_events": topic},
            "partitions": 6,
        },
        "postgres": {"dsn": dsn},
    }
    path = workdir / "dnft.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = workdir / "indexer.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNFT_")}
    with log_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dnft",
            "--config",
            str(path),
            "indexer",
            stdout=out,
            stderr=out,
            env=env,
        )
    # Watch the checkpoint in Postgres, not /metrics: scraping the daemon every few ms would
    # load the process being measured. Done = the head is checkpointed (after Kafka acks).
    conn = await asyncpg.connect(dsn)
    try:
        query = "select block_number from indexer_checkpoints where network = 'bench'"
        rss = 0.0
        while ((await conn.fetchval(query)) or -1) < head:
            if proc.returncode is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
            rss = max(rss, usage(proc.pid)[0])
            await asyncio.sleep(0.01)
        done = time.time()
    finally:
        await conn.close()
        proc.terminate()
        await proc.wait()
    started = None
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and '"event": "backfill"' in line:
            stamp = json.loads(line)["timestamp"].replace("Z", "+00:00")
            started = datetime.fromisoformat(stamp).timestamp()
    assert started is not None, "no backfill line in the indexer log"
    return done - started, rss, topic


def count_topic(bootstrap: str, topic: str) -> tuple[int, int]:
    """(distinct event ids, largest message size), by reading the whole topic.

    Counted by consuming: tansu's end offsets lag just after a burst of produces.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap], enable_auto_commit=False, consumer_timeout_ms=5000
    )
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ids: set[bytes] = set()
    size = 0
    for record in consumer:
        ids.add(dict(record.headers)["event-id"])
        size = max(size, len(record.value))
    consumer.close()
    return len(ids), size


def ensure_etl_venv() -> Path:
    bin_ = ETL_VENV / "bin" / "ethereumetl"
    if bin_.exists():
        return bin_
    print("creating ethereum-etl virtualenv in .bench/etl-venv (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(ETL_VENV)], check=True)
    pip = [str(ETL_VENV / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, "ethereum-etl==2.4.2"], check=True)
    subprocess.run([*pip, "--no-deps", "parsimonious==0.10.0", "regex"], check=True)
    return bin_


def run_etl(rpc_url: str, head: int, workdir: Path) -> tuple[int, float]:
    etl = ensure_etl_venv()
    out = workdir / "transfers.csv"
    started = time.perf_counter()
    subprocess.run(
        [
            str(etl),
            "export_token_transfers",
            "--start-block",
            "0",
            "--end-block",
            str(head),
            "--provider-uri",
            rpc_url,
            "--output",
            str(out),
            "--batch-size",
            str(BLOCKS_PER_REQUEST),
            "--max-workers",
            "8",
        ],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    rows = sum(1 for _ in out.open()) - 1
    return rows, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--skip-etl", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dnft-bench-"))
    anvil, tansu, pg = AnvilService(workdir), TansuService(workdir), PostgresService(workdir)
    for service in (anvil, tansu, pg):
        service.start()
    try:
        await apply_migrations(pg.dsn)
        t0 = time.perf_counter()
        address, head = await make_chain(anvil.rpc_url, args.logs)
        print(
            f"setup: {args.logs} Transfer logs in {head} blocks ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )

        n_a, s_a = await node_limit(anvil.rpc_url, address, head)
        a = n_a / s_a
        print(f"(a) node limit, raw eth_getLogs x8 + hand decode: {a:,.0f} logs/s", flush=True)

        seconds, rss, topic = await run_indexer(
            workdir, anvil.rpc_url, address, head, tansu.bootstrap, pg.dsn
        )
        produced, size = count_topic(tansu.bootstrap, topic)
        assert produced == n_a, f"indexer published {produced} events, the node has {n_a}"
        c = produced / seconds
        print(
            f"(c) dnft indexer end to end: {produced} events in {seconds:.2f}s = {c:,.0f}/s, "
            f"peak RSS {rss:.0f} MB (daemon + decode worker)",
            flush=True,
        )

        b = broker_limit(tansu.bootstrap, min(args.logs, 200_000), size or 600)
        print(
            f"(b) broker limit, raw kafka-python produce of {size}-byte messages: {b:,.0f} msg/s",
            flush=True,
        )

        etl_rate = None
        if not args.skip_etl:
            rows, s_d = run_etl(anvil.rpc_url, head, workdir)
            etl_rate = rows / s_d
            print(
                f"(d) ethereum-etl export_token_transfers: {rows} rows in {s_d:.2f}s = "
                f"{etl_rate:,.0f}/s",
                flush=True,
            )
        print(f"indexer_peak_rss_mb={rss:.0f}")
        print(f"indexer_logs_per_s={c:.0f}")
        print(f"ratio_vs_limit={c / min(a, b):.2f}")
        print(
            f"ratio_vs_ethereum_etl={c / etl_rate:.2f}"
            if etl_rate
            else "ratio_vs_ethereum_etl=skipped"
        )
    finally:
        for service in (anvil, tansu):
            service.stop()
        pg.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
