"""dnft's own Kafka clients over TLS against the real broker (tansu behind a TLS terminator).

tansu 0.6.0 cannot serve TLS itself (``--cert`` and ``--key`` are mutually exclusive in its
command line, and it needs both), so the broker advertises a TLS terminator's address and
every connection (bootstrap and broker) makes a real handshake against a CA made here.
SASL is covered by tests/unit/test_kafka_security.py: see docs/runbook.md, "Kafka security",
for what tansu 0.6.0 does with SASL and the manual check against Apache Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnft.config import ConsumerSettings, KafkaSettings
from dnft.config.kafka import KafkaSecuritySettings, KafkaTlsSettings
from dnft.devservices import TansuService
from dnft.devservices.ports import free_port
from dnft.errors import KafkaError
from dnft.kafka import AsyncConsumer, AsyncProducer, OutgoingMessage, ensure_topics
from dnft.kafka.groups import Target, plan_reset
from tests.support.kafka import QUICK_CONSUMER, Pki, TlsTerminator, write_test_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_bootstrap(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a TLS-only Kafka endpoint: the terminator in front of tansu."""
    terminator = TlsTerminator(pki, free_port())
    terminator.start()
    broker = TansuService(tmp_path_factory.mktemp("tansu-tls"), advertise=terminator.address)
    try:
        broker.start()
        host, _, port = broker.listener.rpartition(":")
        terminator.upstream = (host, int(port))
        yield terminator.address
    finally:
        broker.stop()
        terminator.stop()


def tls_settings(bootstrap: str, ca_file: Path | None) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=[bootstrap],
        consumer=ConsumerSettings(**QUICK_CONSUMER),
        security=KafkaSecuritySettings(protocol="SSL", tls=KafkaTlsSettings(ca_file=ca_file)),
    )


class TestKafkaOverTls:
    """Producer, consumer, topic admin and group tools all speak TLS when configured."""

    async def test_produce_consume_and_admin_over_tls(self, tls_bootstrap: str, pki: Pki) -> None:
        settings = tls_settings(tls_bootstrap, pki.ca_file)
        topic = f"test.tls.{uuid.uuid4().hex[:8]}"
        group = f"g-{uuid.uuid4().hex[:8]}"
        await ensure_topics(settings, {topic: 2})

        producer = AsyncProducer(settings)
        await producer.start()
        try:
            sent = [OutgoingMessage(topic, value=f"m{i}".encode(), key=b"k") for i in range(20)]
            deliveries = await producer.send_many(sent)
        finally:
            await producer.close()
        assert len(deliveries) == 20

        consumer = AsyncConsumer(settings, group_id=group, topics=[topic])
        await consumer.start()
        try:
            got: list[bytes] = []
            deadline = asyncio.get_running_loop().time() + 30
            while len(got) < 20 and asyncio.get_running_loop().time() < deadline:
                got.extend(m.value or b"" for m in await consumer.poll(timeout_ms=500))
        finally:
            await consumer.close()
        assert got == [m.value for m in sent]

        # The group tools' admin client (dnft replay --consumer) goes through TLS too.
        moves = await asyncio.to_thread(plan_reset, settings, group, [topic], Target(latest=True))
        # (Targets themselves read low on tansu: its ListOffsets under-reports, FACTS.md.)
        assert {m.partition for m in moves} == {0, 1}

    async def test_client_without_the_ca_fails_naming_the_certificate(
        self, tls_bootstrap: str
    ) -> None:
        """The system CAs do not know the test CA: the producer must refuse the broker, and
        say that the certificate is why (kafka-python alone only says NoBrokersAvailable,
        after about 30 s of bootstrap retries)."""
        producer = AsyncProducer(tls_settings(tls_bootstrap, None))
        with pytest.raises(KafkaError) as caught:
            await producer.start()
        await producer.close()
        message = str(caught.value)
        assert "certificate verify failed" in message or "unable to get local issuer" in message
        assert "kafka.security.tls.ca_file" in message

    async def test_plaintext_client_cannot_use_the_tls_endpoint(self, tls_bootstrap: str) -> None:
        """The endpoint really is TLS-only: a client without kafka.security fails."""
        producer = AsyncProducer(KafkaSettings(bootstrap_servers=[tls_bootstrap]))
        with pytest.raises(KafkaError):
            await producer.start()
        await producer.close()
