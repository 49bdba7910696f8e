"""``feeds``: external data the oracle reads (HTTP JSON, Chainlink aggregators, medians)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from dnft.config.base import ADDRESS_PATTERN, NAME_PATTERN, ConfigModel
from dnft.jsonpath import parse_path


class Deviation(ConfigModel):
    """How far a reading must move from the last published value to be published again.

    Exactly one of ``relative`` (a fraction of the last value: 0.005 is 0.5%) or ``absolute``
    (in the feed's units).
    """

    relative: Decimal | None = Field(default=None, gt=0)
    absolute: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> Deviation:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("set exactly one of 'relative' or 'absolute'")
        return self


class _FeedBase(ConfigModel):
    """What every feed kind shares: identity, schedule, bounds and publish policy."""

    id: str = Field(pattern=NAME_PATTERN)
    # false: the feed is read and validated (e.g. as a median's source) but not published.
    publish: bool = True
    interval_s: float = Field(default=30.0, gt=0, le=86_400)
    # Readings outside [min, max] are refused (e.g. min: 0 refuses negative prices).
    min: Decimal | None = None
    max: Decimal | None = None
    # None: any change of value publishes.
    deviation: Deviation | None = None
    # Publish at least this often while readings are good, changed or not (Chainlink's
    # heartbeat). None: only deviations publish.
    heartbeat_s: float | None = Field(default=None, gt=0, le=30 * 86_400)
    # A reading whose own timestamp is older than this is stale and refused.
    max_age_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> _FeedBase:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class HttpFeedSettings(_FeedBase):
    """A JSON document polled over HTTP(S); secrets go in ``headers`` as ``${ENV}``."""

    kind: Literal["http"]
    url: str
    # RFC 6901 pointer ("/data/price") or dotted path ("data.price", "rates[0].usd").
    value_path: str
    timestamp_path: str | None = None
    headers: dict[str, str] = {}
    # A move beyond this fraction of the last accepted value is held until a second reading
    # confirms it (0.5: more than 50% up or down).
    max_change: Decimal | None = Field(default=None, gt=0)
    # Price documents are a few hundred bytes; the cap bounds memory per request.
    max_body_bytes: int = Field(default=256 * 1024, ge=64, le=64 * 1024 * 1024)
    # Total per request (connect, redirects, headers and body).
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    # Private, loopback and link-local addresses are refused unless this is true.
    allow_private_hosts: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("feed URL must be http:// or https:// with a host")
        return url

    @field_validator("value_path", "timestamp_path")
    @classmethod
    def _path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_path(path)  # raises ValueError naming what is wrong
        return path


class ChainlinkFeedSettings(_FeedBase):
    """A Chainlink ``AggregatorV3Interface`` on a configured network."""

    kind: Literal["chainlink"]
    network: str
    address: str = Field(pattern=ADDRESS_PATTERN)
    max_change: Decimal | None = Field(default=None, gt=0)
    # Per JSON-RPC call, retries included.
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class MedianFeedSettings(_FeedBase):
    """The median of other feeds' latest good readings, published only with a quorum.

    A source agrees when it lies within ``tolerance`` (a fraction) of the median of all
    fresh sources; the published value is the median of the agreeing ones. ``max_age_s``
    bounds how old a source's reading may be to take part.
    """

    kind: Literal["median"]
    sources: list[str] = Field(min_length=2)
    quorum: int = Field(ge=1)
    tolerance: Decimal = Field(default=Decimal("0.01"), gt=0)

    @model_validator(mode="after")
    def _quorum(self) -> MedianFeedSettings:
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("sources must not repeat")
        if self.quorum > len(self.sources):
            raise ValueError(f"quorum {self.quorum} exceeds the {len(self.sources)} sources")
        return self


FeedSettings = Annotated[
    HttpFeedSettings | ChainlinkFeedSettings | MedianFeedSettings, Field(discriminator="kind")
]


def check_feed_references(feeds: list[FeedSettings], networks: set[str]) -> None:
    """Chainlink feeds name a configured network; medians name other, non-median feeds."""
    kinds = {f.id: f.kind for f in feeds}
    for feed in feeds:
        if isinstance(feed, ChainlinkFeedSettings) and feed.network not in networks:
            raise ValueError(
                f"feeds[{feed.id}].network: unknown network {feed.network!r}"
                f" (known: {sorted(networks)})"
            )
        if isinstance(feed, MedianFeedSettings):
            for source in feed.sources:
                if source not in kinds:
                    raise ValueError(f"feeds[{feed.id}].sources: unknown feed {source!r}")
                if kinds[source] == "median":
                    raise ValueError(
                        f"feeds[{feed.id}].sources: {source!r} is a median feed;"
                        " sources must be http or chainlink feeds"
                    )
