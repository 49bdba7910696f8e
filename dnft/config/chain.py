"""Chains and contracts: ``networks`` (RPC, confirmations, sync tuning) and ``contracts``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dnft.config.base import ADDRESS_PATTERN, NAME_PATTERN, ConfigModel


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


class ContractSettings(ConfigModel):
    name: str = Field(pattern=NAME_PATTERN)
    network: str
    address: str = Field(pattern=ADDRESS_PATTERN)
    abi: Path
    include_events: list[str] | None = None
    start_block: int = Field(default=0, ge=0)
