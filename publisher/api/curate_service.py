"""What /curate needs beside the read-only API: credentials, the decision maker, and a Kafka
producer with the outbox loop that sends what decisions left to send.

Every replica runs the loop; rows are locked while sent (``skip locked``), so replicas never
send one twice at the same moment, and a message whose send failed is retried every
``api.curate.outbox_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import structlog

from dnft.collection import BoundCollection
from dnft.config import CurateSettings, Settings
from dnft.errors import ConfigError
from dnft.kafka import AsyncProducer
from dnft.timeline import Curator, flush_outbox
from publisher.api.curate_auth import CurateAuth
from publisher.api.login_guard import FailedLogins, PasswordChecker

log = structlog.get_logger("dnft.api.curate")

MIN_TOKEN_CHARS = 16


def read_token(settings: CurateSettings, env: MutableMapping[str, str] | None = None) -> str | None:
    """The bearer token from its environment variable or file, or None when neither is set.
    Raises ConfigError naming the key when the secret is missing, unreadable or too short.
    A token read from the environment is removed from it (``os.environ`` by default), so
    child processes do not inherit it."""
    env = os.environ if env is None else env
    if settings.token_env is not None:
        token, key = env.pop(settings.token_env, "").strip(), "api.curate.token_env"
        where = f"environment variable {settings.token_env}"
    elif settings.token_file is not None:
        key, where = "api.curate.token_file", f"file {settings.token_file}"
        try:
            token = Path(settings.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(key, f"cannot read the token {where}: {exc.strerror}") from None
    else:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(key, f"the token in {where} is missing or under {MIN_TOKEN_CHARS} chars")
    return token


@dataclass(slots=True)
class CurateContext:
    """/curate's share of the application; ``start`` before serving, ``stop`` after."""

    auth: CurateAuth
    curator: Curator
    producer: AsyncProducer
    pool: asyncpg.Pool
    topics: dict[str, str]
    interval_s: float
    _loop: asyncio.Task[None] | None = field(default=None)

    @classmethod
    def from_settings(
        cls, settings: Settings, pool: asyncpg.Pool, collections: list[BoundCollection]
    ) -> CurateContext:
        """Raises ConfigError for a missing or short token."""
        curate = settings.api.curate
        topics = {
            "metadata_updates": settings.kafka.topics.metadata_updates,
            "render_jobs": settings.kafka.topics.render_jobs,
        }
        return cls(
            auth=CurateAuth(
                token=read_token(curate),
                token_curator=curate.token_curator,
                users={u.name: u.password_hash for u in curate.users},
                checker=PasswordChecker(threads=curate.login_threads, queue=curate.login_queue),
                failures=FailedLogins(
                    burst=curate.failed_logins_burst,
                    per_client_per_min=curate.failed_logins_per_min,
                    global_per_min=curate.failed_logins_global_per_min,
                ),
            ),
            curator=Curator(
                pool, collections, public_url=settings.regenerator.public_url, topics=topics
            ),
            producer=AsyncProducer(
                settings.kafka, client_id=f"{settings.kafka.client_id}-api-curate"
            ),
            pool=pool,
            topics=topics,
            interval_s=curate.outbox_interval_s,
        )

    async def start(self) -> None:
        """Start the producer and the outbox loop (which first sends what a previous run
        left). Raises KafkaError when the broker is unreachable."""
        await self.producer.start()
        self._loop = asyncio.create_task(self._run())

    async def flush(self) -> int:
        """Send the outbox now; returns how many were sent (0 if sending failed: logged,
        retried by the loop)."""
        try:
            return await flush_outbox(self.pool, self.producer, self.topics)
        except Exception:
            log.exception("curation outbox: send failed, will retry")
            return 0

    async def _run(self) -> None:
        while True:
            await self.flush()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        await self.producer.close()
        self.auth.close()
