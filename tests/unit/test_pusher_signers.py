"""A key per chain: ``pusher.signers`` overrides ``pusher.signer`` for one network; every
network with announced collections has a key; each is read once, and errors name the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dnft.config import settings_from_mapping
from dnft.contracts import anvil_dev_key
from dnft.errors import ConfigError
from publisher.pusher import load_signers, prepare_signers
from tests.support.cli import run_dnft_in_process, write_config

ABI = Path(__file__).resolve().parents[2] / "schemas" / "abi" / "DynamicCollection.json"
BASE_KEY = anvil_dev_key(7).removeprefix("0x")
OP_KEY = anvil_dev_key(8).removeprefix("0x")


def two_chains(**pusher: Any) -> dict[str, Any]:
    """Networks ``base`` (8453) and ``op`` (10), a contract and an announced collection on each."""
    return {
        "networks": [
            {"name": "base", "chain_id": 8453, "rpc_urls": ["http://127.0.0.1:1"]},
            {"name": "op", "chain_id": 10, "rpc_urls": ["http://127.0.0.1:2"]},
        ],
        "contracts": [
            {"name": c, "network": c, "address": "0x" + n * 20, "abi": str(ABI)}
            for c, n in (("base", "ab"), ("op", "cd"))
        ],
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
        "pusher": {"collections": [{"contract": "base"}, {"contract": "op"}], **pusher},
    }


def config_error(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw, {})
    return info.value


class TestSettings:
    def test_a_network_entry_overrides_the_default(self) -> None:
        raw = two_chains(signer={"key_env": "ANY"}, signers={"op": {"key_env": "OP"}})
        pusher = settings_from_mapping(raw, {}).pusher
        assert pusher.signer_for("base") == ("pusher.signer", pusher.signer)
        key, op = pusher.signer_for("op")
        assert key == "pusher.signers.op"
        assert op is not None
        assert op.key_env == "OP"

    def test_a_key_per_network_needs_no_default(self) -> None:
        raw = two_chains(signers={"base": {"key_env": "B"}, "op": {"key_file": "/run/op.key"}})
        assert settings_from_mapping(raw, {}).pusher.signer is None

    def test_a_network_without_a_key_is_named(self) -> None:
        error = config_error(two_chains(signers={"base": {"key_env": "B"}}))
        assert error.key == "pusher.signer"
        assert "network 'op'" in str(error)
        assert "pusher.signers.op" in str(error)

    def test_a_network_announcing_nothing_needs_no_key(self) -> None:
        raw = two_chains(signers={"base": {"key_env": "B"}})
        raw["pusher"]["collections"][1]["mode"] = "none"
        assert settings_from_mapping(raw, {}).pusher.signers.keys() == {"base"}

    def test_an_unknown_network_is_named(self) -> None:
        error = config_error(
            two_chains(signer={"key_env": "K"}, signers={"bsae": {"key_env": "B"}})
        )
        assert error.key == "pusher.signers.bsae"
        assert "unknown network 'bsae'" in str(error)
        assert "['base', 'op']" in str(error)

    def test_a_signer_entry_is_checked(self) -> None:
        raw = two_chains(signers={"base": {"key_env": "B", "key_file": "/k"}, "op": {}})
        assert config_error(raw).key.startswith("pusher.signers.base")


class TestLoading:
    def test_each_network_signs_with_its_own_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DNFT_TEST_BASE_KEY", BASE_KEY)
        monkeypatch.setenv("DNFT_TEST_OP_KEY", OP_KEY)
        raw = two_chains(
            signer={"key_env": "DNFT_TEST_BASE_KEY"},
            signers={"op": {"key_env": "DNFT_TEST_OP_KEY"}},
        )
        signers = load_signers(settings_from_mapping(raw, {}), ["base", "op"])
        assert signers["base"].address != signers["op"].address
        assert "DNFT_TEST_OP_KEY" not in os.environ  # read keys leave the environment

    def test_one_key_for_two_networks_is_read_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Reading a key_env removes it: a second read of the same variable would fail.
        monkeypatch.setenv("DNFT_TEST_KEY", BASE_KEY)
        raw = two_chains(signers={n: {"key_env": "DNFT_TEST_KEY"} for n in ("base", "op")})
        signers = load_signers(settings_from_mapping(raw, {}), ["base", "op"])
        assert signers["base"] is signers["op"]

    def test_a_bad_key_names_its_network(self, tmp_path: Path) -> None:
        raw = two_chains(
            signer={"key_file": str(tmp_path / "base.key")},
            signers={"op": {"key_file": str(tmp_path / "missing.key")}},
        )
        (tmp_path / "base.key").write_text(BASE_KEY)
        with pytest.raises(ConfigError) as info:
            load_signers(settings_from_mapping(raw, {}), ["base", "op"])
        assert info.value.key == "pusher.signers.op.key_file"
        assert BASE_KEY not in str(info.value)

    @pytest.mark.parametrize(
        ("networks", "key", "message"),
        [(["nope"], "networks", "no network named 'nope'"), (["op"], "pusher.collections", "'op'")],
    )
    def test_prepare_refuses_a_network_it_cannot_push(
        self, networks: list[str], key: str, message: str
    ) -> None:
        raw = two_chains(signer={"key_env": "UNSET"})
        raw["pusher"]["collections"][1]["mode"] = "none"
        with pytest.raises(ConfigError) as info:
            prepare_signers(settings_from_mapping(raw, {}), networks)
        assert info.value.key == key
        assert message in str(info.value)


def test_pusher_command_refuses_an_unknown_network(tmp_path: Path) -> None:
    """`dnft pusher --network NAME` checks the name before anything starts."""
    config = write_config(tmp_path / "dnft.yaml", two_chains(signer={"key_env": "UNSET"}))
    code, _, err = run_dnft_in_process(config, "pusher", "--network", "nope")
    assert code != 0
    assert "no network named 'nope'" in err
