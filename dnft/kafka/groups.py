"""Consumer-group offsets: read them, and move them (for ``dnft replay --consumer``).

Blocking kafka-python admin calls: async callers run these functions in a thread. Kafka
refuses to move the offsets of a group that has live members (the members would overwrite
them with their next commit), so a reset checks membership first and reports refusals per
partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import NoError

from dnft.config import KafkaSettings
from dnft.errors import DnftError
from dnft.kafka.security import client_security_kwargs

# DescribeGroups v3+ answers carry "authorized operations"; tansu fills them with values
# kafka-python cannot parse. Version 2.2 of the protocol predates them and is served by
# every broker since Kafka 2.2.
_DESCRIBE_API_VERSION = (2, 2)


class GroupActiveError(DnftError, RuntimeError):
    """The group has live members: stop them before moving its offsets."""


class OffsetResetError(DnftError, RuntimeError):
    """The broker refused the reset for some partitions."""


@dataclass(frozen=True, slots=True)
class OffsetMove:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    target: int


@dataclass(frozen=True, slots=True)
class Target:
    """Where to move: exactly one of a timestamp (ms), an offset, or earliest/latest."""

    timestamp_ms: int | None = None
    offset: int | None = None
    earliest: bool = False
    latest: bool = False

    def __post_init__(self) -> None:
        chosen = [
            self.timestamp_ms is not None,
            self.offset is not None,
            self.earliest,
            self.latest,
        ]
        if sum(chosen) != 1:
            raise ValueError("choose exactly one of a timestamp, an offset, earliest or latest")


def _admin(settings: KafkaSettings, **extra: object) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=list(settings.bootstrap_servers),
        client_id=f"{settings.client_id}-admin",
        **client_security_kwargs(settings),
        **extra,
    )


def group_members(settings: KafkaSettings, group: str) -> list[str]:
    """Member ids (with their hosts) currently in ``group``. Blocks."""
    admin = _admin(settings, api_version=_DESCRIBE_API_VERSION)
    try:
        described = admin.describe_groups([group])
    finally:
        admin.close()
    info = described.get(group) or {}
    return [
        f"{m['member_id']} ({m.get('client_host') or 'unknown host'})"
        for m in info.get("members", [])
    ]


def plan_reset(
    settings: KafkaSettings, group: str, topics: Sequence[str], target: Target
) -> list[OffsetMove]:
    """Where every partition of ``topics`` would move, without moving anything. Blocks.

    Targets are clamped to each partition's [earliest, latest] range; a timestamp past the
    last record resolves to the latest offset.
    """
    admin = _admin(settings)
    try:
        partitions: list[TopicPartition] = []
        for described in admin.describe_topics(list(topics)):
            if described.get("error_code"):  # 3: unknown topic
                continue
            for p in described.get("partitions", []):
                partitions.append(TopicPartition(described["name"], p["partition_index"]))
        missing = sorted(set(topics) - {tp.topic for tp in partitions})
        if missing:
            raise OffsetResetError(f"no such topic(s): {missing}")
        earliest = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.EARLIEST))
        latest = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST))
        by_time = (
            admin.list_partition_offsets(dict.fromkeys(partitions, target.timestamp_ms))
            if target.timestamp_ms is not None
            else {}
        )
        committed = admin.list_group_offsets({group: partitions}).get(group, {})
    finally:
        admin.close()
    moves: list[OffsetMove] = []
    for tp in sorted(partitions):
        low, high = earliest[tp].offset, latest[tp].offset
        if target.earliest:
            wanted = low
        elif target.latest:
            wanted = high
        elif target.offset is not None:
            wanted = target.offset
        else:
            found = by_time[tp].offset
            wanted = high if found is None or found < 0 else found
        current = committed.get(tp)
        moves.append(
            OffsetMove(
                tp.topic,
                tp.partition,
                None if current is None or current.offset < 0 else current.offset,
                min(max(wanted, low), high),
            )
        )
    return moves


def apply_reset(
    settings: KafkaSettings, group: str, moves: Sequence[OffsetMove], *, force: bool = False
) -> None:
    """Commit ``moves`` for ``group``. Blocks.

    Raises GroupActiveError while the group has members (unless ``force``: the broker is then
    asked anyway, and refuses if members are still there), OffsetResetError naming the
    partitions the broker refused.
    """
    if not force:
        members = group_members(settings, group)
        if members:
            raise GroupActiveError(
                f"consumer group {group!r} has {len(members)} active member(s): "
                f"{', '.join(members)}; stop them first (e.g. scale the deployment to 0) "
                "or pass --force"
            )
    admin = _admin(settings)
    try:
        result = admin.reset_group_offsets(
            group, {TopicPartition(m.topic, m.partition): m.target for m in moves}
        )
    finally:
        admin.close()
    refused = sorted(
        f"{tp.topic}[{tp.partition}]: {outcome['error'].__name__}"
        for tp, outcome in result.items()
        if outcome["error"] is not NoError
    )
    if refused:
        raise OffsetResetError(
            f"the broker refused to move {len(refused)} partition(s) of group {group!r} "
            f"(live members?): {'; '.join(refused)}"
        )
