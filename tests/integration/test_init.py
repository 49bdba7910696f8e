"""``dnft init`` against a real anvil: the sample contract's ABI and deployed address give a
dnft.yaml that ``dnft config check`` accepts and whose contract and collection load; an
address with no code, or the wrong chain id, is an error that writes nothing. With the stock
OpenZeppelin contracts (real tansu and Postgres), ``dnft run --all`` starts with the generated
files and renders every minted token."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from dnft.collection import load_bound_collections
from dnft.config import load_settings
from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from indexer import ChunkEncoder
from tests.support.chain import COLLECTION_ABI, World, make_world
from tests.support.cli import clean_env
from tests.support.daemon import DaemonProcess
from tests.support.stock import STOCK_ERC721_ABI, STOCK_ERC1155_ABI, deploy_stock

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


class TestInitStockContracts:
    """Contracts not written for dnft (stock OpenZeppelin ERC-721 with ERC-4906 and a custom
    event, ERC-1155 with TransferBatch): the generated files pass ``config check`` and
    ``dnft run --all`` starts with them and renders a version of every minted token."""

    @pytest.mark.parametrize("name", ["StockERC721", "StockERC1155"])
    async def test_generated_files_run(
        self,
        name: str,
        anvil: AnvilService,
        kafka_bootstrap: str,
        db: str,
        unique_topic: Callable[[str], str],
        tmp_path: Path,
    ) -> None:
        stock = await deploy_stock(anvil.rpc_url, name)
        if name == "StockERC721":
            for _ in range(2):
                await stock.call("safeMint", stock.owner)  # tokens 0 and 1
            await stock.call("train", 1, 30, "archery")  # Trained(hero, ...): no default name
            minted = {0, 1}
        else:
            await stock.call("mintBatch", stock.owner, [4, 5], [3, 7], b"")
            minted = {4, 5}
        abi = STOCK_ERC1155_ABI if name == "StockERC1155" else STOCK_ERC721_ABI
        args = ["init", "--abi", abi, "--address", stock.address, "--chain-id",
                str(stock.chain_id), "--rpc-url", anvil.rpc_url, "--name", "stock"]  # fmt: skip
        done = dnft(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        rules = (tmp_path / "stock.collection.yaml").read_text()
        config = (tmp_path / "dnft.yaml").read_text()
        if name == "StockERC1155":
            assert '"TransferBatch": {token: {arg: "ids", amount_arg: "values"}}' in config
            assert "reduce: balance, output: count}" in rules
        else:
            assert '"Trained": {token: none}' in config  # 'hero': the user binds it

        env = {
            "DNFT_DEV_KAFKA": kafka_bootstrap,
            "DNFT_DEV_PG_DSN": db,
            "DNFT_REGENERATOR__STORAGE__PATH": str(tmp_path / "blobs"),
            "DNFT_REGENERATOR__PLANNER_GROUP": unique_topic("planner"),
            "DNFT_REGENERATOR__RENDER_GROUP": unique_topic("render"),
        }
        for topic in ("chain_events", "oracle_observations", "render_jobs",
                      "metadata_updates", "dead_letter"):  # fmt: skip
            env[f"DNFT_KAFKA__TOPICS__{topic.upper()}"] = unique_topic(topic)
        check = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "dnft", "--config", "dnft.yaml", "config", "check"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
            env=clean_env(**env),
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr

        health, api = free_port(), free_port()
        env |= {"DNFT_HTTP__PORT": str(health), "DNFT_API__PORT": str(api)}
        daemon = DaemonProcess("run --all", tmp_path / "dnft.yaml", health, tmp_path / "run.log")
        daemon.start(**env)
        try:

            async def versioned() -> set[int] | None:
                conn = await asyncpg.connect(db)
                try:
                    rows = await conn.fetch("select distinct token_id from token_versions")
                finally:
                    await conn.close()
                tokens = {int(r[0]) for r in rows}
                return tokens if tokens >= minted else None

            assert await daemon.until(versioned, 90, "a version of every minted token") == minted
            assert await daemon.until(daemon.ready, 30, "/readyz")
        finally:
            daemon.terminate()
