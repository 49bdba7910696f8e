"""Consume, process, commit: the loop every dnft consumer runs (regenerator, render workers,
pusher), in the spirit of Sentry's arroyo, with one explicit commit point.

A batch moves through three steps, wired in one place (:class:`StreamProcessor`):

1. **decode** each message into a typed value; a message that fails goes to the dead-letter
   topic with its reason (never silently dropped), unless too large a share of recent messages
   failed: then the consumer stops (:class:`PoisonRatioExceeded`) rather than draining the
   topic into the DLQ;
2. **process** the decoded batch: the handler makes its side effects durable (a Postgres
   transaction, acknowledged produces) and returns only when they are;
3. **commit** the batch's offsets. Nothing auto-commits. A crash before the commit replays the
   batch, so handlers must be idempotent (dedupe by event id).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Generic, TypeVar

import orjson
import structlog

from dnft import metrics
from dnft.errors import DecodeError, DnftError
from dnft.kafka import AsyncConsumer, AsyncProducer, ConsumedMessage, OutgoingMessage
from dnft.messages import Message, decode_message

T = TypeVar("T")
log = structlog.get_logger("dnft.stream")


class InvalidMessage(DnftError, ValueError):
    """Raised by a decoder: the message can never be processed (goes to the DLQ)."""


class PoisonRatioExceeded(DnftError, RuntimeError):
    """Too many recent messages were invalid: stop instead of draining the topic."""


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    message: ConsumedMessage
    value: T


@dataclass(frozen=True, slots=True)
class PoisonPolicy:
    """Stop when more than ``max_ratio`` of the last ``window`` messages were invalid
    (and at least ``min_invalid`` of them were: a single bad message never stops a consumer)."""

    max_ratio: float = 0.1
    window: int = 1000
    min_invalid: int = 10


Decoder = Callable[[ConsumedMessage], T]
Handler = Callable[[Sequence[Decoded[T]]], Awaitable[None]]


@dataclass(eq=False)
class StreamProcessor(Generic[T]):
    """The loop of one consumer: ``consumer`` -> ``decode`` each record (invalid ones to
    ``dlq_topic`` through ``dlq``, under the ``poison`` cap) -> ``process`` the batch -> commit.
    ``processed`` and ``invalid`` count messages so far."""

    consumer: AsyncConsumer
    _: KW_ONLY
    decode: Decoder[T]
    process: Handler[T]
    dlq: AsyncProducer | None
    dlq_topic: str
    poison: PoisonPolicy = PoisonPolicy()
    max_batch: int = 500
    poll_timeout_ms: int = 500
    lag_every_s: float = 10.0
    processed: int = field(default=0, init=False)
    invalid: int = field(default=0, init=False)
    # The last ``poison.window`` messages: True for an invalid one.
    _recent: deque[bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.poison.window)

    async def run(self, stopping: asyncio.Event) -> None:
        """Loop until ``stopping``; the batch in flight is finished and committed first.

        Raises PoisonRatioExceeded, KafkaError, and whatever the handler raises (offsets of
        a failed batch are not committed: it is processed again after a restart).
        """
        last_lag = 0.0
        while not stopping.is_set():
            messages = await self.consumer.poll(self.poll_timeout_ms, self.max_batch)
            if messages:
                await self.handle_batch(messages)
            if time.monotonic() - last_lag > self.lag_every_s:
                last_lag = time.monotonic()
                await self.consumer.update_lag()

    async def handle_batch(self, messages: Sequence[ConsumedMessage]) -> None:
        valid: list[Decoded[T]] = []
        dead: list[OutgoingMessage] = []
        for message in messages:
            try:
                valid.append(Decoded(message, self.decode(message)))
                self._recent.append(False)
            except InvalidMessage as exc:
                self._recent.append(True)
                self.invalid += 1
                dead.append(self._dead_letter(message, str(exc)))
                log.warning(
                    "invalid message to dead-letter topic",
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    reason=str(exc),
                )
        self._check_poison()
        if dead:
            if self.dlq is None:
                raise InvalidMessage(f"{len(dead)} invalid message(s) and no dead-letter producer")
            await self.dlq.send_many(dead)  # durable before the offsets move past them
            metrics.stream_dead_letters_total.labels(self.consumer.group_id).inc(len(dead))
        if valid:
            await self.process(valid)
        self.processed += len(valid)
        await self.consumer.commit(_next_offsets(messages))

    def _check_poison(self) -> None:
        bad = sum(self._recent)
        policy = self.poison
        if bad >= policy.min_invalid and bad / len(self._recent) > policy.max_ratio:
            raise PoisonRatioExceeded(
                f"{bad} of the last {len(self._recent)} messages of group "
                f"{self.consumer.group_id} were invalid (cap {policy.max_ratio:.0%}): stopping "
                "rather than draining the topic into the dead-letter queue; see the DLQ topic "
                f"{self.dlq_topic} for the reasons"
            )

    def _dead_letter(self, message: ConsumedMessage, reason: str) -> OutgoingMessage:
        body = {
            "reason": reason,
            "group": self.consumer.group_id,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key.decode("utf-8", "replace") if message.key else None,
            "value": message.value[:65536].decode("utf-8", "replace"),
        }
        return OutgoingMessage(
            self.dlq_topic,
            value=orjson.dumps(body),
            key=message.key,
            headers=(("dnft-dlq-reason", reason[:500].encode()),),
        )


def _next_offsets(messages: Sequence[ConsumedMessage]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        out[key] = max(out.get(key, 0), m.next_offset)
    return out


M = TypeVar("M", bound=Message)


def message_decoder(*kinds: type[M]) -> Decoder[M]:
    """Decode a record into its typed message (:mod:`dnft.messages`), accepting only the
    ``kinds`` given; anything else is an InvalidMessage (to the dead-letter topic)."""
    allowed = tuple(kinds)
    names = sorted(k.__name__ for k in allowed)

    def decode(message: ConsumedMessage) -> M:
        try:
            value = decode_message(message.value)
        except DecodeError as exc:
            raise InvalidMessage(str(exc)) from None
        if not isinstance(value, allowed):
            raise InvalidMessage(f"unexpected message {type(value).__name__} (expected {names})")
        return value

    return decode
