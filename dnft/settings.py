"""Settings: one YAML file, ``${ENV}`` substitution, ``DNFT_*`` overrides, frozen typed models.

Precedence, lowest first: the YAML file, then environment overrides. An override names a path
with ``__`` between segments, e.g. ``DNFT_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`` or
``DNFT_NETWORKS__LOCAL__RPC_URLS='[http://a, http://b]'``: a segment under a list picks the item
whose ``name`` (or ``id``) matches, or an index. Values are parsed as YAML scalars/flow lists.

Every failure raises :class:`dnft.errors.ConfigError` whose ``key`` is the dotted path of the
failing setting, so ``dnft config check`` can name it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dnft.errors import ConfigError

ENV_PREFIX = "DNFT_"
DEFAULT_CONFIG_PATH = "dnft.yaml"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
# PyYAML's scanner is quadratic in flow nesting ("[[[[..."), and its composer recurses once per
# level: deeper nesting is refused before parsing. No config needs more than a handful.
MAX_YAML_FLOW_DEPTH = 64
_YAML_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"")
_YAML_NOT_FLOW = re.compile(r"[^\[\]{}]+")
# "feeds[m].sources: unknown feed 'x'": a whole-file check's message, led by the failing key.
_LEADING_KEY = re.compile(r"([a-z_]+(?:\[[^\]]*\])?(?:\.[a-z_]+(?:\[[^\]]*\])?)*): (.+)", re.DOTALL)
# ${ENV} substitution walks every value; YAML aliases can make a small file expand
# exponentially ("billion laughs") or refer to itself.
MAX_CONFIG_VALUES = 200_000


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Confirmations(_Model):
    """When a block counts as final: ``depth`` blocks below the head, or the node's tag."""

    depth: int | None = Field(default=None, ge=0, le=10_000)
    tag: Literal["safe", "finalized"] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Confirmations:
        if (self.depth is None) == (self.tag is None):
            raise ValueError("set exactly one of 'depth' or 'tag' (safe | finalized)")
        return self


class NetworkSettings(_Model):
    name: str = Field(pattern=_NAME)
    chain_id: int = Field(gt=0)
    rpc_urls: list[str] = Field(min_length=1)
    ws_url: str | None = None
    confirmations: Confirmations = Confirmations(depth=12)
    # Providers cap eth_getLogs ranges (Alchemy 2k, Infura 10k results); the indexer also
    # shrinks adaptively when refused, so this is the starting ceiling, not a promise.
    max_block_range: int = Field(default=2_000, ge=1, le=1_000_000)
    max_in_flight: int = Field(default=8, ge=1, le=64)
    # A backfill starts in-process; once the rest is expected to take longer than this, the
    # rest is fetched and decoded by a worker process (about 1.5 s to start; then the
    # indexer's own process only produces): 0 = as soon as possible.
    backfill_worker_after_s: float = Field(default=5.0, ge=0, le=86_400)
    # Unfinalized blocks remembered for reorg detection; a deeper reorg stops the indexer.
    reorg_window: int = Field(default=128, ge=1, le=100_000)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    request_timeout_s: float = Field(default=15.0, gt=0, le=600)

    @field_validator("rpc_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"RPC URL must start with http:// or https://, got {url!r}")
        return urls

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("ws://", "wss://")):
            raise ValueError(f"WebSocket URL must start with ws:// or wss://, got {url!r}")
        return url


class ContractSettings(_Model):
    name: str = Field(pattern=_NAME)
    network: str
    address: str = Field(pattern=_ADDRESS)
    abi: Path
    include_events: list[str] | None = None
    start_block: int = Field(default=0, ge=0)


class ProducerSettings(_Model):
    acks: Literal["all", "1", "0"] = "all"
    enable_idempotence: bool = True
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "none"
    linger_ms: int = Field(default=5, ge=0, le=10_000)
    batch_size: int = Field(default=256 * 1024, ge=1024)
    request_timeout_ms: int = Field(default=30_000, ge=1_000)


class ConsumerSettings(_Model):
    # Tansu (and Kafka) hold a new member's JoinGroup for up to half the session timeout;
    # 10 s keeps rebalances quick while surviving a GC pause.
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=60_000, ge=1_000)
    max_poll_records: int = Field(default=500, ge=1)


