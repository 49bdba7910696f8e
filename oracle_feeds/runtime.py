"""The oracle's feed set: one task per feed, under one leader lock, publishing through Postgres
(:mod:`oracle_feeds.pipeline` gives it its producer).

Per feed, :class:`FeedRunner` repeats: read, validate, decide (deviation or heartbeat),
publish. A refused reading is counted and logged with its reason and changes nothing: the
last good value stays, nothing is published. Publishing is intent -> Kafka -> commit
(:mod:`oracle_feeds.store`); an intent left by a crash is re-sent before the first read.

Readings are scheduled every ``interval_s`` (from the start of one read to the start of the
next, so a slow source does not stretch the period), earlier when a heartbeat falls due,
later when a source answered 429 with Retry-After. Median feeds are also woken whenever one of their
sources accepts a reading. The whole feed set is a singleton (``LeaderLock("oracle",
"feeds")``): standbys wait, writes go through the lock's connection, and each publish is
fenced by the lease (:mod:`dnft.leader`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Final

import structlog

from dnft import metrics
from dnft.config import (
    ChainlinkFeedSettings,
    FeedSettings,
    HttpFeedSettings,
    MedianFeedSettings,
    Settings,
)
from dnft.errors import KafkaError
from dnft.kafka import AsyncProducer
from dnft.leader import LeaderLock
from oracle_feeds.chainlink import ChainlinkFeed
from oracle_feeds.http import HttpFeed
from oracle_feeds.median import MedianFeed
from oracle_feeds.policy import PublishPolicy, PublishReason
from oracle_feeds.publish import ObservationPublisher
from oracle_feeds.store import FeedStore, Intent
from oracle_feeds.types import Clock, Feed, LastPublished, Reading, SystemClock
from oracle_feeds.validate import Limits, Outcome, Rejected, Validator

log = structlog.get_logger("dnft.oracle")

# After Kafka refused a publish, the pending intent is retried this soon.
KAFKA_RETRY_S: Final = 1.0
# Without max_age_s, a feed counts as stale (the alert) after this many missed intervals.
STALE_INTERVALS: Final = 10


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did: the reading's outcome (None: no read, e.g. waiting out a 429) and
    the publish it caused, if any."""

    outcome: Outcome | None
    published: PublishReason | None = None
    round_id: int | None = None
    detail: str = ""


