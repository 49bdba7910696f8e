"""Topic administration: create what a daemon needs at start (when ``create_topics`` is on)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError as _KafkaLibError
from kafka.errors import TopicAlreadyExistsError

from dnft.config import KafkaSettings
from dnft.errors import KafkaError
from dnft.kafka.security import client_security_kwargs, explain_connect_failure


async def ensure_topics(
    settings: KafkaSettings, topics: Mapping[str, int], replication_factor: int = 1
) -> None:
    """Create missing topics with the given partition counts; existing ones are left alone."""

    def create() -> None:
        admin = KafkaAdminClient(
            bootstrap_servers=list(settings.bootstrap_servers),
            client_id=f"{settings.client_id}-admin",
            **client_security_kwargs(settings),
        )
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(name, partitions, replication_factor)
                for name, partitions in topics.items()
                if name not in existing
            ]
            # A concurrent creator may win the race: that is fine.
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(new)
        finally:
            admin.close()

    try:
        await asyncio.to_thread(create)
    except _KafkaLibError as exc:
        why = await asyncio.to_thread(explain_connect_failure, settings)
        raise KafkaError(f"cannot create topics {sorted(topics)}: {exc!r} {why}".rstrip()) from exc
