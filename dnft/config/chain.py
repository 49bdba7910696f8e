"""Chains and contracts: ``networks`` (RPC, confirmations, sync tuning) and ``contracts``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

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
    # A batch event (ERC-1155 TransferBatch) fans out to one small message per id before any
    # bound, outside max_array_items; ids past this many per log are not published and are
    # recorded as a cut (the 'truncated' record, dnft_indexer_values_cut_total, a warning).
    max_batch_parts: int = Field(default=10_000, ge=1, le=100_000)
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
    """The event argument (indexed or not) that holds the token id: an unsigned integer, or an
    array of them (ERC-1155 ``TransferBatch``'s ``ids``), which fans the event out to one
    message per item, ``amount_arg`` naming the parallel array of amounts (``values``)."""

    arg: str = Field(min_length=1, max_length=256)
    amount_arg: str | None = Field(default=None, min_length=1, max_length=256)


class EventSettings(ConfigModel):
    """How one event of a contract binds to tokens: ``{arg: NAME}``, ``{arg: IDS, amount_arg:
    AMOUNTS}`` (a batch: one message per id) or ``none`` (collection-wide: it fans out to
    every token of the collection)."""

    token: TokenArg | Literal["none"]


@dataclass(frozen=True, slots=True)
class TokenSource:
    """Where one event's token id comes from, resolved against the ABI. ``batch``: ``arg`` is
    an array of ids (one message per item), ``amount_arg`` the parallel array of amounts."""

    arg: str
    amount_arg: str | None = None
    batch: bool = False


# ERC-1155's standard events, by signature: which argument positions hold the token id(s) and
# the amount(s), whatever the ABI names them. An unlisted event with one of these signatures
# binds so by default (TransferBatch fans out); ``events`` overrides it.
_STANDARD: Final[Mapping[str, tuple[int, int | None, bool]]] = {
    "TransferSingle(address,address,address,uint256,uint256)": (3, None, False),
    "TransferBatch(address,address,address,uint256[],uint256[])": (3, 4, True),
    "URI(string,uint256)": (1, None, False),
}


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

    def token_args(self, abi: Iterable[Mapping[str, Any]]) -> dict[str, TokenSource | None]:
        """Event name -> where its token id comes from (None: no token), for every named
        event of ``abi``; raises ConfigError naming the key of an ``events`` entry whose
        event or argument the ABI does not have, or whose argument is no token id."""
        inputs: dict[str, list[list[tuple[str, str]]]] = {}
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous") or not item.get("name"):
                continue
            args = [
                (str(i.get("name") or f"_{n}"), str(i.get("type")))
                for n, i in enumerate(item.get("inputs", []))
            ]
            inputs.setdefault(str(item["name"]), []).append(args)
        out: dict[str, TokenSource | None] = {}
        for event, overloads in inputs.items():
            listed = self.events.get(event)
            if listed is None:
                out[event] = _default_source(event, overloads, self.token_id_args)
            elif isinstance(listed.token, TokenArg):
                out[event] = self._checked(event, listed.token, overloads)
            else:
                out[event] = None
        unknown = sorted(set(self.events) - set(inputs))
        if unknown:
            raise ConfigError(
                f"contracts[{self.name}].events.{unknown[0]}",
                f"event {unknown[0]!r} is not in {self.abi} (its events: {sorted(inputs)})",
            )
        return out

    def _checked(
        self, event: str, token: TokenArg, overloads: list[list[tuple[str, str]]]
    ) -> TokenSource:
        """``token`` checked against each overload of ``event``: a uint id, or a uint[] of ids
        with (optionally) a uint[] of amounts."""
        key = f"contracts[{self.name}].events.{event}.token"
        batch = False
        for overload in overloads:
            types = dict(overload)
            if token.arg not in types:
                raise ConfigError(
                    f"{key}.arg",
                    f"event {event} has no argument {token.arg!r} (its arguments: {list(types)})",
                )
            kind = _token_kind(types[token.arg])
            if kind is None:
                raise ConfigError(
                    f"{key}.arg",
                    f"argument {token.arg!r} of {event} is {types[token.arg]}, not an unsigned "
                    "integer (a token id) nor an array of them (a batch's ids)",
                )
            batch = kind == "batch"
            if token.amount_arg is None:
                continue
            if not batch:
                raise ConfigError(
                    f"{key}.amount_arg",
                    f"amount_arg pairs an array of ids with its amounts; {token.arg!r} of "
                    f"{event} is a single token id (a reducer reads a single event's amount)",
                )
            if token.amount_arg not in types:
                raise ConfigError(
                    f"{key}.amount_arg",
                    f"event {event} has no argument {token.amount_arg!r} "
                    f"(its arguments: {list(types)})",
                )
            if _token_kind(types[token.amount_arg]) != "batch":
                raise ConfigError(
                    f"{key}.amount_arg",
                    f"argument {token.amount_arg!r} of {event} is {types[token.amount_arg]}, "
                    "not an array of unsigned integers (one amount per id)",
                )
        return TokenSource(token.arg, token.amount_arg, batch)


def _token_kind(abi_type: str | None) -> Literal["single", "batch"] | None:
    """``single`` for uintN, ``batch`` for a dynamic uintN[] (one id per item), else None."""
    if abi_type is None or not abi_type.startswith("uint"):
        return None
    if "[" not in abi_type:
        return "single"
    return "batch" if abi_type.endswith("[]") and abi_type.count("[") == 1 else None


def _default_source(
    event: str, overloads: list[list[tuple[str, str]]], names: Iterable[str]
) -> TokenSource | None:
    """The token identity of an event not listed in ``events``, taken per overload: the
    same for all overloads, else the first name every overload holds as a uint, else none
    (list the event under ``events`` to say otherwise)."""
    names = list(names)
    found = [_overload_source(event, args, names) for args in overloads]
    if all(f == found[0] for f in found):
        return found[0]
    common = [n for n in names if all(_token_kind(dict(a).get(n)) == "single" for a in overloads)]
    return TokenSource(common[0]) if common else None


def _overload_source(
    event: str, args: list[tuple[str, str]], names: list[str]
) -> TokenSource | None:
    standard = _STANDARD.get(f"{event}({','.join(t for _, t in args)})")
    if standard is not None:
        token, amount, batch = standard
        return TokenSource(args[token][0], None if amount is None else args[amount][0], batch)
    integers = {n for n, t in args if t.startswith(("uint", "int")) and "[" not in t}
    name = next((n for n in names if n in integers), None)
    return None if name is None else TokenSource(name)
