"""Plumbing for ``dnft status``: probes that turn a failure into "unreachable: reason", and
consumer-group lag read from the broker.

Reads only: no consumer joins a group, nothing is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from dnft.config import KafkaSettings

T = TypeVar("T")

# One stage's answer may take this long; a dead host must not hold up the whole table.
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Unreachable:
    """A source that could not be read, and why."""

    reason: str

    def __str__(self) -> str:
        return f"unreachable: {self.reason}"


def describe_failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if not text:
        return name
    return (text if text.startswith(name) else f"{name}: {text}")[:300]


async def probe(work: Awaitable[T], timeout_s: float = PROBE_TIMEOUT_S) -> T | Unreachable:
    """``work``'s result, or Unreachable naming the failure. Never raises (but cancellation).

    Any exception counts: a status table must show every stage it can, whatever one of them
    does; the exception's type is kept in the reason, so a bug stays visible.
    """
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        return Unreachable(f"no answer within {timeout_s:g} s")
    except Exception as exc:
        return Unreachable(describe_failure(exc))


@dataclass(frozen=True, slots=True)
class TopicLag:
    """A consumer group's position on one topic, summed over its partitions."""

    group: str
    topic: str
    partitions: int
    end: int  # sum of the partitions' end offsets as the broker reports them
    committed: int | None  # sum of committed offsets; None: the group never committed here
    lag: int  # records not yet committed (uncommitted partitions count from their start)
    uncommitted_partitions: int
    # Partitions whose committed offset is past the reported end: the broker under-reports
    # partition ends (seen on tansu), so the lag reads low.
    past_end_partitions: int
    exists: bool = True


def consumer_lags(
    settings: KafkaSettings, groups: Mapping[str, Sequence[str]], timeout_ms: int = 5_000
) -> list[TopicLag]:
    """Committed offset vs end offset of each ``group`` on each of its topics. Blocks.

    Raises kafka-python's errors when the broker cannot be reached.
    """
    # Imported here: every dnft command imports this module's command, few need kafka.
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import OffsetSpec

    from dnft.kafka import client_security_kwargs

    admin = KafkaAdminClient(
        bootstrap_servers=list(settings.bootstrap_servers),
        client_id=f"{settings.client_id}-status",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        **client_security_kwargs(settings),
    )
    try:
        topics = sorted({t for ts in groups.values() for t in ts})
        by_topic: dict[str, list[TopicPartition]] = {t: [] for t in topics}
        for described in admin.describe_topics(topics):
            name = described.get("name")
            if name in by_topic and not described.get("error_code"):
                for p in described.get("partitions") or []:
                    by_topic[name].append(TopicPartition(name, p["partition_index"]))
        every = [tp for tps in by_topic.values() for tp in tps]
        latest = admin.list_partition_offsets(dict.fromkeys(every, OffsetSpec.LATEST))
        earliest = admin.list_partition_offsets(dict.fromkeys(every, OffsetSpec.EARLIEST))
        out: list[TopicLag] = []
        for group, group_topics in groups.items():
            wanted = [tp for t in group_topics for tp in by_topic.get(t, [])]
            committed = admin.list_group_offsets({group: wanted}).get(group, {}) if wanted else {}
            for topic in group_topics:
                tps = sorted(by_topic.get(topic, []))
                end = lag = done = uncommitted = past_end = 0
                for tp in tps:
                    high, low = latest[tp].offset, earliest[tp].offset
                    entry = committed.get(tp)
                    position = None if entry is None or entry.offset < 0 else entry.offset
                    end += high
                    if position is None:
                        uncommitted += 1
                        lag += max(0, high - low)
                        continue
                    done += position
                    if position > high:
                        past_end += 1
                    lag += max(0, high - position)
                out.append(
                    TopicLag(
                        group=group,
                        topic=topic,
                        partitions=len(tps),
                        end=end,
                        committed=None if uncommitted == len(tps) else done,
                        lag=lag,
                        uncommitted_partitions=uncommitted,
                        past_end_partitions=past_end,
                        exists=bool(tps),
                    )
                )
        return out
    finally:
        admin.close()
