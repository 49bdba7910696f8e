"""Consume, process, commit: the loop every dnft consumer runs (regenerator, render workers,
pusher), in the spirit of Sentry's arroyo, with one explicit commit point.

A batch moves through three steps, wired in one place (:class:`StreamProcessor`):

1. **decode** each message into a typed value;
2. **process** the decoded batch: the handler makes its side effects durable (a Postgres
   transaction, acknowledged produces) and returns only when they are;
3. **commit** the batch's offsets. Nothing auto-commits. A crash before the commit replays the
   batch, so handlers must be idempotent (dedupe by event id): a batch may partly run twice.

Nothing a message carries stops a consumer. Every error is one of two kinds:

* a **dependency error** (:func:`is_dependency_error`): something outside the message failed
  and retrying later can succeed. :class:`dnft.errors.DependencyError` and its subclasses
  (``ServiceError``: ``RpcError``, ``KafkaError``, storage's ``StorageError``;
  ``MissingDependencyError``), ``OSError`` (connections, ``TimeoutError``), kafka-python's
  ``KafkaError``, and asyncpg's connection, resource, operator-intervention (shutdown, a
  cancelled or timed-out statement), system and transaction-rollback (deadlock,
  serialization) errors and its client ``InterfaceError`` (except its ``ValueError`` kinds,
  which reject a value). An error whose ``__cause__`` chain holds one counts as one. It
  propagates: nothing is committed, the daemon stops or restarts and the batch is processed
  again; nothing is lost.
* anything else is the **message's** fault and sends that message to the dead-letter topic
  with its reason, and the consumer goes on (:data:`DeadReason`):

  - ``tombstone``: a record with no value. dnft produces none (its topics are not compacted),
    so one is a foreign or hostile producer's: it is dead-lettered, not skipped, so it is
    seen (metric, DLQ record with its key and offset) and counts against the poison cap;
  - ``invalid``: decoding raised (any error type: not JSON, the schema, a value that does not
    convert);
  - ``handler_error``: ``process(batch)`` raised; the batch is then processed again one
    message at a time to find the message(s) at fault: those that raise again are
    dead-lettered, the others processed, then the batch is committed.

Dead letters are acknowledged by the broker before the offsets move past them, and a consumer
stops (:class:`PoisonRatioExceeded`) instead of dead-lettering when too large a share of
recent messages failed (:class:`PoisonPolicy`): a broken handler or a poisoned topic stops
the daemon rather than draining the topic into the DLQ.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Final, Generic, Literal, TypeVar

import asyncpg
import orjson
import structlog
from kafka.errors import KafkaError as _KafkaLibError

from dnft import metrics
from dnft.errors import DecodeError, DependencyError, DnftError
from dnft.kafka import AsyncConsumer, AsyncProducer, ConsumedMessage, OutgoingMessage
from dnft.messages import Message, decode_message

T = TypeVar("T")
log = structlog.get_logger("dnft.stream")

DeadReason = Literal["invalid", "tombstone", "handler_error"]
# What a dead letter keeps of the record's value, its key and the error text. JSON escapes a
# control byte as six, so the worst dead letter stays near 400 KiB, under the default 1 MiB
# request size: a dead letter too large to send would itself stop the consumer.
DLQ_VALUE_BYTES: Final = 65536
DLQ_KEY_BYTES: Final = 1024
DLQ_ERROR_CHARS: Final = 2000

_DEPENDENCY_ERRORS: Final = (
    DependencyError,
    OSError,  # ConnectionError, TimeoutError (asyncio's too)
    _KafkaLibError,
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.PostgresSystemError,
    asyncpg.TransactionRollbackError,
    asyncpg.ReadOnlySQLTransactionError,  # a failover left the pool on a demoted primary
    asyncpg.LockNotAvailableError,  # lock_timeout: another writer holds the row
)


class InvalidMessage(DnftError, ValueError):
    """Raised by a decoder: the message can never be processed (goes to the DLQ)."""


class PoisonRatioExceeded(DnftError, RuntimeError):
    """Too many recent messages failed: stop instead of draining the topic."""


def is_dependency_error(exc: BaseException) -> bool:
    """Whether ``exc`` means a dependency failed (retry later) rather than the message being
    at fault (dead-letter it); see the module's docstring for the list."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 16:  # a bounded walk down the explicit causes
        if isinstance(current, BaseExceptionGroup):
            return any(is_dependency_error(e) for e in current.exceptions)
        if isinstance(current, _DEPENDENCY_ERRORS):
            return True
        if isinstance(current, asyncpg.InterfaceError) and not isinstance(current, ValueError):
            return True  # the connection or pool is closed, not a rejected value
        current = current.__cause__
        seen += 1
    return False


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    message: ConsumedMessage
    value: T


