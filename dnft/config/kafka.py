"""``kafka``: brokers, topics, and the producer and consumer tuning every daemon shares."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dnft.config.base import ConfigModel


class ProducerSettings(ConfigModel):
    acks: Literal["all", "1", "0"] = "all"
    enable_idempotence: bool = True
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "none"
    linger_ms: int = Field(default=5, ge=0, le=10_000)
    batch_size: int = Field(default=256 * 1024, ge=1024)
    request_timeout_ms: int = Field(default=30_000, ge=1_000)


class ConsumerSettings(ConfigModel):
    # Tansu (and Kafka) hold a new member's JoinGroup for up to half the session timeout;
    # 10 s keeps rebalances quick while surviving a GC pause.
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=60_000, ge=1_000)
    max_poll_records: int = Field(default=500, ge=1)


class TopicSettings(ConfigModel):
    chain_events: str = "dnft.chain.events.v1"
    oracle_observations: str = "dnft.oracle.observations.v1"
    render_jobs: str = "dnft.render.jobs.v1"
    metadata_updates: str = "dnft.metadata.updates.v1"
    dead_letter: str = "dnft.dead-letter.v1"


# How keyed records are placed (dnft/kafka/partition.py): murmur2 is the Java client's default;
# crc32 is dnft's former placement, kept for topics that already hold keys placed by it.
PartitionerName = Literal["murmur2", "crc32"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaTlsSettings(ConfigModel):
    # None: the system's CA bundle (a public CA); set it for a private CA (Strimzi, MSK).
    ca_file: Path | None = None
    # Client certificate and key: only for brokers that require mutual TLS.
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> KafkaTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "kafka.security.tls.cert_file and kafka.security.tls.key_file go together"
            )
        return self


class KafkaSaslSettings(ConfigModel):
    mechanism: SaslMechanism | None = None
    username: str | None = Field(default=None, min_length=1, max_length=256)
    # The password lives in a file (a mounted Secret), never inline in the YAML: there is
    # no `password` key, so a config holding one is refused.
    password_file: Path | None = None


class KafkaSecuritySettings(ConfigModel):
    """The files it names are checked when a Kafka client is built and by ``dnft config
    check`` (dnft/kafka/security.py), not at load: the api and the migrations load the same
    config and never talk to Kafka, so they need not hold its credentials."""

    protocol: SecurityProtocol = "PLAINTEXT"
    tls: KafkaTlsSettings = KafkaTlsSettings()
    sasl: KafkaSaslSettings = KafkaSaslSettings()

    def files(self) -> dict[str, Path]:
        """Each file this section names, by its key (``kafka.security.tls.ca_file``...)."""
        named = {
            "tls.ca_file": self.tls.ca_file,
            "tls.cert_file": self.tls.cert_file,
            "tls.key_file": self.tls.key_file,
            "sasl.password_file": self.sasl.password_file,
        }
        return {f"kafka.security.{key}": path for key, path in named.items() if path is not None}

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecuritySettings:
        """Settings the chosen protocol would silently ignore are refused: a password that is
        never sent or a CA that is never checked hides a misconfiguration."""
        key = "kafka.security"
        uses_sasl = self.protocol.startswith("SASL_")
        uses_tls = self.protocol.endswith("SSL")
        sasl = self.sasl
        if uses_sasl:
            for name in ("mechanism", "username", "password_file"):
                if getattr(sasl, name) is None:
                    raise ValueError(
                        f"{key}.sasl.{name} is required when {key}.protocol is {self.protocol}"
                    )
        elif sasl != KafkaSaslSettings():
            raise ValueError(
                f"{key}.sasl is set but {key}.protocol is {self.protocol}: "
                "use SASL_SSL (or SASL_PLAINTEXT) to authenticate"
            )
        if not uses_tls and self.tls != KafkaTlsSettings():
            raise ValueError(
                f"{key}.tls is set but {key}.protocol is {self.protocol}: use SSL or SASL_SSL"
            )
        return self


class KafkaSettings(ConfigModel):
    bootstrap_servers: list[str] = Field(min_length=1)
    client_id: str = "dnft"
    # Daemons create missing topics at start; in production they are usually managed
    # (Strimzi, Terraform): set false there.
    create_topics: bool = True
    # Partitions bound consumer parallelism: the most regenerator / render replicas that help.
    partitions: int = Field(default=6, ge=1, le=10_000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    # murmur2 agrees with every other Kafka client; crc32 only for topics already written with
    # it (switching moves keys: docs/runbook.md, "Kafka partitioner").
    partitioner: PartitionerName = "murmur2"
    topics: TopicSettings = TopicSettings()
    producer: ProducerSettings = ProducerSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    # TLS and SASL for every client (producer, consumer, admin, audit): dnft/kafka/security.py.
    security: KafkaSecuritySettings = KafkaSecuritySettings()

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {server!r}")
        return servers
