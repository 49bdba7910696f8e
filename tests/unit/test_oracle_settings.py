"""Feed settings: each kind's keys validated at load, failures naming the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dnft.config import (
    ChainlinkFeedSettings,
    HttpFeedSettings,
    MedianFeedSettings,
    load_settings,
    settings_from_mapping,
)
from dnft.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
AGGREGATOR = "0x" + "cd" * 20


def config(*feeds: dict[str, Any]) -> dict[str, Any]:
    return {
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
        "feeds": list(feeds),
    }


def http(**extra: Any) -> dict[str, Any]:
    feed = {"kind": "http", "id": "eth-usd", "url": "https://api.example.com/p", "value_path": "p"}
    return feed | extra


def key_of(*feeds: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(config(*feeds), {})
    return info.value.key


class TestFeeds:
    """Valid feeds load into typed models with exact decimals."""

    def test_each_kind(self) -> None:
        settings = settings_from_mapping(
            config(
                http(
                    min=0,
                    max="1e6",
                    max_change=0.5,
                    deviation={"relative": 0.005},
                    heartbeat_s=3600,
                    headers={"X-Key": "${KEY}"},
                ),
                {"kind": "chainlink", "id": "cl", "network": "local", "address": AGGREGATOR},
                {"kind": "median", "id": "m", "sources": ["eth-usd", "cl"], "quorum": 2},
            ),
            {"KEY": "s3cret"},
        )
        h, c, m = settings.feeds
        assert isinstance(h, HttpFeedSettings)
        assert h.deviation is not None
        assert h.deviation.relative == Decimal("0.005")
        assert (h.min, h.max, h.max_change) == (Decimal(0), Decimal("1e6"), Decimal("0.5"))
        assert h.headers == {"X-Key": "s3cret"}
        assert not h.allow_private_hosts
        assert isinstance(c, ChainlinkFeedSettings)
        assert isinstance(m, MedianFeedSettings)
        assert m.tolerance == Decimal("0.01")

    def test_example_config_has_one_feed_of_each_kind(self) -> None:
        settings = load_settings(REPO / "dnft.example.yaml", env={})
        assert sorted(f.kind for f in settings.feeds) == ["chainlink", "http", "http", "median"]


class TestInvalid:
    """Mistakes fail at load and name the feed and key."""

    def test_bad_url(self) -> None:
        assert key_of(http(url="file:///etc/passwd")) == "feeds[eth-usd].url"

    def test_bad_value_path(self) -> None:
        assert key_of(http(value_path="a..b")) == "feeds[eth-usd].value_path"

    def test_bad_timestamp_path(self) -> None:
        assert key_of(http(timestamp_path="t[x]")) == "feeds[eth-usd].timestamp_path"

    def test_unknown_key(self) -> None:
        assert key_of(http(max_chnage=0.5)) == "feeds[eth-usd].max_chnage"

    def test_deviation_needs_one_kind(self) -> None:
        key = key_of(http(deviation={"relative": 0.1, "absolute": 2}))
        assert key == "feeds[eth-usd].deviation"

    def test_min_above_max(self) -> None:
        assert key_of(http(min=10, max=1)) == "feeds[eth-usd]"

    @pytest.mark.parametrize(
        ("key", "value"),
        [("max_body_bytes", 10), ("timeout_s", 0), ("heartbeat_s", -1), ("max_change", 0)],
    )
    def test_out_of_range(self, key: str, value: Any) -> None:
        assert key_of(http(**{key: value})) == f"feeds[eth-usd].{key}"

    def test_nan_bound(self) -> None:
        assert key_of(http(max="nan")) == "feeds[eth-usd].max"

    def test_quorum_above_sources(self) -> None:
        median = {"kind": "median", "id": "m", "sources": ["a", "b"], "quorum": 3}
        assert key_of(median) == "feeds[m]"

    def test_median_references(self) -> None:
        median = {"kind": "median", "id": "m", "sources": ["eth-usd", "nope"], "quorum": 1}
        with pytest.raises(ConfigError, match=r"feeds\[m\].sources: unknown feed 'nope'"):
            settings_from_mapping(config(http(), median), {})

    def test_median_of_median(self) -> None:
        m1 = {"kind": "median", "id": "m1", "sources": ["eth-usd", "x"], "quorum": 1}
        m2 = {"kind": "median", "id": "m2", "sources": ["eth-usd", "m1"], "quorum": 1}
        with pytest.raises(ConfigError, match="'m1' is a median feed"):
            settings_from_mapping(config(http(), http(id="x"), m1, m2), {})

    def test_chainlink_unknown_network(self) -> None:
        feed = {"kind": "chainlink", "id": "cl", "network": "base", "address": AGGREGATOR}
        with pytest.raises(ConfigError, match=r"feeds\[cl\].network: unknown network 'base'"):
            settings_from_mapping(config(feed), {})

    def test_duplicate_feed_ids(self) -> None:
        with pytest.raises(ConfigError, match="duplicate name 'eth-usd'"):
            settings_from_mapping(config(http(), http()), {})
