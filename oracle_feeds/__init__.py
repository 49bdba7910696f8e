"""Oracle feeds: external data (HTTP JSON, Chainlink aggregators, medians) into Kafka.

``dnft oracle`` (:func:`run_oracle`, assembled in :mod:`oracle_feeds.pipeline`) reads each
configured feed on its schedule, refuses bad readings with a reason
(:mod:`oracle_feeds.validate`), decides when to publish (:mod:`oracle_feeds.policy`: deviation
and heartbeat) and publishes ``dnft.oracle.observation.v1`` messages keyed by feed id,
recording the last published round in Postgres (:mod:`oracle_feeds.store`).
:mod:`oracle_feeds.runtime` runs the feeds; :func:`feed_rounds` is what ``dnft status`` shows.
"""

from oracle_feeds.chainlink import ChainlinkFeed
from oracle_feeds.http import HttpFeed
from oracle_feeds.median import MedianFeed
from oracle_feeds.pipeline import run_oracle
from oracle_feeds.publish import ObservationPublisher
from oracle_feeds.runtime import FeedRunner, OracleRuntime, StepResult, build_runners
from oracle_feeds.status import FeedRound, feed_rounds
from oracle_feeds.store import FeedStore
from oracle_feeds.types import Clock, Feed, LastPublished, Reading, SourceObservation, SystemClock
from oracle_feeds.validate import Rejected

__all__ = [
    "ChainlinkFeed",
    "Clock",
    "Feed",
    "FeedRound",
    "FeedRunner",
    "FeedStore",
    "HttpFeed",
    "LastPublished",
    "MedianFeed",
    "ObservationPublisher",
    "OracleRuntime",
    "Reading",
    "Rejected",
    "SourceObservation",
    "StepResult",
    "SystemClock",
    "build_runners",
    "feed_rounds",
    "run_oracle",
]
