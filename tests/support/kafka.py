"""The test broker from outside the code under test: settings that keep group joins quick on
tansu, a whole-topic reader, and an acknowledged JSON producer (kafka-python, not dnft's
clients, so a client bug cannot hide on both sides); a test CA and a TLS terminator in front
of the broker."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from dnft.config import ConsumerSettings, KafkaSettings

# Tansu holds a first JoinGroup for half the session timeout: short values keep joins quick.
QUICK_CONSUMER: dict[str, int] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 2000,
    "max_poll_interval_ms": 10000,
}


def quick_kafka(bootstrap: str) -> KafkaSettings:
    """Kafka settings for ``bootstrap`` with :data:`QUICK_CONSUMER` timeouts."""
    return KafkaSettings(bootstrap_servers=[bootstrap], consumer=ConsumerSettings(**QUICK_CONSUMER))


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 30.0, quiet_s: float = 1.0
) -> list[dict[str, Any]]:
    """Every message on ``topic`` from the beginning, decoded, in partition order.

    Reads until no record arrived for ``quiet_s``: tansu's ListOffsets under-reports the end
    of a partition (measured: 1,918 of 3,083 right after producing), so end offsets cannot
    tell when everything was read. Callers only read after their producers were acknowledged.
    """
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.2)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[dict[str, Any]] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                last = time.monotonic()
                for r in records:
                    body = orjson.loads(r.value)
                    body["_partition"] = tp.partition
                    body["_key"] = r.key.decode() if r.key else None
                    out.append(body)
        return out
    finally:
        consumer.close()


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[dict[str, Any]],
    key: Callable[[dict[str, Any]], str],
) -> int:
    """Send each message as JSON under ``key(message)`` and flush (acknowledged by the
    broker); returns how many were sent."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    count = 0
    try:
        for m in messages:
            producer.send(topic, orjson.dumps(m), key=key(m).encode())
            count += 1
        producer.flush(30)
    finally:
        producer.close()
    return count


@dataclass(frozen=True)
class Pki:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 (PEM files)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def write_test_pki(directory: Path, host: str = "127.0.0.1") -> Pki:
    """Generate a self-signed CA and a server certificate for ``host`` (an IP address) into
    ``directory``; valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("dnft test CA"))
        .issuer_name(name("dnft test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(name(host))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


class TlsTerminator:
    """A TLS listener on 127.0.0.1 that forwards each connection to a plaintext broker.

    tansu 0.6.0 cannot serve TLS itself (dnft/devservices/tansu.py), so the broker sits
    behind this terminator and advertises its address: every client connection, bootstrap
    and broker alike, makes a real TLS handshake against ``pki``'s server certificate.
    Runs its own event loop on a thread; ``upstream`` may be set after ``start``.
    """

    def __init__(self, pki: Pki, port: int) -> None:
        self.port = port
        self.upstream: tuple[str, int] | None = None
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(pki.cert_file, pki.key_file)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self._context),
            self._loop,
        ).result(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.upstream is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
