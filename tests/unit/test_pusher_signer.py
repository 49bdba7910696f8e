"""The pusher's signer: EIP-1559 signatures identical to eth-account's, the key kept secret."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
from eth_account import Account

from dnft.config import PusherSignerSettings, settings_from_mapping
from dnft.contracts import anvil_dev_key
from dnft.errors import ConfigError
from publisher.pusher.signer import Signer, UnsignedTx

KEY = anvil_dev_key(7)
KEY_HEX = KEY.removeprefix("0x")
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def tx(**over: Any) -> UnsignedTx:
    fields: dict[str, Any] = {
        "chain_id": 31337,
        "nonce": 42,
        "max_priority_fee_per_gas": 1_500_000_000,
        "max_fee_per_gas": 31 * 10**9,
        "gas": 80_000,
        "to": CONTRACT,
        "data": bytes.fromhex("c0ffee" * 30),
    }
    fields.update(over)
    return UnsignedTx(**fields)


def leaks(text: str) -> bool:
    return KEY_HEX.lower() in text.lower()


class TestSigning:
    """Raw bytes and hash match eth-account's for the same transaction, signed with coincurve."""

    @pytest.mark.parametrize("nonce", [0, 1, 42, 2**40])
    def test_same_bytes_as_eth_account(self, nonce: int) -> None:
        ours = Signer(bytes.fromhex(KEY_HEX)).sign(tx(nonce=nonce))
        theirs = Account.sign_transaction(
            {
                "type": 2,
                "chainId": 31337,
                "nonce": nonce,
                "maxPriorityFeePerGas": 1_500_000_000,
                "maxFeePerGas": 31 * 10**9,
                "gas": 80_000,
                "to": CONTRACT,
                "value": 0,
                "data": bytes.fromhex("c0ffee" * 30),
                "accessList": [],
            },
            KEY,
        )
        assert ours.raw == bytes(theirs.raw_transaction)
        assert ours.hash == theirs.hash.to_0x_hex()

    def test_address_and_recovery(self) -> None:
        signer = Signer(bytes.fromhex(KEY_HEX))
        assert signer.address == Account.from_key(KEY).address
        signed = signer.sign(tx())
        assert Account.recover_transaction(signed.raw) == signer.address

    def test_fast(self) -> None:
        signer = Signer(bytes.fromhex(KEY_HEX))
        started = time.perf_counter()
        for i in range(500):
            signer.sign(tx(nonce=i))
        per_tx = (time.perf_counter() - started) / 500
        assert per_tx < 0.002, f"{per_tx * 1000:.2f} ms per signature"

    async def test_async_signing_matches(self) -> None:
        signer = Signer(bytes.fromhex(KEY_HEX))
        assert await signer.sign_async(tx()) == signer.sign(tx())


