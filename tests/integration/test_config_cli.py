"""`dnft config check` names the failing key and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_check(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DNFT_")}
    return subprocess.run(
        [sys.executable, "-m", "dnft", "--config", str(config), "config", "check"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        check=False,
    )


class TestConfigCheck:
    """The example config passes; a broken one is named by key."""

    def test_example_passes(self) -> None:
        result = run_check(REPO / "dnft.example.yaml")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "config ok: 1 network(s), 1 contract(s)" in result.stdout

    def test_bad_key_is_named(self, tmp_path: Path) -> None:
        text = (
            (REPO / "dnft.example.yaml")
            .read_text()
            .replace("max_in_flight: 8", "max_in_flight: many")
        )
        result = check_text(tmp_path, text)
        assert result.returncode == 1
        assert "config error at networks[local].max_in_flight" in result.stdout

    def test_bad_env_override_is_named(self) -> None:
        result = run_check(REPO / "dnft.example.yaml", DNFT_KAFKA__PRODUCER__ACKS="most")
        assert result.returncode == 1
        assert "config error at kafka.producer.acks" in result.stdout

    def test_token_identity_checked_against_the_abi(self, tmp_path: Path) -> None:
        text = example_with_absolute_paths().replace(
            "DynamicCollection.json\n",
            "DynamicCollection.json\n    events: {Upgraded: {token: {arg: hero}}}\n",
            1,
        )
        result = check_text(tmp_path, text)
        assert result.returncode == 1, result.stdout
        assert "config error at contracts[collection].events.Upgraded" in result.stdout

    def test_collection_rules_checked_against_the_abi(self, tmp_path: Path) -> None:
        rules = (REPO / "collections" / "sample.yaml").read_text()
        rules = rules.replace("event: Fed, reduce: count", "event: Feed, reduce: count")
        (tmp_path / "sample.yaml").write_text(rules)
        text = example_with_absolute_paths().replace(
            str(REPO / "collections" / "sample.yaml"), str(tmp_path / "sample.yaml")
        )
        result = check_text(tmp_path, text)
        assert result.returncode == 1, result.stdout
        assert "config error at" in result.stdout
        assert "'Feed'" in result.stdout


def check_text(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`dnft config check` of ``text`` written as ``tmp_path/dnft.yaml``."""
    path = tmp_path / "dnft.yaml"
    path.write_text(text)
    return run_check(path)


def example_with_absolute_paths() -> str:
    """dnft.example.yaml with its ABI and collection paths made absolute (relative ones are
    read from the config file's folder)."""
    text = (REPO / "dnft.example.yaml").read_text()
    for rel in ("schemas/abi/DynamicCollection.json", "collections/sample.yaml"):
        text = text.replace(f" {rel}", f" {REPO / rel}")
    return text


def test_a_pusher_call_missing_from_the_abi_is_named(tmp_path: Path) -> None:
    text = example_with_absolute_paths().replace(
        "      mode: erc4906 ",
        '      mode: call\n      function: "emitBatchMetadataUpdate(uint256,uint256)"\n'
        "      args: range\n      # ",
        1,
    )
    result = check_text(tmp_path, text)
    assert result.returncode == 1, result.stdout
    assert "config error at pusher.collections" in result.stdout
    assert "emitBatchMetadataUpdate" in result.stdout
