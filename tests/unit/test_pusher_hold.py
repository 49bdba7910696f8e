"""ChainPusher around finality holds and keys (fakes for the node and the outbox; the outbox's
SQL is tested against Postgres in tests/integration/test_finality.py): a node without the
``announce_after`` tag or another key's open pushes stop the start with the key to fix; a
failed tag read later holds only the targets of that tag for a pass."""

from __future__ import annotations

from typing import Any, cast

import pytest
import structlog

from dnft import metrics
from dnft.config import NetworkSettings, PusherSettings
from dnft.errors import ConfigError, RpcError
from dnft.rpc import RpcNodeError
from publisher.pusher.rows import Planned
from publisher.pusher.sender import ChainPusher, PushTarget
from publisher.pusher.signer import Signer

CHAIN_ID = 31337
SAFE = PushTarget("held", "0x" + "aa" * 20, "erc4906", "", announce_after="safe")
HEAD = PushTarget("at-once", "0x" + "bb" * 20, "erc4906", "")


class _Chain:
    """A node: ``tag_error`` is raised for any tagged block read."""

    def __init__(self, tag_error: Exception | None = None) -> None:
        self.tag_error = tag_error

    async def chain_id(self) -> int:
        return CHAIN_ID

    async def tagged_block(self, tag: str) -> int:
        if self.tag_error is not None:
            raise self.tag_error
        return 5


class _Outbox:
    def __init__(self, others: dict[str, int] | None = None) -> None:
        self.others = others or {}
        self.planned: list[tuple[str, int | None]] = []  # (contract, final_block)
        self.asked: list[str] = []  # the contracts others_open was asked about

    async def others_open(self, chain_id: int, contracts: list[str]) -> dict[str, int]:
        self.asked = contracts
        return dict(self.others)

    async def pushes_since(self, chain_id: int, seconds: float) -> int:
        return 0

    async def plan(self, chain_id: int, contract: str, mode: str, **kw: Any) -> Planned:
        self.planned.append((contract, kw["final_block"]))
        return Planned(0)

    async def open_pushes(self, chain_id: int) -> list[Any]:
        return []


def _pusher(chain: _Chain, outbox: _Outbox, targets: list[PushTarget]) -> ChainPusher:
    return ChainPusher(
        network=NetworkSettings(name="l2", chain_id=CHAIN_ID, rpc_urls=["http://127.0.0.1:1"]),
        settings=PusherSettings(),
        targets=targets,
        outbox=cast(Any, outbox),
        chain=cast(Any, chain),
        signer=Signer(b"\x01" * 32),
    )


async def test_node_without_the_tag_is_a_config_error_naming_the_collection() -> None:
    pusher = _pusher(_Chain(RpcNodeError(-32000, "unknown block")), _Outbox(), [HEAD, SAFE])
    with pytest.raises(ConfigError, match="unknown block") as caught:
        await pusher.start()
    assert caught.value.key == "pusher.collections[held].announce_after"
    assert "'l2'" in str(caught.value)


async def test_targets_without_a_hold_read_no_tag() -> None:
    await _pusher(_Chain(RpcNodeError(-32000, "unknown block")), _Outbox(), [HEAD]).start()


async def test_another_keys_open_pushes_refuse_the_start() -> None:
    """A changed pusher.signers key: the old sender's open pushes would never be tracked."""
    old = "0x" + "cc" * 20
    outbox = _Outbox({old: 3})
    pusher = _pusher(_Chain(), outbox, [SAFE, HEAD])
    with pytest.raises(ConfigError, match=rf"3 push\(es\).*{old} \(3\).*keep that key") as caught:
        await pusher.start()
    assert caught.value.key == "pusher.signers.l2"
    assert outbox.asked == [SAFE.contract, HEAD.contract], "this pusher's contracts only"


async def test_a_failed_tag_read_holds_only_the_held_targets() -> None:
    outbox = _Outbox()
    pusher = _pusher(_Chain(RpcError("timed out")), outbox, [SAFE, HEAD])
    before = metrics.registry.get_sample_value(
        "dnft_pusher_tag_errors_total", {"network": "l2", "tag": "safe"}
    )
    with structlog.testing.capture_logs() as logged:
        await pusher.step()  # no RpcError: the pass goes on
    assert outbox.planned == [(HEAD.contract, None)]
    after = metrics.registry.get_sample_value(
        "dnft_pusher_tag_errors_total", {"network": "l2", "tag": "safe"}
    )
    assert (after or 0) == (before or 0) + 1
    assert [e["tag"] for e in logged if e["event"].startswith("finality tag unreadable")] == [
        "safe"
    ]