class TestKeySecrecy:
    """The key never appears in repr, str, logs or errors, and cannot be copied out."""

    def test_repr_and_str_show_only_the_address(self) -> None:
        signer = Signer(bytes.fromhex(KEY_HEX))
        for text in (repr(signer), str(signer), f"{signer}", repr([signer])):
            assert not leaks(text)
            assert signer.address in text

    def test_no_pickling_or_copying(self) -> None:
        signer = Signer(bytes.fromhex(KEY_HEX))
        with pytest.raises(TypeError, match="private key"):
            pickle.dumps(signer)
        with pytest.raises(TypeError, match="private key"):
            copy.deepcopy(signer)

    def test_structlog_output(self, capsys: pytest.CaptureFixture[str]) -> None:
        from dnft.logging import configure_logging, get_logger

        saved = structlog.get_config()
        configure_logging("debug")
        try:
            signer = Signer(bytes.fromhex(KEY_HEX))
            get_logger("test").info("signer ready", signer=signer, address=signer.address)
        finally:
            # Later tests must not log into this test's captured (then closed) stderr.
            structlog.configure(**saved)
        err = capsys.readouterr().err
        assert "signer ready" in err
        assert not leaks(err)

    def test_from_env_and_file(self, tmp_path: Path) -> None:
        from_env = Signer.from_settings(PusherSignerSettings(key_env="K"), {"K": f" {KEY}\n"})
        key_file = tmp_path / "key"
        key_file.write_text(KEY_HEX + "\n")
        from_file = Signer.from_settings(PusherSignerSettings(key_file=key_file), {})
        assert from_env.address == from_file.address == Account.from_key(KEY).address

    def test_key_read_from_env_is_removed_from_it(self) -> None:
        env = {"K": KEY, "OTHER": "x"}
        Signer.from_settings(PusherSignerSettings(key_env="K"), env)
        assert env == {"OTHER": "x"}  # child processes started later cannot inherit it

    def test_key_leaves_os_environ_and_children(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DNFT_TEST_SIGNER_KEY", KEY)
        signer = Signer.from_settings(PusherSignerSettings(key_env="DNFT_TEST_SIGNER_KEY"))
        assert signer.address == Account.from_key(KEY).address
        assert "DNFT_TEST_SIGNER_KEY" not in os.environ
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.environ.get('DNFT_TEST_SIGNER_KEY'))"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert child.stdout.strip() == "None"

    @pytest.mark.parametrize(
        "value",
        [KEY_HEX[:-2], KEY_HEX + "zz", "0x" + "0" * 64, KEY_HEX + KEY_HEX, "x" + KEY_HEX[1:]],
    )
    def test_bad_key_errors_name_the_setting_not_the_value(self, value: str) -> None:
        with pytest.raises(ConfigError) as info:
            Signer.from_settings(PusherSignerSettings(key_env="K"), {"K": value})
        assert info.value.key == "pusher.signer.key_env"
        assert value not in str(info.value)
        assert KEY_HEX[:20] not in str(info.value)

    def test_missing_sources(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="K is not set") as info:
            Signer.from_settings(PusherSignerSettings(key_env="K"), {})
        assert info.value.key == "pusher.signer.key_env"
        with pytest.raises(ConfigError, match="cannot read") as info:
            Signer.from_settings(PusherSignerSettings(key_file=tmp_path / "none"), {})
        assert info.value.key == "pusher.signer.key_file"

    def test_key_pasted_into_settings_is_not_echoed(self) -> None:
        raw = base()
        raw["pusher"]["signer"] = {"key_env": KEY}  # a key where a variable name belongs
        with pytest.raises(ConfigError) as info:
            settings_from_mapping(raw, {})
        assert info.value.key == "pusher.signer.key_env"
        assert not leaks(str(info.value))


def base() -> dict[str, Any]:
    return {
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "contracts": [
            {"name": "collection", "network": "local", "address": CONTRACT, "abi": "abi.json"}
        ],
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
        "pusher": {"collections": [{"contract": "collection"}], "signer": {"key_env": "K"}},
    }


class TestPusherSettings:
    """The pusher section validates at load and names the failing key."""

    def test_defaults(self) -> None:
        s = settings_from_mapping(base(), {}).pusher
        assert s.collections[0].mode == "erc4906"
        assert s.confirmations == 3
        assert s.fees.bump_percent >= 10

    def test_unknown_contract(self) -> None:
        raw = base()
        raw["pusher"]["collections"] = [{"contract": "nope"}]
        with pytest.raises(ConfigError, match=r"pusher.collections\[nope\].contract"):
            settings_from_mapping(raw, {})

    def test_signer_needs_exactly_one_source(self, tmp_path: Path) -> None:
        raw = base()
        raw["pusher"]["signer"] = {"key_env": "K", "key_file": str(tmp_path / "k")}
        with pytest.raises(ConfigError, match="exactly one") as info:
            settings_from_mapping(raw, {})
        assert info.value.key == "pusher.signer"

    def test_collections_need_a_signer(self) -> None:
        raw = base()
        del raw["pusher"]["signer"]
        with pytest.raises(ConfigError, match=r"pusher\.signer"):
            settings_from_mapping(raw, {})

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("mode", "setter"),
            ("uri_template", "ipfs://fixed"),
        ],
    )
    def test_bad_collection_fields(self, key: str, value: str) -> None:
        raw = base()
        raw["pusher"]["collections"][0][key] = value
        with pytest.raises(ConfigError) as info:
            settings_from_mapping(raw, {})
        assert info.value.key == f"pusher.collections[0].{key}"

    def test_env_override(self) -> None:
        s = settings_from_mapping(base(), {"DNFT_PUSHER__WINDOW_S": "0.5"})
        assert s.pusher.window_s == 0.5