class TopicSettings(_Model):
    chain_events: str = "dnft.chain.events.v1"
    oracle_observations: str = "dnft.oracle.observations.v1"
    render_jobs: str = "dnft.render.jobs.v1"
    metadata_updates: str = "dnft.metadata.updates.v1"
    dead_letter: str = "dnft.dead-letter.v1"


class KafkaSettings(_Model):
    bootstrap_servers: list[str] = Field(min_length=1)
    client_id: str = "dnft"
    # Daemons create missing topics at start; in production they are usually managed
    # (Strimzi, Terraform): set false there.
    create_topics: bool = True
    # Partitions bound consumer parallelism: the most regenerator / render replicas that help.
    partitions: int = Field(default=6, ge=1, le=10_000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    topics: TopicSettings = TopicSettings()
    producer: ProducerSettings = ProducerSettings()
    consumer: ConsumerSettings = ConsumerSettings()

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {server!r}")
        return servers


class PostgresSettings(_Model):
    dsn: str = Field(min_length=1)
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)

    @field_validator("dsn")
    @classmethod
    def _scheme(cls, dsn: str) -> str:
        if not dsn.startswith(("postgres://", "postgresql://")):
            raise ValueError("expected a postgresql:// DSN")
        return dsn


class Deviation(_Model):
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


class _FeedBase(_Model):
    """What every feed kind shares: identity, schedule, bounds and publish policy."""

    id: str = Field(pattern=_NAME)
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
            from oracle_feeds.paths import parse_path

            parse_path(path)  # raises ValueError naming what is wrong
        return path


class ChainlinkFeedSettings(_FeedBase):
    """A Chainlink ``AggregatorV3Interface`` on a configured network."""

    kind: Literal["chainlink"]
    network: str
    address: str = Field(pattern=_ADDRESS)
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


class CollectionRef(_Model):
    """A collection rules file (it names the collection and its contract)."""

    file: Path


class StorageSettings(_Model):
    """Where images and metadata are stored, content-addressed."""

    kind: Literal["local", "s3"] = "local"
    path: Path = Path(".dnft/blobs")  # kind: local
    bucket: str | None = None  # kind: s3 (credentials from the usual AWS_* environment)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    @model_validator(mode="after")
    def _s3_bucket(self) -> StorageSettings:
        if self.kind == "s3" and not self.bucket:
            raise ValueError("storage kind s3 needs 'bucket'")
        return self


class RegeneratorSettings(_Model):
    storage: StorageSettings = StorageSettings()
    # Base URL of `dnft api` as holders and marketplaces reach it; written into metadata.
    public_url: str = "http://127.0.0.1:8000"
    planner_group: str = "dnft-regenerator"
    render_group: str = "dnft-render"


class ApiRateLimitSettings(_Model):
    """Per-client token bucket: ``burst`` requests at once, refilled at ``requests_per_s``."""

    requests_per_s: float = Field(default=20.0, gt=0, le=100_000)
    burst: int = Field(default=60, ge=1, le=1_000_000)
    # Clients remembered at once (least recently seen forgotten first): bounds memory.
    max_clients: int = Field(default=100_000, ge=1, le=10_000_000)
    # Behind a reverse proxy, the client is the last X-Forwarded-For address (the one the
    # proxy saw). Only set this when a proxy you run always sets the header.
    trust_forwarded_for: bool = False


