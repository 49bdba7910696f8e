"""Hostile setTrait values against real anvil, tansu and Postgres: the indexer stays up, the
event reaches Kafka cut to size with the full value's digest, the cut is counted, and the next
honest event follows."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import structlog.testing

from dnft import metrics
from dnft.config import Settings, settings_from_mapping
from dnft.devservices import AnvilService
from dnft.messages import ChainEvent, decode_message
from indexer.bounds import NUL_REPLACEMENT
from tests.support.chain import World, chain_stream, make_world
from tests.support.indexer import IndexerConfigFor, RunningIndexer, caught_up

HUGE = ("\x01\x00\u200f\u202e" + "ignore previous instructions ") * 9_000  # ~300 KB
SHORT_HOSTILE = "a\x00b\x01\u200fc\u202ed"
KAFKA_CAP = 1024 * 1024


@pytest.fixture
def settings_for(indexer_config_for: IndexerConfigFor) -> Callable[..., Settings]:
    def make(world: World, **network: Any) -> Settings:
        return settings_from_mapping(indexer_config_for(world, **network), {})

    return make


async def send_hostile_then_honest(world: World) -> None:
    await world.set_trait(1, "mood", HUGE)
    await world.set_trait(1, "note", SHORT_HOSTILE)
    await world.set_trait(1, "mood", "calm")
    await world.feed(1)


def cut_count() -> float:
    return float(metrics.indexer_values_cut_total.labels("local", "TraitSet")._value.get())


@pytest.mark.parametrize("where", ["backfill-worker", "realtime"])
async def test_hostile_strings_reach_kafka_bounded(
    fresh_anvil: AnvilService, settings_for: Callable[..., Settings], where: str
) -> None:
    world = await make_world(fresh_anvil.rpc_url, mint_count=2)
    # 0 s and small chunks: the backfill goes to the worker process after its first chunk
    # (the cut counts cross a process boundary).
    worker_after_s = 0.0 if where != "realtime" else 3600.0
    settings = settings_for(world, backfill_worker_after_s=worker_after_s, max_block_range=2)
    cuts_before = cut_count()
    if where != "realtime":
        await send_hostile_then_honest(world)
    with structlog.testing.capture_logs() as logs:
        async with RunningIndexer(settings) as indexer:
            if where == "realtime":
                await caught_up(indexer, world)
                await send_hostile_then_honest(world)
            await caught_up(indexer, world)
            await asyncio.sleep(0.2)
            assert indexer.state == "realtime"  # up and following the chain
    handed_over = any(e["event"] == "backfill continues in a worker process" for e in logs)
    assert handed_over == (where != "realtime")

    messages = [m for m in chain_stream(settings) if m["event"] in ("TraitSet", "Fed")]
    assert [m["event"] for m in messages] == ["TraitSet", "TraitSet", "TraitSet", "Fed"]
    hostile, short, honest, fed = messages
    full = HUGE.encode()
    assert len(hostile["args"]["value"].encode()) <= 4096
    # NUL becomes U+FFFD (Postgres cannot store it); the digest is of what the chain holds.
    assert full.replace(b"\x00", NUL_REPLACEMENT).startswith(hostile["args"]["value"].encode())
    assert hostile["truncated"] == {
        "value": {"sha256": hashlib.sha256(full).hexdigest(), "bytes": len(full)}
    }
    # Short hostile text is kept as sent but for NUL, recorded like a cut (bounded, not
    # cleaned: consumers sanitise).
    short_raw = SHORT_HOSTILE.encode()
    assert short["args"]["value"] == SHORT_HOSTILE.replace("\x00", "\ufffd")
    assert short["truncated"] == {
        "value": {"sha256": hashlib.sha256(short_raw).hexdigest(), "bytes": len(short_raw)}
    }
    assert (honest["args"]["value"], fed["event"]) == ("calm", "Fed")
    assert "truncated" not in honest
    assert cut_count() - cuts_before == 2
    # Consumers read the cut message as any other: valid against the schema, well under 1 MiB.
    for m in (hostile, short, honest):
        raw = {k: v for k, v in m.items() if not k.startswith("_")}
        encoded = orjson.dumps(raw)
        assert len(encoded) < KAFKA_CAP // 20
        decoded = decode_message(encoded)
        assert isinstance(decoded, ChainEvent)
