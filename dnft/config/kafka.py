"""``kafka``: brokers, topics, and the producer and consumer tuning every daemon shares."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

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


class KafkaSettings(ConfigModel):
    bootstrap_servers: list[str] = Field(min_length=1)
    client_id: str = "dnft"
    # Daemons create missing topics at start; in production they are usually managed
    # (Strimzi, Terraform): set false there.
    create_topics: bool = True
    # Partitions bound consumer parallelism: the most regenerator / render replicas that help.
    partitions: int = Field(default=6, ge=1, le=10_000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    topics: TopicSettings = TopicSettings()
    producer: ProducerSettings = ProducerSettings()
    consumer: ConsumerSettings = ConsumerSettings()

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {server!r}")
        return servers
