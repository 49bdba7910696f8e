"""Kafka access around kafka-python that never blocks the event loop.

kafka-python has no asyncio API, so every blocking call runs in a thread. A consumer is not
thread-safe: each :class:`AsyncConsumer` owns one worker thread and runs all of its calls
there, in order. The producer is thread-safe; a batch is sent and awaited in one thread hop.

Nothing here auto-commits: consumers commit explicit offsets, after the caller made the
message's side effects durable. The code speaks only the Kafka protocol (no broker-specific
calls), so it runs the same against tansu in tests and Apache Kafka in production.
"""

from __future__ import annotations

from dnft.kafka.admin import ensure_topics
from dnft.kafka.consumer import AsyncConsumer
from dnft.kafka.partition import partition_for
from dnft.kafka.producer import AsyncProducer, PendingBatch
from dnft.kafka.records import ConsumedMessage, Delivery, KeyedRecord, OutgoingMessage
from dnft.kafka.security import client_security_kwargs, explain_connect_failure, ssl_context

__all__ = [
    "AsyncConsumer",
    "AsyncProducer",
    "ConsumedMessage",
    "Delivery",
    "KeyedRecord",
    "OutgoingMessage",
    "PendingBatch",
    "client_security_kwargs",
    "ensure_topics",
    "explain_connect_failure",
    "partition_for",
    "ssl_context",
]