@dataclass(frozen=True, slots=True)
class PoisonPolicy:
    """Stop when more than ``max_ratio`` of the last ``window`` messages failed (were
    dead-lettered), and at least ``min_invalid`` of them did: a single bad message never stops
    a consumer."""

    max_ratio: float = 0.1
    window: int = 1000
    min_invalid: int = 10


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message on its way to the dead-letter topic: why (``reason``) and the error text."""

    message: ConsumedMessage
    reason: DeadReason
    error: str


Decoder = Callable[[ConsumedMessage], T]
Handler = Callable[[Sequence[Decoded[T]]], Awaitable[None]]


@dataclass(eq=False)
class StreamProcessor(Generic[T]):
    """The loop of one consumer: ``consumer`` -> ``decode`` each record -> ``process`` the
    batch -> commit; messages at fault go to ``dlq_topic`` through ``dlq``, under the
    ``poison`` cap. ``processed`` and ``invalid`` (dead-lettered) count messages so far."""

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
    # The last ``poison.window`` messages' outcomes: True for a dead-lettered one.
    _recent: deque[bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.poison.window)

    async def run(self, stopping: asyncio.Event) -> None:
        """Loop until ``stopping``; the batch in flight is finished and committed first.

        Raises PoisonRatioExceeded, and dependency errors (KafkaError, Postgres, storage...)
        from the consumer or the handler: the offsets of a failed batch are not committed, so
        it is processed again after a restart.
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
        """Decode, process and commit one batch (see the module's docstring)."""
        valid: list[Decoded[T]] = []
        dead: list[DeadLetter] = []
        for message in messages:
            outcome = self._decode(message)
            if isinstance(outcome, DeadLetter):
                dead.append(outcome)
            else:
                valid.append(outcome)
        await self._dead_letter_all(dead)  # before processing: the cap may stop us first
        failed = await self._process(valid)
        self._recent.extend([False] * (len(valid) - len(failed)))
        await self._dead_letter_all(failed)
        self.processed += len(valid) - len(failed)
        await self.consumer.commit(_next_offsets(messages))

    def _decode(self, message: ConsumedMessage) -> Decoded[T] | DeadLetter:
        # The record's type says bytes, but a tombstone's value is None on the wire.
        if message.value is None:
            return DeadLetter(message, "tombstone", "tombstone: the record has no value")
        try:
            return Decoded(message, self.decode(message))
        except Exception as exc:
            if is_dependency_error(exc):
                raise
            return DeadLetter(message, "invalid", _describe(exc, plain=InvalidMessage))

    async def _process(self, valid: Sequence[Decoded[T]]) -> list[DeadLetter]:
        """Process ``valid``; when the batch fails for a message's fault, again one message
        at a time. Returns the messages whose handling failed. Raises dependency errors."""
        if not valid:
            return []
        try:
            await self.process(valid)
            return []
        except Exception as exc:
            if is_dependency_error(exc):
                raise
            if len(valid) == 1:  # already alone: it is the one at fault
                return [DeadLetter(valid[0].message, "handler_error", _describe(exc))]
            first = exc
        log.warning(
            "batch failed; processing its messages one at a time",
            group=self.consumer.group_id,
            messages=len(valid),
            error=_describe(first),
        )
        failed: list[DeadLetter] = []
        for item in valid:
            try:
                await self.process([item])
            except Exception as exc:
                if is_dependency_error(exc):
                    raise
                failed.append(DeadLetter(item.message, "handler_error", _describe(exc)))
        return failed

    async def _dead_letter_all(self, dead: Sequence[DeadLetter]) -> None:
        """Count ``dead`` against the poison cap, then send them to the DLQ, acknowledged."""
        if not dead:
            return
        self._recent.extend([True] * len(dead))
        self.invalid += len(dead)
        self._check_poison()
        for d in dead:
            log.warning(
                "message to dead-letter topic",
                group=self.consumer.group_id,
                topic=d.message.topic,
                partition=d.message.partition,
                offset=d.message.offset,
                reason=d.reason,
                error=d.error,
            )
        if self.dlq is None:
            raise InvalidMessage(f"{len(dead)} invalid message(s) and no dead-letter producer")
        await self.dlq.send_many([self._dead_letter(d) for d in dead])  # before the commit
        for d in dead:
            metrics.stream_dead_letters_total.labels(self.consumer.group_id, d.reason).inc()

    def _check_poison(self) -> None:
        bad = sum(self._recent)
        policy = self.poison
        if bad >= policy.min_invalid and bad / len(self._recent) > policy.max_ratio:
            raise PoisonRatioExceeded(
                f"{bad} of the last {len(self._recent)} messages of group "
                f"{self.consumer.group_id} failed (cap {policy.max_ratio:.0%}): stopping "
                "rather than draining the topic into the dead-letter queue; see the DLQ topic "
                f"{self.dlq_topic} for the reasons"
            )

    def _dead_letter(self, dead: DeadLetter) -> OutgoingMessage:
        message = dead.message
        value: bytes | None = message.value
        body = {
            "reason": dead.reason,
            "error": dead.error,
            "group": self.consumer.group_id,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": _cut(message.key, DLQ_KEY_BYTES),
            "key_bytes": None if message.key is None else len(message.key),
            "value": _cut(value, DLQ_VALUE_BYTES),
            "value_bytes": None if value is None else len(value),
        }
        key = message.key
        if key is not None and len(key) > DLQ_KEY_BYTES:  # a hostile key: its digest instead
            key = b"sha256:" + hashlib.sha256(key).hexdigest().encode()
        return OutgoingMessage(
            self.dlq_topic,
            value=orjson.dumps(body),
            key=key,
            headers=(
                ("dnft-dlq-reason", dead.reason.encode()),
                ("dnft-dlq-error", dead.error[:500].encode()),
            ),
        )


def _cut(data: bytes | None, limit: int) -> str | None:
    return None if data is None else data[:limit].decode("utf-8", "replace")


def _describe(exc: BaseException, *, plain: type[BaseException] | None = None) -> str:
    """The error's text for a log and a dead letter, bounded; prefixed by its type unless it
    is ``plain`` (whose text already says what is wrong)."""
    try:
        text = str(exc)
    except Exception:  # a hostile value's error may not even print
        text = "(unprintable)"
    if plain is None or type(exc) is not plain:
        text = f"{type(exc).__name__}: {text}"
    return text[:DLQ_ERROR_CHARS]


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