class CurateUserSettings(_Model):
    """A curator who signs in with HTTP basic auth; only a hash of the password is stored."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    # pbkdf2_sha256$ITERATIONS$SALT$HASH (base64): `dnft curate-password` prints one.
    password_hash: str = Field(
        pattern=r"^pbkdf2_sha256\$[0-9]{1,8}\$[A-Za-z0-9+/=]{8,}\$[A-Za-z0-9+/=]{40,}$"
    )


class CurateSettings(_Model):
    """``dnft api`` /curate: the review queue, reachable only with credentials."""

    enabled: bool = False
    # A bearer token (scripts): read from this environment variable or this mounted file.
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token_file: Path | None = None
    # The curator name decisions made with the bearer token are recorded under.
    token_curator: str = Field(default="token", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    # People (browsers): HTTP basic auth.
    users: list[CurateUserSettings] = []
    # Unsent outbox messages (an approval's metadata update, a re-roll's job) are retried
    # this often.
    outbox_interval_s: float = Field(default=5.0, gt=0, le=3_600)

    @model_validator(mode="after")
    def _credentials(self) -> CurateSettings:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("set at most one of 'token_env' or 'token_file'")
        if self.enabled and self.token_env is None and self.token_file is None and not self.users:
            raise ValueError("/curate needs credentials: set token_env, token_file or users")
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("curator names must be unique")
        return self


class ApiSettings(_Model):
    """``dnft api``: the read-only metadata API and the gallery."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # The collection /tokens/{id} serves when several are configured (a collection name).
    collection: str | None = None
    rate_limit: ApiRateLimitSettings = ApiRateLimitSettings()
    # Current metadata may change at any time (marketplaces also get an ERC-4906 event).
    current_max_age_s: int = Field(default=60, ge=0, le=86_400)
    # Open server-sent event streams (gallery pages) this replica serves at once.
    max_live_clients: int = Field(default=1_000, ge=1, le=100_000)
    keepalive_s: float = Field(default=15.0, gt=0, le=300)
    # Safety net beside LISTEN/NOTIFY: open pages also re-check their token this often.
    resync_s: float = Field(default=30.0, gt=0, le=3_600)
    # Images and metadata are immutable (content-addressed): kept in memory up to this size.
    blob_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0, le=16 * 1024**3)
    # The curators' review queue (regenerator collections with `publish: review`).
    curate: CurateSettings = CurateSettings()


class PusherCollectionSettings(_Model):
    """How one contract's new metadata versions are announced on chain."""

    contract: str  # a name from `contracts`
    # erc4906: refreshMetadata(from, to) emits MetadataUpdate / BatchMetadataUpdate;
    # token-uri: setTokenURIs(ids, uris) stores each token's new URI (also ERC-4906 events).
    mode: Literal["erc4906", "token-uri"] = "erc4906"
    # token-uri mode: the URI written on chain; {cid} is the metadata CID.
    uri_template: str = "ipfs://{cid}"

    @field_validator("uri_template")
    @classmethod
    def _has_cid(cls, template: str) -> str:
        if "{cid}" not in template:
            raise ValueError("uri_template must contain {cid}")
        return template


class PusherSignerSettings(_Model):
    """Where the pusher's private key comes from; the key itself is never in the config."""

    key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    key_file: Path | None = None  # e.g. a mounted Kubernetes secret

    @model_validator(mode="after")
    def _one_of(self) -> PusherSignerSettings:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("set exactly one of 'key_env' or 'key_file'")
        return self


class PusherFeeSettings(_Model):
    """EIP-1559 fees. Caps are generous on purpose: only base fee + tip is charged, while an
    underpriced transaction silently leaves a node's pool."""

    priority_fee_gwei: Decimal = Field(default=Decimal("1.5"), gt=0)
    # maxFeePerGas = base fee * this + tip: 3 survives about 9 consecutive full blocks.
    base_fee_multiplier: Decimal = Field(default=Decimal(3), ge=1, le=100)
    min_max_fee_gwei: Decimal = Field(default=Decimal(10), gt=0)
    # Never sign above this maxFeePerGas (a replacement that would needs an operator).
    max_fee_gwei: Decimal = Field(default=Decimal(500), gt=0)
    # A replacement must raise tip and max fee by at least 10% (geth's rule).
    bump_percent: int = Field(default=15, ge=10, le=1_000)

    @model_validator(mode="after")
    def _cap(self) -> PusherFeeSettings:
        if self.min_max_fee_gwei > self.max_fee_gwei:
            raise ValueError("min_max_fee_gwei is greater than max_fee_gwei")
        return self


class PusherSettings(_Model):
    """``dnft pusher``: announce new metadata versions on chain, each exactly once."""

    group: str = "dnft-pusher"
    collections: list[PusherCollectionSettings] = []
    signer: PusherSignerSettings | None = None
    # Updates of a contract are gathered this long (from the oldest waiting) into one plan.
    window_s: float = Field(default=10.0, ge=0, le=3_600)
    # Marketplaces rate-limit refreshes; also bounds spend if something loops.
    max_transactions_per_minute: int = Field(default=12, ge=1, le=10_000)
    max_range_size: int = Field(default=10_000, ge=1, le=10_000_000)  # erc4906
    max_uris_per_transaction: int = Field(default=100, ge=1, le=2_000)  # token-uri
    # A push counts once this many blocks hold it (1: the block it was mined in).
    confirmations: int = Field(default=3, ge=1, le=10_000)
    # Unmined this long after signing: replaced with bumped fees (same nonce).
    replace_after_s: float = Field(default=60.0, gt=0, le=86_400)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    fees: PusherFeeSettings = PusherFeeSettings()
    balance_every_s: float = Field(default=30.0, gt=0, le=86_400)
    # Below this the signer's balance is logged as a warning (and alerted on by rules).
    low_balance_wei: int = Field(default=10**17, ge=0)
    # The advisory-lock scope: one leading pusher per scope (per signer key, usually).
    leader_scope: str = Field(default="default", pattern=_NAME)


