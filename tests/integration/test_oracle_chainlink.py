"""Chainlink feeds against the sample PriceAggregator on a real anvil: latestRoundData, then
each AnswerUpdated becomes an observation, with provenance anyone can re-check."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from eth_typing import HexStr
from web3 import AsyncHTTPProvider, AsyncWeb3

from dnft import contracts
from dnft.devservices import AnvilService
from tests.support.oracle import (
    ManualClock,
    Oracle,
    OracleSettingsFor,
    counted,
    observations,
    rounds,
    unique_feed_id,
)

ETH_USD = 3000 * 10**8  # 8 decimals, as Chainlink's USD pairs


def chainlink_feed(feed_id: str, address: str, **extra: Any) -> dict[str, Any]:
    """A Chainlink feed reading the aggregator at ``address`` on network ``local``."""
    return {"kind": "chainlink", "id": feed_id, "network": "local", "address": address, **extra}


class TestAggregatorFeed:
    """latestRoundData first, then AnswerUpdated events, scaled by decimals()."""

    async def test_answer_updated_becomes_an_observation(
        self, fresh_anvil: AnvilService, oracle_settings_for: OracleSettingsFor
    ) -> None:
        chain = fresh_anvil
        w3: AsyncWeb3[Any] = AsyncWeb3(AsyncHTTPProvider(chain.rpc_url))
        owner = contracts.DevSigner()
        address = await contracts.deploy(
            w3, "PriceAggregator", 8, "ETH / USD", ETH_USD, sender=owner
        )
        aggregator = contracts.at(w3, "PriceAggregator", address)
        feed = unique_feed_id("cl")
        settings = oracle_settings_for(
            chainlink_feed(
                feed,
                address,
                min=0,
                max_age_s=600,
                max_change=0.5,
                timeout_s=5,
                deviation={"relative": 0.001},
            ),
            networks=[{"name": "local", "chain_id": chain.chain_id, "rpc_urls": [chain.rpc_url]}],
        )
        clock = ManualClock(time.time())

        async with Oracle(settings, clock) as oracle:
            runner = oracle[feed]
            first = await runner.step()
            assert (first.outcome, first.published) == ("accepted", "first")
            head_at_first = await w3.eth.block_number

            receipt = await contracts.transact(
                w3, aggregator, "updateAnswer", 3123_45000000, sender=owner
            )
            block = await w3.eth.get_block(receipt["blockNumber"])
            clock.t = max(clock.t, float(block["timestamp"]))
            assert (await runner.step()).published == "deviation"

            # Unchanged on chain: read again, nothing published.
            assert (await runner.step()).published is None

            # A negative answer is out of bounds; a 10x jump waits for confirmation.
            await contracts.transact(w3, aggregator, "updateAnswer", -5, sender=owner)
            assert (await runner.step()).outcome == "out_of_bounds"
            await contracts.transact(w3, aggregator, "updateAnswer", 31234_50000000, sender=owner)
            assert (await runner.step()).outcome == "jump"

            # The aggregator stops updating: its round goes stale on our clock.
            clock.advance(601)
            assert (await runner.step()).outcome == "stale"

        stream = await observations(settings, feed)
        assert rounds(stream) == [(1, "3000", "first"), (2, "3123.45", "deviation")]
        first_src, second_src = stream[0]["sources"][0], stream[1]["sources"][0]
        assert first_src["source"] == f"chainlink:local:{address.lower()}"
        assert first_src["source_round_id"] == "1"
        assert first_src["block_number"] == head_at_first
        # Provenance: repeat the eth_call at the recorded block and hash what it returns.
        raw = await w3.eth.call(
            {"to": address, "data": HexStr("0xfeaf968c")}, block_identifier=head_at_first
        )
        assert first_src["response_sha256"] == hashlib.sha256(bytes(raw)).hexdigest()
        # The second came from the AnswerUpdated log of the update transaction.
        assert second_src["source_round_id"] == "2"
        assert second_src["block_number"] == receipt["blockNumber"]
        updated_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(block["timestamp"]))
        assert stream[1]["observed_at"] == f"{updated_at}.000Z"
        assert counted(feed, "accepted") == 3

    async def test_unreachable_node_is_an_rpc_error(
        self, oracle_settings_for: OracleSettingsFor
    ) -> None:
        feed = unique_feed_id("cl-down")
        settings = oracle_settings_for(
            chainlink_feed(feed, "0x" + "11" * 20, timeout_s=1),
            networks=[{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:9"]}],
        )
        async with Oracle(settings, ManualClock()) as oracle:
            result = await oracle[feed].step()
        assert result.outcome in ("rpc_error", "timeout")
        assert counted(feed, result.outcome) == 1
