"""Settings: YAML + ${ENV} + DNFT_* overrides into frozen models, errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dnft.config import load_settings, settings_from_mapping
from dnft.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def base() -> dict[str, Any]:
    return {
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "contracts": [
            {
                "name": "collection",
                "network": "local",
                "address": "0x" + "ab" * 20,
                "abi": "abi.json",
            }
        ],
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
    }


def key_of(raw: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw, env or {})
    return info.value.key


class TestLoading:
    """A valid file loads into frozen typed models with defaults filled in."""

    def test_example_config_is_valid(self) -> None:
        settings = load_settings(REPO / "dnft.example.yaml", env={})
        assert settings.networks[0].name == "local"
        assert settings.kafka.topics.chain_events == "dnft.chain.events.v1"
        # ABI paths resolve relative to the config file, not the working directory.
        assert settings.contracts[0].abi == REPO / "schemas/abi/DynamicCollection.json"

    def test_models_are_frozen(self) -> None:
        settings = settings_from_mapping(base(), {})
        with pytest.raises(Exception, match="frozen"):
            settings.kafka.client_id = "x"  # type: ignore[misc]

    def test_env_substitution_with_default(self) -> None:
        raw = base()
        raw["postgres"]["dsn"] = "${PG:-postgresql://a@h/db}"
        assert settings_from_mapping(raw, {}).postgres.dsn == "postgresql://a@h/db"
        assert settings_from_mapping(raw, {"PG": "postgres://b@h/x"}).postgres.dsn == (
            "postgres://b@h/x"
        )

    def test_missing_env_names_variable_and_key(self) -> None:
        raw = base()
        raw["postgres"]["dsn"] = "${NOT_SET_ANYWHERE}"
        with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE") as info:
            settings_from_mapping(raw, {})
        assert info.value.key == "postgres.dsn"

    def test_missing_file_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read config file"):
            load_settings(tmp_path / "nope.yaml", env={})

    def test_invalid_yaml_is_a_clear_error(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text("kafka: [unclosed\n")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_settings(path, env={})


class TestOverrides:
    """DNFT_* variables override nested keys, list items picked by name."""

    def test_nested_scalar(self) -> None:
        s = settings_from_mapping(base(), {"DNFT_KAFKA__CLIENT_ID": "worker-7"})
        assert s.kafka.client_id == "worker-7"

    def test_flow_list_value(self) -> None:
        env = {"DNFT_KAFKA__BOOTSTRAP_SERVERS": "[127.0.0.1:1, 127.0.0.1:2]"}
        s = settings_from_mapping(base(), env)
        assert s.kafka.bootstrap_servers == ["127.0.0.1:1", "127.0.0.1:2"]

    def test_list_item_by_name(self) -> None:
        env = {"DNFT_NETWORKS__LOCAL__MAX_IN_FLIGHT": "3"}
        assert settings_from_mapping(base(), env).networks[0].max_in_flight == 3

    def test_top_level_scalar(self) -> None:
        assert settings_from_mapping(base(), {"DNFT_LOG_LEVEL": "debug"}).log_level == "debug"

    def test_plain_dnft_variables_are_not_keys(self) -> None:
        # Free for ${DNFT_...} substitution; must not be read as settings.
        settings_from_mapping(base(), {"DNFT_COLLECTION_ADDRESS": "0x1", "DNFT_CONFIG": "x"})

    def test_unknown_section_is_an_error(self) -> None:
        assert key_of(base(), {"DNFT_KAFKAA__CLIENT_ID": "x"}) == "kafkaa"

    def test_unknown_list_item_is_an_error(self) -> None:
        assert key_of(base(), {"DNFT_NETWORKS__MAINNET__CHAIN_ID": "1"}) == "networks.mainnet"

    def test_override_is_validated(self) -> None:
        env = {"DNFT_NETWORKS__LOCAL__MAX_IN_FLIGHT": "0"}
        assert key_of(base(), env) == "networks[local].max_in_flight"


class TestValidation:
    """Bad values fail at load with the dotted key of the culprit."""

    def test_missing_section(self) -> None:
        raw = base()
        del raw["kafka"]
        assert key_of(raw) == "kafka"

    def test_bad_rpc_url(self) -> None:
        raw = base()
        raw["networks"][0]["rpc_urls"] = ["ftp://x"]
        assert key_of(raw) == "networks[local].rpc_urls"

    def test_bad_address(self) -> None:
        raw = base()
        raw["contracts"][0]["address"] = "0x123"
        assert key_of(raw) == "contracts[collection].address"

    def test_unknown_key_is_refused(self) -> None:
        raw = base()
        raw["kafka"]["bootstrap"] = "typo"
        assert key_of(raw) == "kafka.bootstrap"

    def test_bad_bootstrap_server(self) -> None:
        raw = base()
        raw["kafka"]["bootstrap_servers"] = ["localhost"]
        assert key_of(raw) == "kafka.bootstrap_servers"

    def test_contract_on_unknown_network(self) -> None:
        raw = base()
        raw["contracts"][0]["network"] = "mainnet"
        with pytest.raises(ConfigError, match="unknown network 'mainnet'"):
            settings_from_mapping(raw, {})

    def test_confirmations_need_exactly_one(self) -> None:
        raw = base()
        raw["networks"][0]["confirmations"] = {"depth": 3, "tag": "safe"}
        assert key_of(raw) == "networks[local].confirmations"

    def test_feed_union_names_feed_field(self) -> None:
        raw = base()
        raw["feeds"] = [{"kind": "http", "id": "eth-usd", "url": "http://x"}]
        assert key_of(raw) == "feeds[eth-usd].value_path"

    def test_duplicate_network_names(self) -> None:
        raw = base()
        raw["networks"].append(dict(raw["networks"][0]))
        with pytest.raises(ConfigError, match="duplicate name 'local'"):
            settings_from_mapping(raw, {})

    def test_yaml_round_trip_of_example(self, tmp_path: Path) -> None:
        text = (REPO / "dnft.example.yaml").read_text()
        data = yaml.safe_load(text)
        data["kafka"]["producer"]["compression"] = "brotli"
        path = tmp_path / "dnft.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert info.value.key == "kafka.producer.compression"
