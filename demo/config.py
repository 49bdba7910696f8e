"""The demo's collection file and dnft.yaml, built from the sample collection (pure: no I/O but
reading the sample).

The sample collection buckets ETH at today's prices (1,500 to 4,500 USD); the shipped series
(Nov 2017 to Mar 2019) runs from 83 to 1,385 USD, so the demo's copy of the collection uses
bounds that this series crosses. Everything else is the sample's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from dnft.collection.rules import collection_from_mapping

REPO = Path(__file__).resolve().parents[1]
SAMPLE_COLLECTION = REPO / "collections" / "sample.yaml"
COLLECTION_ABI = REPO / "schemas" / "abi" / "DynamicCollection.json"
NETWORK = "local"
CONTRACT = "collection"
FEED_ID = "eth-usd"
# Bounds in USD for the 2017-2019 series: it starts in "bear", peaks in "euphoria" in
# January 2018 and ends in "winter".
DEMO_BUCKETS: tuple[tuple[str, str | None], ...] = (
    ("winter", "200"),
    ("bear", "400"),
    ("calm", "700"),
    ("bull", "1000"),
    ("euphoria", None),
)

Renderer = Literal["procedural", "diffusion"]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the demo's services listen."""

    rpc_url: str
    ws_url: str
    chain_id: int
    kafka: str
    dsn: str
    feed_url: str
    api_port: int
    health_port: int


def demo_collection(
    *,
    renderer: Renderer = "procedural",
    model_dir: Path | None = None,
    image_size: int = 512,
    sample: Path = SAMPLE_COLLECTION,
) -> dict[str, Any]:
    """The sample collection with the demo's market buckets, renderer and image size.

    Validated before it is returned: raises ConfigError naming the key otherwise.
    """
    raw: dict[str, Any] = yaml.safe_load(sample.read_text(encoding="utf-8"))
    for trait in raw["traits"]:
        if trait.get("feed") == FEED_ID and "buckets" in trait:
            trait["buckets"] = [
                {"name": name} if below is None else {"below": below, "name": name}
                for name, below in DEMO_BUCKETS
            ]
    raw["image_size"] = image_size
    raw["renderer"] = {"kind": renderer}
    if model_dir is not None:
        raw["renderer"]["model_dir"] = str(model_dir.resolve())
    collection_from_mapping(raw, source="demo collection")
    return raw


def demo_settings(
    endpoints: Endpoints,
    *,
    collection_file: Path,
    address: str,
    start_block: int,
    blobs: Path,
    signer_key_file: Path,
    feed_interval_s: float,
) -> dict[str, Any]:
    """dnft.yaml for ``dnft run --all`` against the demo's services: every daemon, tuned for
    a local chain (short polls, quick consumer-group joins, small push windows)."""
    return {
        "log_level": "info",
        "http": {"port": endpoints.health_port},
        "networks": [
            {
                "name": NETWORK,
                "chain_id": endpoints.chain_id,
                "rpc_urls": [endpoints.rpc_url],
                "ws_url": endpoints.ws_url,
                "confirmations": {"depth": 2},
                "poll_interval_s": 0.25,
                "request_timeout_s": 10,
            }
        ],
        "contracts": [
            {
                "name": CONTRACT,
                "network": NETWORK,
                "address": address,
                "abi": str(COLLECTION_ABI),
                "start_block": start_block,
            }
        ],
        "kafka": {
            "bootstrap_servers": [endpoints.kafka],
            "partitions": 3,
            # tansu holds a join for half the session timeout: short values start quickly.
            "consumer": {
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 2000,
                "max_poll_interval_ms": 60000,
            },
        },
        "postgres": {"dsn": endpoints.dsn},
        "feeds": [
            {
                "kind": "http",
                "id": FEED_ID,
                "url": endpoints.feed_url,
                "value_path": "price",
                "interval_s": feed_interval_s,
                "min": 0,
                "timeout_s": 5,
                "allow_private_hosts": True,  # the replay server is on 127.0.0.1
            }
        ],
        "collections": [{"file": str(collection_file)}],
        "regenerator": {
            "storage": {"kind": "local", "path": str(blobs)},
            "public_url": f"http://127.0.0.1:{endpoints.api_port}",
        },
        "api": {"port": endpoints.api_port, "resync_s": 5},
        "pusher": {
            "collections": [{"contract": CONTRACT, "mode": "erc4906"}],
            "signer": {"key_file": str(signer_key_file)},
            "window_s": 2,
            "confirmations": 1,
            "poll_interval_s": 0.5,
            "max_transactions_per_minute": 60,
            "balance_every_s": 30,
        },
    }
