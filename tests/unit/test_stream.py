"""The stream's split between a message's fault (dead-lettered, the consumer goes on) and a
dependency's (raised, nothing committed), on fakes of the consumer and the DLQ producer; the
real broker runs the same in tests/integration/test_stream.py."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any, cast

import asyncpg
import asyncpg.exceptions._base as asyncpg_base
import orjson
import pytest
import structlog

from dnft.errors import KafkaError, MissingDependencyError, ServiceError
from dnft.kafka import AsyncConsumer, AsyncProducer, ConsumedMessage, OutgoingMessage
from dnft.storage.blobs import StorageError
from dnft.stream import (
    Decoded,
    InvalidMessage,
    PoisonPolicy,
    PoisonRatioExceeded,
    StreamProcessor,
    is_dependency_error,
)


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


class TestDependencyErrors:
    @pytest.mark.parametrize(
        "exc",
        [
            ServiceError("db"),
            KafkaError("broker"),
            StorageError("s3"),
            MissingDependencyError("torch"),
            OSError("disk"),
            ConnectionResetError(),
            TimeoutError(),
            asyncpg.PostgresConnectionError("gone"),
            asyncpg.exceptions.QueryCanceledError("statement timeout"),
            asyncpg.exceptions.DeadlockDetectedError("deadlock"),
            asyncpg.exceptions.AdminShutdownError("shutdown"),
            asyncpg.exceptions.ReadOnlySQLTransactionError("failover: a demoted primary"),
            asyncpg.exceptions.LockNotAvailableError("lock_timeout"),
            asyncpg.InterfaceError("pool is closing"),
            _caused(RuntimeError("render failed"), OSError("model volume")),
            ExceptionGroup("tasks", [ValueError("x"), ConnectionError("y")]),
        ],
    )
    def test_dependency(self, exc: BaseException) -> None:
        assert is_dependency_error(exc)

    @pytest.mark.parametrize(
        "exc",
        [
            ValueError("bad value"),
            RuntimeError("bug"),
            KeyError("trait"),
            InvalidMessage("bad"),
            asyncpg.DataError("numeric field overflow"),
            asyncpg.exceptions.NumericValueOutOfRangeError("out of range"),
            asyncpg_base.DataError("invalid input for query argument $1"),
            asyncpg.exceptions.UniqueViolationError("duplicate"),
            _caused(RuntimeError("wrapped"), ValueError("inner")),
            ExceptionGroup("tasks", [ValueError("x"), KeyError("y")]),
        ],
    )
    def test_message_fault(self, exc: BaseException) -> None:
        assert not is_dependency_error(exc)


@pytest.fixture(autouse=True)
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The stream's log events (captured: whatever another test configured stays out)."""
    with structlog.testing.capture_logs() as events:
        yield events


class FakeConsumer:
    group_id = "g"

    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        self.commits.append(offsets)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend(messages)


def records(*values: bytes | None) -> list[ConsumedMessage]:
    return [ConsumedMessage("t", 0, i, b"k", cast(bytes, v), (), 0) for i, v in enumerate(values)]


def decode(message: ConsumedMessage) -> int:
    return int(message.value)  # a ValueError for anything else: not only InvalidMessage


class Harness:
    def __init__(self, fail: Any = None, **options: Any) -> None:
        self.consumer = FakeConsumer()
        self.dlq = FakeProducer()
        self.calls: list[list[int]] = []
        self.fail = fail
        self.processor = StreamProcessor(
            cast(AsyncConsumer, self.consumer),
            decode=decode,
            process=self.process,
            dlq=cast(AsyncProducer, self.dlq),
            dlq_topic="dlq",
            **options,
        )

    async def process(self, batch: Sequence[Decoded[int]]) -> None:
        values = [d.value for d in batch]
        self.calls.append(values)
        if self.fail is not None:
            self.fail(values)

    def dead(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.value) for m in self.dlq.sent]


class TestHandleBatch:
    async def test_decode_errors_of_any_type_and_tombstones(self) -> None:
        h = Harness()
        await h.processor.handle_batch(records(b"1", None, b"x", b"2"))
        assert h.calls == [[1, 2]]
        assert [(d["offset"], d["reason"]) for d in h.dead()] == [(1, "tombstone"), (2, "invalid")]
        assert h.dead()[0]["value"] is None
        assert h.dead()[1]["error"].startswith("ValueError: invalid literal")
        assert dict(h.dlq.sent[1].headers)["dnft-dlq-reason"] == b"invalid"
        assert h.consumer.commits == [{("t", 0): 4}]

    async def test_a_hostile_key_keeps_the_dead_letter_small(self) -> None:
        # A dead letter over the broker's request size would be refused as a Kafka error, a
        # dependency's fault: the consumer would restart into the same record forever.
        key = b"\x01" * 300_000
        h = Harness()
        await h.processor.handle_batch([ConsumedMessage("t", 0, 0, key, b"\x01" * 300_000, (), 0)])
        (sent,) = h.dlq.sent
        assert len(sent.value) < 512 * 1024
        assert sent.key is not None
        assert sent.key.startswith(b"sha256:")
        assert len(sent.key) < 100
        body = orjson.loads(sent.value)
        assert (body["key_bytes"], body["value_bytes"]) == (300_000, 300_000)
        assert len(body["key"]) == 1024

    async def test_handler_error_isolates_the_message(
        self, logs: list[MutableMapping[str, Any]]
    ) -> None:
        def fail(values: list[int]) -> None:
            if 13 in values:
                raise KeyError("unlucky")

        h = Harness(fail)
        await h.processor.handle_batch(records(b"1", b"13", b"2"))
        assert h.calls == [[1, 13, 2], [1], [13], [2]]
        assert [(d["offset"], d["reason"], d["error"]) for d in h.dead()] == [
            (1, "handler_error", "KeyError: 'unlucky'")
        ]
        assert (h.processor.processed, h.processor.invalid) == (2, 1)
        assert h.consumer.commits == [{("t", 0): 3}]
        assert [(e["event"], e.get("offset")) for e in logs] == [
            ("batch failed; processing its messages one at a time", None),
            ("message to dead-letter topic", 1),
        ]

    async def test_a_single_failing_message_is_not_retried(self) -> None:
        def fail(values: list[int]) -> None:
            raise ValueError("no")

        h = Harness(fail)
        await h.processor.handle_batch(records(b"5"))
        assert h.calls == [[5]]
        assert [d["reason"] for d in h.dead()] == ["handler_error"]

    @pytest.mark.parametrize("on_retry", [False, True])
    async def test_dependency_error_commits_nothing(self, on_retry: bool) -> None:
        def fail(values: list[int]) -> None:
            if len(values) > 1 and on_retry:
                raise ValueError("one of them")
            if len(values) == 1 or not on_retry:
                raise ServiceError("postgres down")

        h = Harness(fail)
        with pytest.raises(ServiceError, match="postgres down"):
            await h.processor.handle_batch(records(b"1", b"2"))
        assert h.consumer.commits == []
        assert h.dlq.sent == []

    async def test_failing_handler_hits_the_poison_cap(self) -> None:
        def fail(values: list[int]) -> None:
            raise RuntimeError("a bug, for every message")

        h = Harness(fail, poison=PoisonPolicy(max_ratio=0.5, window=10, min_invalid=3))
        await h.processor.handle_batch(records(b"1", b"2"))  # 2 failed: under min_invalid
        with pytest.raises(PoisonRatioExceeded, match="failed"):
            await h.processor.handle_batch(records(b"3", b"4"))
        assert len(h.consumer.commits) == 1  # the second batch is not committed
