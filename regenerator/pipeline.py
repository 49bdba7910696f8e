"""The regenerator daemon, assembled in one place: consumer -> typed decode -> steps -> commit.

Two roles, so each scales on its own (``all`` runs both in one process):

* ``planner``: consumer group ``regenerator.planner_group`` on chain events and oracle
  observations -> ``message_decoder(ChainEvent, ChainRetraction, OracleObservation)`` ->
  :meth:`Planner.apply` (one transaction, then the planned jobs are sent) -> commit;
* ``render``: consumer group ``regenerator.render_group`` on render jobs (run many, e.g. on GPU
  nodes) -> ``message_decoder(RenderJob)`` -> :meth:`RenderWorker.handle` (lookup, render,
  check, record, announce) -> commit.

Each role is a :class:`dnft.stream.StreamProcessor`: invalid records go to the dead-letter
topic, and offsets are committed only after the handler returned (its side effects are
durable). The pool, the producer, the topics, the consumers and the ready gauge are owned by
one :class:`dnft.resources.DaemonResources` and closed in reverse order however the daemon
ends. The first role to fail stops the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import structlog

from dnft.collection import BoundCollection, load_bound_collections
from dnft.config import Settings
from dnft.health import HealthServer
from dnft.messages import ChainEvent, ChainRetraction, OracleObservation, RenderJob
from dnft.resources import DaemonResources
from dnft.storage import blob_store
from dnft.stream import Decoded, Decoder, StreamProcessor, message_decoder
from regenerator.planner import Planner, PlannerInput
from regenerator.render_worker import RenderWorker
from regenerator.renderers.base import Renderer
from regenerator.renderers.factory import renderer_for

Role = Literal["planner", "render", "all"]
log = structlog.get_logger("dnft.regenerator")

DAEMON = "regenerator"
# Render jobs per batch: a batch is committed only once every job of it is recorded.
RENDER_BATCH = 16


async def run_regenerator(
    settings: Settings, role: Role, stopping: asyncio.Event, health: HealthServer | None
) -> None:
    """Run ``role`` until ``stopping`` (the batch in flight is finished and committed first).
    Raises what a role raises (Postgres, Kafka, a renderer, PoisonRatioExceeded)."""
    collections = load_bound_collections(settings)
    topics = settings.kafka.topics
    # Renderers load before anything consumes: a bad model directory fails at start-up.
    renderers: dict[str, Renderer] = {}
    if role in ("render", "all"):
        renderers = await _load_renderers(collections)
    async with DaemonResources(settings, DAEMON) as res:
        pool = await res.pool()
        producer = await res.producer()
        await res.topics(
            [
                topics.chain_events,
                topics.oracle_observations,
                topics.render_jobs,
                topics.metadata_updates,
                topics.dead_letter,
            ]
        )
        processors: list[StreamProcessor[PlannerInput] | StreamProcessor[RenderJob]] = []
        if role in ("planner", "all"):
            planner = Planner(pool, producer, collections, jobs_topic=topics.render_jobs)
            await planner.send_pending()  # jobs planned before a crash, not yet sent

            async def plan(batch: Sequence[Decoded[PlannerInput]]) -> None:
                await planner.apply([d.value for d in batch])

            plan_decoder: Decoder[PlannerInput] = message_decoder(
                ChainEvent, ChainRetraction, OracleObservation
            )
            processors.append(
                StreamProcessor(
                    await res.consumer(
                        settings.regenerator.planner_group,
                        [topics.chain_events, topics.oracle_observations],
                    ),
                    decode=plan_decoder,
                    process=plan,
                    dlq=producer,
                    dlq_topic=topics.dead_letter,
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

            async def render(batch: Sequence[Decoded[RenderJob]]) -> None:
                await worker.handle([d.value for d in batch])

            processors.append(
                StreamProcessor(
                    await res.consumer(settings.regenerator.render_group, [topics.render_jobs]),
                    decode=message_decoder(RenderJob),
                    process=render,
                    dlq=producer,
                    dlq_topic=topics.dead_letter,
                    max_batch=RENDER_BATCH,
                )
            )
        res.ready()
        log.info(
            "regenerator running", role=role, collections=[c.collection.name for c in collections]
        )
        tasks = [asyncio.create_task(p.run(stopping)) for p in processors]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stopping.set()
        await asyncio.gather(*tasks)


async def _load_renderers(collections: Sequence[BoundCollection]) -> dict[str, Renderer]:
    """Each collection's renderer, by collection name, built in a thread (a diffusion model
    loads for seconds); raises ModelLoadError for a bad model directory."""
    return {
        c.collection.name: await asyncio.to_thread(renderer_for, c.collection) for c in collections
    }
