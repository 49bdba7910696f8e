"""Where each event's token id comes from is configuration (``contracts[].events``), checked
against the ABI at load; the indexer puts it in each chain event's ``token_id`` and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from dnft.config import DEFAULT_TOKEN_ID_ARGS, settings_from_mapping
from dnft.errors import ConfigError
from dnft.validation import validate_message
from indexer.encode import ChunkEncoder
from tests.support.abi import event_abi, make_log

ADDRESS = "0x" + "ab" * 20
TRANSFER = event_abi(
    "Transfer", ("from", "address", True), ("to", "address", True), ("tokenId", "uint256", True)
)
# A game's own events: the token argument named like none of the well-known names, one
# event of no token at all, and one whose 'id' is a season, not a token.
UPGRADED = event_abi("Upgraded", ("hero", "uint256", True), ("level", "uint8", False))
EQUIPPED = event_abi("Equipped", ("slot", "uint8", False), ("item", "uint256", False))
SEASON = event_abi("SeasonChanged", ("id", "uint256", False))
ABI = [TRANSFER, UPGRADED, EQUIPPED, SEASON]


def settings(tmp_path: Path, **contract: Any) -> Any:
    abi = tmp_path / "game.json"
    abi.write_bytes(orjson.dumps({"abi": ABI}))
    return settings_from_mapping(
        {
            "networks": [{"name": "l2", "chain_id": 10, "rpc_urls": ["http://127.0.0.1:1"]}],
            "contracts": [
                {"name": "game", "network": "l2", "address": ADDRESS, "abi": str(abi), **contract}
            ],
            "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
            "postgres": {"dsn": "postgresql://x@127.0.0.1/x"},
        },
        {},
    )


def log_of(event: dict[str, Any], indexed: list[int], data: list[Any], types: list[str]) -> Any:
    signature = f"{event['name']}({','.join(i['type'] for i in event['inputs'])})"
    topics = ["0x" + keccak(text=signature).hex()]
    topics += ["0x" + v.to_bytes(32, "big").hex() for v in indexed]
    return make_log(topics, encode(types, data), address=ADDRESS)


def messages(tmp_path: Path, **contract: Any) -> list[dict[str, Any]]:
    encoder = ChunkEncoder.from_settings(settings(tmp_path, **contract), "l2")
    logs = [
        log_of(TRANSFER, [1, 2, 7], [], []),
        log_of(UPGRADED, [42], [3], ["uint8"]),
        log_of(EQUIPPED, [], [2, 99], ["uint8", "uint256"]),
        log_of(SEASON, [], [5], ["uint256"]),
    ]
    out = encoder.encode(logs)
    assert out.undecodable == 0
    bodies = []
    for key, value, _ in out.messages:
        body = orjson.loads(value)
        validate_message(body)
        body["key"] = key.decode()
        bodies.append(body)
    return bodies


class TestConfiguredTokenIdentity:
    def test_each_event_names_its_token_argument_or_none(self, tmp_path: Path) -> None:
        events = {
            "Upgraded": {"token": {"arg": "hero"}},  # indexed
            "Equipped": {"token": {"arg": "item"}},  # data
            "SeasonChanged": {"token": "none"},  # its 'id' is a season
        }
        transfer, upgraded, equipped, season = messages(tmp_path, events=events)
        assert transfer["token_id"] == "7"  # not listed: the default names
        assert upgraded["token_id"] == "42"
        assert upgraded["key"] == f"10:{ADDRESS}:42"
        assert equipped["token_id"] == "99"
        assert season["token_id"] is None
        assert season["key"] == f"10:{ADDRESS}"

    def test_defaults_keep_the_well_known_names(self, tmp_path: Path) -> None:
        transfer, upgraded, equipped, season = messages(tmp_path)
        assert transfer["token_id"] == "7"
        assert upgraded["token_id"] is None  # 'hero' is no well-known name
        assert equipped["token_id"] is None
        assert season["token_id"] == "5"  # named 'id': the default takes it
        assert "id" in DEFAULT_TOKEN_ID_ARGS

    def test_token_id_args_changes_the_default(self, tmp_path: Path) -> None:
        _, upgraded, _, season = messages(tmp_path, token_id_args=["hero"])
        assert upgraded["token_id"] == "42"
        assert season["token_id"] is None

    def test_a_retraction_names_the_same_token(self, tmp_path: Path) -> None:
        encoder = ChunkEncoder.from_settings(
            settings(tmp_path, events={"Upgraded": {"token": {"arg": "hero"}}}), "l2"
        )
        out = encoder.encode([log_of(UPGRADED, [42], [3], ["uint8"])], keep_events=True)
        body = encoder.publisher.retraction_body(out.events[0])
        validate_message(body)
        assert body["token_id"] == "42"


class TestValidatedAgainstTheAbi:
    @pytest.mark.parametrize(
        ("events", "key", "words"),
        [
            ({"Upgrade": {"token": "none"}}, "contracts[game].events.Upgrade", "not in"),
            (
                {"Upgraded": {"token": {"arg": "heroId"}}},
                "contracts[game].events.Upgraded.token.arg",
                "no argument 'heroId'",
            ),
            (
                {"Transfer": {"token": {"arg": "to"}}},  # an address is not a token id
                "contracts[game].events.Transfer.token.arg",
                "not an unsigned integer",
            ),
        ],
    )
    def test_unknown_event_or_argument_names_the_key(
        self, tmp_path: Path, events: dict[str, Any], key: str, words: str
    ) -> None:
        with pytest.raises(ConfigError) as err:
            ChunkEncoder.from_settings(settings(tmp_path, events=events), "l2")
        assert err.value.key == key
        assert words in err.value.reason

    @pytest.mark.parametrize(
        "token", [{"arg": ""}, "all", {"arg": "hero", "extra": 1}, None, {"index": 1}]
    )
    def test_a_malformed_entry_is_refused_at_load(self, tmp_path: Path, token: Any) -> None:
        with pytest.raises(ConfigError) as err:
            settings(tmp_path, events={"Upgraded": {"token": token}})
        assert err.value.key.startswith("contracts[game].events")