class HttpSettings(_Model):
    """The side server each daemon runs for /metrics, /healthz and /readyz."""

    host: str = "127.0.0.1"
    port: int = Field(default=9100, ge=0, le=65535)


class Settings(_Model):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # After SIGTERM a daemon stops taking work, finishes or hands back what is in flight and
    # commits; past this it is cancelled (exit 1). Keep it below Kubernetes'
    # terminationGracePeriodSeconds.
    shutdown_deadline_s: float = Field(default=25.0, gt=0, le=3_600)
    http: HttpSettings = HttpSettings()
    networks: list[NetworkSettings] = []
    contracts: list[ContractSettings] = []
    kafka: KafkaSettings
    postgres: PostgresSettings
    feeds: list[FeedSettings] = []
    collections: list[CollectionRef] = []
    regenerator: RegeneratorSettings = RegeneratorSettings()
    pusher: PusherSettings = PusherSettings()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _references(self) -> Settings:
        networks = _unique([n.name for n in self.networks], "networks")
        _unique([c.name for c in self.contracts], "contracts")
        _unique([f.id for f in self.feeds], "feeds")
        for contract in self.contracts:
            if contract.network not in networks:
                raise ValueError(
                    f"contracts[{contract.name}].network: unknown network {contract.network!r}"
                    f" (known: {sorted(networks)})"
                )
        _check_feed_references(self.feeds, networks)
        _check_pusher_references(self.pusher, self.contracts)
        return self

    def network(self, name: str) -> NetworkSettings:
        for network in self.networks:
            if network.name == name:
                return network
        raise ConfigError("networks", f"no network named {name!r}")

    def contracts_on(self, network: str) -> list[ContractSettings]:
        return [c for c in self.contracts if c.network == network]


def _check_feed_references(feeds: list[FeedSettings], networks: set[str]) -> None:
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


def _check_pusher_references(pusher: PusherSettings, contracts: list[ContractSettings]) -> None:
    """Each pushed collection names a configured contract, once; pushing needs a signer."""
    known = {c.name for c in contracts}
    seen: set[str] = set()
    for item in pusher.collections:
        if item.contract not in known:
            raise ValueError(
                f"pusher.collections[{item.contract}].contract: unknown contract"
                f" {item.contract!r} (known: {sorted(known)})"
            )
        if item.contract in seen:
            raise ValueError(f"pusher.collections: contract {item.contract!r} is listed twice")
        seen.add(item.contract)
    if pusher.collections and pusher.signer is None:
        raise ValueError("pusher.signer: set key_env or key_file to push collections")


