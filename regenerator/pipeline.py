"""`dnft regenerator`: the planner and the render workers, wired to Kafka through dnft.stream.

Roles, so each scales on its own: ``planner`` (consumer group ``regenerator.planner_group`` on
chain events and oracle observations) and ``render`` (group ``regenerator.render_group`` on
render jobs; run many, e.g. on GPU nodes). ``all`` runs both in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import structlog

from dnft import metrics
from dnft.collection.bound import load_bound_collections
from dnft.config import Settings
from dnft.db import create_pool
from dnft.health import HealthServer
from dnft.kafka import AsyncConsumer, AsyncProducer, ensure_topics
from dnft.storage.blobs import blob_store
from dnft.stream import Decoded, StreamProcessor, json_decoder
from regenerator.planner import Planner
from regenerator.render_worker import RenderWorker
from regenerator.renderers.factory import renderer_for
from schemas import CHAIN_EVENT_V1, CHAIN_RETRACTION_V1, ORACLE_OBSERVATION_V1, RENDER_JOB_V1

Role = Literal["planner", "render", "all"]
log = structlog.get_logger("dnft.regenerator")


async def run_regenerator(
    settings: Settings, role: Role, stopping: asyncio.Event, health: HealthServer | None
) -> None:
    collections = load_bound_collections(settings)
    topics = settings.kafka.topics
    # Renderers load before anything consumes: a bad model directory fails at start-up.
    renderers = {}
    if role in ("render", "all"):
        renderers = {
            c.collection.name: await asyncio.to_thread(renderer_for, c.collection)
            for c in collections
        }
    pool = await create_pool(settings.postgres)
    producer = AsyncProducer(settings.kafka, client_id=f"{settings.kafka.client_id}-regenerator")
    await producer.start()
    consumers: list[AsyncConsumer] = []
    try:
        if settings.kafka.create_topics:
            await ensure_topics(
                settings.kafka,
                {
                    name: settings.kafka.partitions
                    for name in (
                        topics.chain_events,
                        topics.oracle_observations,
                        topics.render_jobs,
                        topics.metadata_updates,
                        topics.dead_letter,
                    )
                },
                settings.kafka.replication_factor,
            )
        processors: list[StreamProcessor[dict[str, object]]] = []
        if role in ("planner", "all"):
            planner = Planner(pool, producer, collections, jobs_topic=topics.render_jobs)
            await planner.send_pending()  # jobs planned before a crash, not yet sent

            async def plan(batch: Sequence[Decoded[dict[str, object]]]) -> None:
                await planner.apply([d.value for d in batch])

            consumer = AsyncConsumer(
                settings.kafka,
                group_id=settings.regenerator.planner_group,
                topics=[topics.chain_events, topics.oracle_observations],
            )
            consumers.append(consumer)
            processors.append(
                StreamProcessor(
                    consumer,
                    process=plan,
                    dlq=producer,
                    dlq_topic=topics.dead_letter,
                    decode=json_decoder(CHAIN_EVENT_V1, CHAIN_RETRACTION_V1, ORACLE_OBSERVATION_V1),
                )
            )
        if role in ("render", "all"):
            worker = RenderWorker(
                pool,
                producer,
                blob_store(settings),
                collections,
                renderers,
                updates_topic=topics.metadata_updates,
                public_url=settings.regenerator.public_url,
            )

            async def render(batch: Sequence[Decoded[dict[str, object]]]) -> None:
                await worker.handle([d.value for d in batch])

            consumer = AsyncConsumer(
                settings.kafka,
                group_id=settings.regenerator.render_group,
                topics=[topics.render_jobs],
            )
            consumers.append(consumer)
            processors.append(
                StreamProcessor(
                    consumer,
                    process=render,
                    dlq=producer,
                    dlq_topic=topics.dead_letter,
                    decode=json_decoder(RENDER_JOB_V1),
                    max_batch=16,
                )
            )
        for consumer in consumers:
            await consumer.start()
        metrics.daemon_ready.labels("regenerator").set(1)
        log.info(
            "regenerator running", role=role, collections=[c.collection.name for c in collections]
        )
        tasks = [asyncio.create_task(p.run(stopping)) for p in processors]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stopping.set()
        await asyncio.gather(*tasks)
    finally:
        metrics.daemon_ready.labels("regenerator").set(0)
        for consumer in consumers:
            await consumer.close()
        await producer.close()
        await pool.close()