@dataclass(eq=False)
class FeedRunner:
    """Reads, validates and publishes one feed. Use ``start()`` once, then ``step()``
    repeatedly (``run()`` does both on the feed's schedule)."""

    settings: FeedSettings
    feed: Feed
    _: KW_ONLY
    store: FeedStore
    publisher: ObservationPublisher
    clock: Clock
    on_accept: Callable[[Reading], None] | None = None
    # The feed's state: what was published last, an intent a crash left, the latest reading.
    last: LastPublished | None = field(default=None, init=False)
    pending: Intent | None = field(default=None, init=False)
    latest: Reading | None = field(default=None, init=False)
    not_before: float = field(default=0.0, init=False)
    # When the step in progress began: readings are due every interval_s from there, so
    # a read's own time does not stretch the period (1 s stays 1 Hz).
    step_began: float | None = field(default=None, init=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.policy = PublishPolicy.of(settings)
        max_change = None if isinstance(settings, MedianFeedSettings) else settings.max_change
        self.validator = Validator(
            Limits(settings.min, settings.max, max_change, settings.max_age_s)
        )
        self._started_at = self.clock.now()
        self._log = log.bind(feed=settings.id, kind=settings.kind)

    @property
    def id(self) -> str:
        return self.settings.id

    async def start(self) -> None:
        """Load the last published round; re-send an intent a crash left behind.

        Raises ServiceError (Postgres). A Kafka failure leaves the intent pending for
        ``step`` to retry.
        """
        state = await self.store.load(self.id)
        self.last, self.pending = state.last, state.pending
        if self.last is not None:
            self.validator.reference = self.last.value
            self.validator.reference_observed_at = self.last.observed_at
            self._published_metrics(self.last)
        stale_after = self.settings.max_age_s or STALE_INTERVALS * self.settings.interval_s
        metrics.oracle_stale_after_seconds.labels(self.id).set(stale_after)
        metrics.oracle_value_age_seconds.labels(self.id).set_function(self.value_age_s)
        self._log.info(
            "feed started",
            round_id=self.last.round_id if self.last else 0,
            pending_round=self.pending.round_id if self.pending else None,
        )
        await self._send_pending()

    def value_age_s(self) -> float:
        """Seconds since the last accepted reading was observed (or the last published one,
        or since this runner started): what the staleness alert watches."""
        if self.latest is not None:
            since = self.latest.observed_at
        elif self.last is not None:
            since = self.last.observed_at
        else:
            since = self._started_at
        return max(0.0, self.clock.now() - since)

    async def step(self) -> StepResult:
        """One read, validation and publish decision. Raises ServiceError (Postgres) only."""
        if not await self._send_pending():
            return StepResult(None, detail="a previous round is still pending (Kafka)")
        if self.clock.now() < self.not_before:
            return StepResult(None, detail="waiting for Retry-After")
        try:
            reading = await self.feed.read()
            self.validator.check(reading, self.clock.now())
        except Rejected as rejected:
            return self._refused(rejected)
        except Exception as exc:  # a bug must not stop the other feeds: count and log it
            self._log.exception("feed read failed unexpectedly")
            return self._refused(Rejected("error", f"{type(exc).__name__}: {exc}"))
        metrics.oracle_observations_total.labels(self.id, "accepted").inc()
        self.latest = reading
        if self.on_accept is not None:
            self.on_accept(reading)
        if not self.settings.publish:
            return StepResult("accepted")
        now = self.clock.now()
        reason = self.policy.decide(self.last, reading.value, now)
        if reason is None:
            return StepResult("accepted")
        intent = self.publisher.intent(self.last, reading, reason, now)
        await self.publisher.record(self.id, intent)
        self.pending = intent
        if not await self._send_pending(reason):
            return StepResult("accepted", detail="publish pending: Kafka unavailable")
        return StepResult("accepted", reason, intent.round_id)

    def _refused(self, rejected: Rejected) -> StepResult:
        metrics.oracle_observations_total.labels(self.id, rejected.reason).inc()
        if rejected.retry_after_s is not None:
            self.not_before = self.clock.now() + rejected.retry_after_s
        self._log.warning("reading refused", reason=rejected.reason, detail=rejected.detail)
        return StepResult(rejected.reason, detail=rejected.detail)

    async def _send_pending(self, reason: str = "recovered") -> bool:
        """Send the recorded intent, if any; False while Kafka refuses it."""
        intent = self.pending
        if intent is None:
            return True
        try:
            self.last = await self.publisher.send(self.id, intent)
        except KafkaError as exc:
            self._log.warning(
                "publish failed; will resend", round_id=intent.round_id, error=str(exc)
            )
            return False
        self.pending = None
        metrics.oracle_publishes_total.labels(self.id, reason).inc()
        self._published_metrics(self.last)
        self._log.info(
            "published", round_id=intent.round_id, reason=reason, value=str(intent.value)
        )
        return True

    def _published_metrics(self, last: LastPublished) -> None:
        metrics.oracle_last_value.labels(self.id).set(float(last.value))
        metrics.oracle_round.labels(self.id).set(last.round_id)

    def next_wake_at(self) -> float:
        """When the next step is due: the interval, a heartbeat falling due first, a pending
        publish retry, and never before a source's Retry-After."""
        now = self.clock.now()
        began = now if self.step_began is None else min(self.step_began, now)
        at = max(began + self.settings.interval_s, now)
        due = self.policy.heartbeat_due_at(self.last)
        if due is not None and now < due < at:
            at = due
        if self.pending is not None:
            at = min(at, now + KAFKA_RETRY_S)
        return max(at, self.not_before)

    async def run(self, stopping: asyncio.Event) -> None:
        """``start``, then step on schedule until ``stopping``; raises ServiceError only."""
        await self.start()
        while not stopping.is_set():
            self.wake.clear()
            self.step_began = self.clock.now()
            await self.step()
            delay = self.next_wake_at() - self.clock.now()
            if delay > 0 and not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)

    async def close(self) -> None:
        await self.feed.close()