def _unique(names: list[str], key: str) -> set[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{key}: duplicate name {name!r}")
        seen.add(name)
    return seen


def parse_yaml(text: str, source: str, key: str = "") -> Any:
    """``yaml.safe_load`` whose every failure is a ConfigError at ``key`` naming ``source``.

    Besides YAMLError, PyYAML raises ValueError for impossible dates (``2001-13-01``) and
    RecursionError for deep nesting; flow nesting beyond MAX_YAML_FLOW_DEPTH is refused first.
    """
    flow = _YAML_NOT_FLOW.sub("", _YAML_QUOTED.sub("", text))
    depth = deepest = 0
    for bracket in flow:
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    if deepest > MAX_YAML_FLOW_DEPTH:
        raise ConfigError(key, f"{source} nests [ ] / {{ }} deeper than {MAX_YAML_FLOW_DEPTH}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"{source} is not valid YAML: {exc}") from None
    except ValueError as exc:  # the timestamp constructor: "2001-13-01"
        raise ConfigError(key, f"{source} holds an invalid value: {exc}") from None
    except RecursionError:
        raise ConfigError(key, f"{source} is nested too deeply") from None


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read, substitute, override and validate; raises ConfigError naming the failing key."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get("DNFT_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = config_path.read_text()
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {config_path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{config_path} is not UTF-8 text: {exc.reason}") from None
    raw = parse_yaml(text, str(config_path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"{config_path} must hold a mapping at the top level")
    return settings_from_mapping(raw, env, base_dir=config_path.parent)


def settings_from_mapping(
    raw: dict[str, Any], env: Mapping[str, str], base_dir: Path | None = None
) -> Settings:
    data = _substitute(raw, env, "", (), [MAX_CONFIG_VALUES])
    apply_env_overrides(data, env)
    if base_dir is not None:
        _resolve_paths(data, base_dir)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key, message = _format_loc(error["loc"], data), error["msg"]
        if not key:
            # Cross-section checks see the whole file; their messages start with the key.
            leading = _LEADING_KEY.fullmatch(message.removeprefix("Value error, "))
            if leading:
                key, message = leading.group(1), leading.group(2)
        raise ConfigError(key, message) from None


def _substitute(
    value: Any, env: Mapping[str, str], key: str, parents: tuple[int, ...], budget: list[int]
) -> Any:
    """A copy of ``value`` with ``${VAR}`` replaced; refuses alias cycles and expansion bombs.

    ``parents`` holds the ids of the enclosing containers; ``budget`` the values left to visit.
    """
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(key, f"more than {MAX_CONFIG_VALUES} values (YAML aliases expanding?)")
    if isinstance(value, dict | list):
        if id(value) in parents:
            raise ConfigError(key, "contains itself (a YAML alias cycle)")
        parents = (*parents, id(value))
    if isinstance(value, dict):
        return {
            k: _substitute(v, env, f"{key}.{k}" if key else str(k), parents, budget)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, env, f"{key}[{i}]", parents, budget) for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(key, f"environment variable {name} is not set")

        return _ENV_REF.sub(replace, value)
    return value


_TOP_LEVEL_SCALARS = frozenset({"log_level"})


def apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Apply ``DNFT_A__B=value`` overrides in place (sorted, so the result is deterministic)."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        segments = [s.lower() for s in name[len(ENV_PREFIX) :].split("__")]
        if len(segments) == 1:
            # DNFT_FOO without "__" overrides only a top-level scalar such as DNFT_LOG_LEVEL;
            # other such names stay free for ${DNFT_...} substitution in the YAML.
            if segments[0] not in _TOP_LEVEL_SCALARS:
                continue
        elif segments[0] not in Settings.model_fields:
            raise ConfigError(
                segments[0],
                f"{name}: unknown settings section {segments[0]!r}"
                f" (known: {sorted(Settings.model_fields)})",
            )
        value = parse_yaml(env[name], name, ".".join(segments))
        _set_path(data, segments, value, name)


def _set_path(data: Any, segments: list[str], value: Any, env_name: str) -> None:
    node = data
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        key_so_far = ".".join(segments[: i + 1])
        if isinstance(node, list):
            index = _list_index(node, segment)
            if index is None:
                raise ConfigError(key_so_far, f"{env_name}: no list item named {segment!r}")
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[segment] = value
            else:
                node = node.setdefault(segment, {})
        else:
            raise ConfigError(key_so_far, f"{env_name}: cannot override inside a scalar")


def _list_index(items: list[Any], segment: str) -> int | None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and segment in (
            str(item.get("name", "")).lower(),
            str(item.get("id", "")).lower(),
        ):
            return i
    if segment.isdigit() and int(segment) < len(items):
        return int(segment)
    return None


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Relative ABI and collection paths are relative to the config file, not the cwd."""
    for section, field in (("contracts", "abi"), ("collections", "file")):
        items = data.get(section)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get(field), str):
                p = Path(item[field])
                if not p.is_absolute():
                    item[field] = str(base_dir / p)


def _format_loc(loc: tuple[int | str, ...], data: Any) -> str:
    """``('networks', 0, 'rpc_urls')`` -> ``networks[local].rpc_urls``: name items, not indices."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = str(part)
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict):
                    label = str(node.get("name") or node.get("id") or part)
            parts.append(f"[{label}]")
        else:
            # Discriminated unions add the tag (e.g. 'http') to the path: skip it.
            if isinstance(node, dict) and part not in node and part == node.get("kind"):
                continue
            parts.append(f".{part}" if parts else part)
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts)
