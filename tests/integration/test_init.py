"""``dnft init`` against a real anvil: the sample contract's ABI and deployed address give a
dnft.yaml that ``dnft config check`` accepts and whose contract and collection load; an
address with no code, or the wrong chain id, is an error that writes nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from dnft.collection import load_bound_collections
from dnft.config import load_settings
from dnft.devservices import AnvilService
from indexer import ChunkEncoder
from tests.support.chain import COLLECTION_ABI, World, make_world

# anvil's first dev account: an address with a balance and no code.
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def dnft(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dnft", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def init(rpc_url: str, address: str, chain_id: int, *extra: str) -> list[str]:
    return [
        "init",
        "--abi",
        COLLECTION_ABI,
        "--address",
        address,
        "--chain-id",
        str(chain_id),
        "--rpc-url",
        rpc_url,
        "--name",
        "critters",
        *extra,
    ]


@pytest.fixture(scope="module")
def world(anvil: AnvilService) -> World:
    return asyncio.run(make_world(anvil.rpc_url))


class TestInit:
    def test_a_deployed_contract_gives_a_working_config(self, world: World, tmp_path: Path) -> None:
        done = dnft(tmp_path, *init(world.rpc_url, world.address, world.chain_id))
        assert done.returncode == 0, done.stderr
        assert "wrote dnft.yaml" in done.stdout
        check = dnft(tmp_path, "--config", "dnft.yaml", "config", "check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "config ok: 1 network(s), 1 contract(s)" in check.stdout

        settings = load_settings(tmp_path / "dnft.yaml", env={})
        encoder = ChunkEncoder.from_settings(settings, f"chain-{world.chain_id}")
        assert set(encoder.contracts) == {world.address.lower()}
        (bound,) = load_bound_collections(settings)
        assert (bound.chain_id, bound.contract) == (world.chain_id, world.address.lower())

        again = dnft(tmp_path, *init(world.rpc_url, world.address, world.chain_id))
        assert again.returncode == 1
        assert "--force" in again.stderr
        forced = init(world.rpc_url, world.address, world.chain_id, "--force")
        assert dnft(tmp_path, *forced).returncode == 0

    def test_an_address_with_no_code_is_an_error(self, world: World, tmp_path: Path) -> None:
        done = dnft(tmp_path, *init(world.rpc_url, DEV_ACCOUNT, world.chain_id))
        assert done.returncode == 1
        assert "has no code" in done.stderr
        assert list(tmp_path.iterdir()) == []

    def test_the_wrong_chain_id_is_an_error(self, world: World, tmp_path: Path) -> None:
        done = dnft(tmp_path, *init(world.rpc_url, world.address, 1))
        assert done.returncode == 1
        assert f"is on chain {world.chain_id}, not 1" in done.stderr
        assert list(tmp_path.iterdir()) == []
