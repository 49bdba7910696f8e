"""Acknowledged records across broker restarts: a restart that cuts the broker mid-write (the
baseline) against one that drains it first (what the fault suite does), same run, same broker.

A producer like the indexer's (acks=all, idempotent, batches of 20, a failed batch resent)
writes numbered records to tansu storing in S3 on a local moto, while the broker is restarted
every ``--every`` seconds. Afterwards the topic is read back from the start: every
acknowledged number must be there. tansu records a produce's sequence and watermark before its
batch, so a restart between them loses an acknowledged batch (the client's retry is answered
DUPLICATE_SEQUENCE_NUMBER, which Kafka clients count as success); draining the broker first
(``tests/support/kafkaproxy.py``) closes that window. Prints one line per mode and the ratio.

    python -m bench.broker_restart [--restarts 8] [--every 1.5]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from dnft.devservices import TansuService
from dnft.devservices.ports import free_port
from tests.support.kafkaproxy import KafkaProxy

TOPIC = "bench.broker-restart"
BATCH = 20


def run(drained: bool, restarts: int, every_s: float) -> tuple[int, int]:
    """(acknowledged, missing after reading back)."""
    root = Path(tempfile.mkdtemp(prefix="dnft-bench-broker-"))
    proxy = KafkaProxy(upstream_port=free_port())
    tansu = TansuService(
        root, port=proxy.upstream_port, durable=True, advertise=f"127.0.0.1:{proxy.port}"
    )
    tansu.start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=tansu.bootstrap)
        admin.create_topics([NewTopic(TOPIC, 3, 1)])
        admin.close()
        done = threading.Event()

        def restarter() -> None:
            for _ in range(restarts):
                time.sleep(every_s)
                if drained:
                    proxy.drain()
                    tansu.restart(0.3)
                    proxy.restore()
                else:  # requests in flight: the broker may stop between its writes
                    tansu.restart(0.3)
            done.set()

        thread = threading.Thread(target=restarter)
        thread.start()
        acked = produce_until(tansu.bootstrap, done)
        thread.join()
        seen = read_back(tansu.bootstrap)
        return len(acked), len(acked - seen)
    finally:
        tansu.stop()
        proxy.close()


def produce_until(bootstrap: str, done: threading.Event) -> set[int]:
    acked: set[int] = set()
    producer: KafkaProducer | None = None
    n = 0
    while not done.is_set():
        batch = range(n, n + BATCH)
        n += BATCH
        while True:
            try:
                if producer is None:
                    producer = KafkaProducer(
                        bootstrap_servers=bootstrap,
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=5,
                        request_timeout_ms=5000,
                    )
                futures = [producer.send(TOPIC, value=str(i).encode()) for i in batch]
                for future in futures:
                    future.get(timeout=30)
                acked.update(batch)
                break
            except Exception:  # like the indexer: a new producer, the batch again
                if producer is not None:
                    producer.close(timeout=1)
                producer = None
                time.sleep(0.5)
    if producer is not None:
        producer.close()
    return acked


def read_back(bootstrap: str) -> set[int]:
    # Until the topic is quiet: tansu's ListOffsets under-reports partition ends.
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    try:
        return {int(m.value) for m in consumer}
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--every", type=float, default=1.5, help="seconds between restarts")
    args = parser.parse_args()
    results = {}
    for drained in (False, True):
        acked, missing = run(drained, args.restarts, args.every)
        mode = "drained restart" if drained else "cut restart (baseline)"
        print(f"{mode}: {args.restarts} restarts, {acked} records acknowledged, {missing} missing")
        results[drained] = missing / max(acked, 1)
    print(f"missing_ratio_cut={results[False]:.5f}")
    print(f"missing_ratio_drained={results[True]:.5f}")


if __name__ == "__main__":
    main()