def build_runners(
    settings: Settings,
    *,
    store: FeedStore,
    publisher: ObservationPublisher,
    clock: Clock | None = None,
) -> dict[str, FeedRunner]:
    """One runner per configured feed, medians wired to their sources' accepted readings."""
    clock = clock or SystemClock()
    runners: dict[str, FeedRunner] = {}
    dependents: dict[str, list[FeedRunner]] = {}

    def latest(feed_id: str) -> Reading | None:
        return runners[feed_id].latest

    def accepted(reading: Reading) -> None:
        for runner in dependents.get(reading.feed_id, ()):
            runner.wake.set()

    for feed_settings in settings.feeds:
        feed: Feed
        if isinstance(feed_settings, HttpFeedSettings):
            feed = HttpFeed(feed_settings, clock=clock)
        elif isinstance(feed_settings, ChainlinkFeedSettings):
            feed = ChainlinkFeed(
                feed_settings, settings.network(feed_settings.network), clock=clock
            )
        else:
            feed = MedianFeed(feed_settings, latest, clock=clock)
        runners[feed_settings.id] = FeedRunner(
            feed_settings,
            feed,
            store=store,
            publisher=publisher,
            clock=clock,
            on_accept=accepted,
        )
    for feed_settings in settings.feeds:
        if isinstance(feed_settings, MedianFeedSettings):
            for source in feed_settings.sources:
                dependents.setdefault(source, []).append(runners[feed_settings.id])
    return runners


class OracleRuntime:
    """All feeds of ``settings``, led by one replica. ``state``: starting | standby |
    running | stopped."""

    def __init__(
        self, settings: Settings, producer: AsyncProducer, *, clock: Clock | None = None
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._clock = clock or SystemClock()
        self.state = "starting"
        self.runners: dict[str, FeedRunner] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Lead (or wait as standby), then run every feed until ``stopping``.

        Raises ServiceError when Postgres fails or the lock is lost; the other feeds stop too.
        """
        self.state = "standby"
        lock = LeaderLock(self._settings.postgres, "oracle", "feeds")
        if not await lock.acquire(stopping):
            self.state = "stopped"
            return
        try:
            store = FeedStore(lock)
            publisher = ObservationPublisher(
                self._producer,
                store,
                self._settings.kafka.topics.oracle_observations,
                fence=lock.check,
            )
            self.runners = build_runners(
                self._settings, store=store, publisher=publisher, clock=self._clock
            )
            self.state = "running"
            # A lost lease cancels every feed at once, not at each one's next publish.
            await lock.while_leading(_run_all(self.runners.values(), stopping))
        finally:
            self.state = "stopped"
            for runner in self.runners.values():
                await runner.close()
            await lock.release()


async def _run_all(runners: Iterable[FeedRunner], stopping: asyncio.Event) -> None:
    """Run every runner until ``stopping`` or the first failure, which stops the rest."""
    items = list(runners)
    halt = asyncio.Event()
    tasks = [asyncio.create_task(r.run(halt), name=f"feed:{r.id}") for r in items]
    stop_wait = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_wait:
                task.result()  # a runner returns early only by raising
    finally:
        halt.set()
        for runner in items:
            runner.wake.set()
        stop_wait.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for runner, result in zip(items, results, strict=True):
            if isinstance(result, Exception):
                log.error("feed task failed", feed=runner.id, error=repr(result))
