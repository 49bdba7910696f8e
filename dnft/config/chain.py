"""Chains and contracts: ``networks`` (RPC, confirmations, sync tuning) and ``contracts``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dnft.config.base import ADDRESS_PATTERN, NAME_PATTERN, ConfigModel
from dnft.errors import ConfigError

# The argument names ERC-721, ERC-4906 and the sample contract carry a token id under: an event
# not listed in a contract's ``events`` takes its token id from the first of its integer
# arguments named in ``token_id_args`` (this list by default), or has none. The one place
# these names live; the indexer resolves them once per event at start, never per log.
DEFAULT_TOKEN_ID_ARGS = ("tokenId", "_tokenId", "tokenID", "id")


class Confirmations(ConfigModel):
    """When a block counts as final: ``depth`` blocks below the head, or the node's tag."""

    depth: int | None = Field(default=None, ge=0, le=10_000)
    tag: Literal["safe", "finalized"] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Confirmations:
        if (self.depth is None) == (self.tag is None):
            raise ValueError("set exactly one of 'depth' or 'tag' (safe | finalized)")
        return self


class NetworkSettings(ConfigModel):
    name: str = Field(pattern=NAME_PATTERN)
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
    # Holders choose event strings: one setTrait of 300 KB must not become a Kafka message
    # over the broker's cap. Longer strings/bytes (UTF-8 bytes) and arrays are cut, the full
    # value's sha256 and size kept beside them (indexer/bounds.py). Arrays count items over the
    # whole event; with the event's fixed 64 KiB of string content, a message stays < 1 MiB.
    max_value_bytes: int = Field(default=4096, ge=64, le=65_536)
    max_array_items: int = Field(default=1024, ge=1, le=1024)
    # A node's answer longer than this is cut off while it arrives; an eth_getLogs answer
    # that long splits its block range like a "too many results" refusal.
    max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024**3)

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


class TokenArg(ConfigModel):
    """The event argument (indexed or not) that holds the token id."""

    arg: str = Field(min_length=1, max_length=256)


class EventSettings(ConfigModel):
    """How one event of a contract binds to tokens: ``{arg: NAME}`` or ``none``
    (collection-wide: it fans out to every token of the collection)."""

    token: TokenArg | Literal["none"]


class ContractSettings(ConfigModel):
    name: str = Field(pattern=NAME_PATTERN)
    network: str
    address: str = Field(pattern=ADDRESS_PATTERN)
    abi: Path
    include_events: list[str] | None = None
    start_block: int = Field(default=0, ge=0)
    # Where each event's token id comes from: {Upgraded: {token: {arg: hero}}} (an indexed
    # or a data argument) or {SeasonChanged: {token: none}} (collection-wide: the event
    # changes every token of the collection). Events not listed follow token_id_args.
    events: dict[str, EventSettings] = {}
    token_id_args: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default=list(DEFAULT_TOKEN_ID_ARGS), max_length=32
    )

    def token_args(self, abi: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
        """Event name -> the argument holding its token id (None: no token), for every
        named event of ``abi``; raises ConfigError naming the key of an ``events`` entry
        whose event or argument the ABI does not have."""
        inputs: dict[str, list[list[tuple[str, str]]]] = {}
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous") or not item.get("name"):
                continue
            args = [(str(i.get("name") or ""), str(i.get("type"))) for i in item.get("inputs", [])]
            inputs.setdefault(str(item["name"]), []).append(args)
        key = f"contracts[{self.name}].events"
        for event, spec in self.events.items():
            if event not in inputs:
                raise ConfigError(
                    f"{key}.{event}",
                    f"event {event!r} is not in {self.abi} (its events: {sorted(inputs)})",
                )
            if isinstance(spec.token, TokenArg):
                for overload in inputs[event]:
                    types = dict(overload)
                    if spec.token.arg not in types:
                        raise ConfigError(
                            f"{key}.{event}.token.arg",
                            f"event {event} has no argument {spec.token.arg!r} "
                            f"(its arguments: {list(types)})",
                        )
                    # One token per event: an array (ERC-1155 ids) or a string is not a token id.
                    if not _is_uint(types[spec.token.arg]):
                        raise ConfigError(
                            f"{key}.{event}.token.arg",
                            f"argument {spec.token.arg!r} of {event} is "
                            f"{types[spec.token.arg]}, not an unsigned integer (a token id)",
                        )
        out: dict[str, str | None] = {}
        for event, overloads in inputs.items():
            listed = self.events.get(event)
            if listed is not None:
                out[event] = listed.token.arg if isinstance(listed.token, TokenArg) else None
            else:
                out[event] = _default_token_arg(overloads[0], self.token_id_args)
        return out


def _is_uint(abi_type: str) -> bool:
    return abi_type.startswith("uint") and "[" not in abi_type


def _default_token_arg(args: list[tuple[str, str]], names: Iterable[str]) -> str | None:
    integers = {n for n, t in args if t.startswith(("uint", "int")) and "[" not in t}
    return next((n for n in names if n in integers), None)
