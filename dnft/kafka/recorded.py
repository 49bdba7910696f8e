"""The partitioner a deployment's topics were written with, kept in Postgres
(``kafka_partitioner``, migration 0009): a producer whose ``kafka.partitioner`` differs
refuses to start rather than sending a token's next records to another partition."""

from __future__ import annotations

import asyncpg

from dnft.config.kafka import PartitionerName
from dnft.config.postgres import PostgresSettings
from dnft.db import connect
from dnft.errors import ConfigError

__all__ = ["check_recorded_partitioner"]


async def check_recorded_partitioner(postgres: PostgresSettings, name: PartitionerName) -> None:
    """Record ``name`` if none is recorded yet (the first producer of a new deployment);
    raise ConfigError on ``kafka.partitioner`` when another one is. A read-only role (the
    api's) only reads. Raises ServiceError when Postgres is down."""
    conn = await connect(postgres)
    try:
        recorded = await conn.fetchval("select name from kafka_partitioner")
        if recorded is None:
            try:
                await conn.execute(
                    "insert into kafka_partitioner (name) values ($1) on conflict do nothing", name
                )
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ReadOnlySQLTransactionError):
                return  # a writer daemon records it
            recorded = await conn.fetchval("select name from kafka_partitioner")
    finally:
        await conn.close()
    if recorded != name:
        raise ConfigError(
            "kafka.partitioner",
            f"this deployment's topics were written with {recorded!r}, the setting says "
            f"{name!r}: switching moves every key to another partition. Set "
            f"kafka.partitioner: {recorded}, or switch as docs/runbook.md 'Kafka partitioner' "
            f"says (drain every consumer, then `update kafka_partitioner set name = '{name}'`)",
        )
