"""``dnft init`` generates a dnft.yaml and a collection file from an ABI that load as they are
(settings, token identity against the ABI, rules bound to the contract)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from dnft.cli import main
from dnft.cli.init import project_files, read_events
from dnft.collection import load_bound_collections
from dnft.config import TokenSource, load_settings
from dnft.errors import ConfigError
from indexer import ChunkEncoder
from tests.support.abi import event_abi

SAMPLE_ABI = Path(__file__).resolve().parents[2] / "schemas" / "abi" / "DynamicCollection.json"
STOCK_1155 = SAMPLE_ABI.with_name("StockERC1155.json")
ADDRESS = "0x" + "ab" * 20
GAME = [
    event_abi("Upgraded", ("hero", "uint256", True), ("level", "uint8", False)),
    event_abi("SeasonChanged", ("season", "uint8", False)),
    event_abi("MetadataUpdate", ("_tokenId", "uint256", False)),
]


def generate(tmp_path: Path, abi: Path, name: str = "game") -> dict[str, object]:
    """Write the generated files in ``tmp_path``; the YAML of each, parsed."""
    files = project_files(
        read_events(abi, name),
        name=name,
        abi=str(abi),
        address=ADDRESS,
        chain_id=31337,
        rpc_url="http://127.0.0.1:8545",
    )
    for file, text in files.items():
        (tmp_path / file).write_text(text)
    return {file: yaml.safe_load(text) for file, text in files.items()}


class TestGeneratedFiles:
    def test_the_sample_abi_gives_files_that_load(self, tmp_path: Path) -> None:
        files = generate(tmp_path, SAMPLE_ABI, "critters")
        settings = load_settings(tmp_path / "dnft.yaml", env={})
        (contract,) = settings.contracts
        assert contract.events["Transfer"].token.arg == "tokenId"  # type: ignore[union-attr]
        assert contract.events["RoleGranted"].token == "none"
        encoder = ChunkEncoder.from_settings(settings, "chain-31337")
        assert encoder.publisher.token_args[(ADDRESS, "Fed")] == TokenSource("tokenId")
        (bound,) = load_bound_collections(settings)
        assert bound.contract == ADDRESS
        rules = files["critters.collection.yaml"]
        assert isinstance(rules, dict)
        active = {t["event"] for t in rules["traits"]}
        # Collection-wide events and the announcements dnft causes stay commented out.
        assert active == {"Approval", "Fed", "TraitSet", "Transfer"}

    def test_a_custom_token_argument_and_a_collection_wide_event(self, tmp_path: Path) -> None:
        abi = tmp_path / "Game.json"
        abi.write_bytes(orjson.dumps({"abi": GAME}))  # a build output: {"abi": [...]}
        files = generate(tmp_path, abi)
        config = files["dnft.yaml"]
        assert isinstance(config, dict)
        assert config["contracts"][0]["events"] == {
            "Upgraded": {"token": "none"},  # 'hero' is no default name: the user says so
            "SeasonChanged": {"token": "none"},
            "MetadataUpdate": {"token": {"arg": "_tokenId"}},
        }
        rules = (tmp_path / "game.collection.yaml").read_text()
        assert '# - {name: metadata_update_count, event: "MetadataUpdate"' in rules
        # No event of a token: the first collection-wide one is counted, to stage by.
        assert '  - {name: upgraded_count, event: "Upgraded", reduce: count}' in rules
        load_bound_collections(load_settings(tmp_path / "dnft.yaml", env={}))

    def test_event_names_yaml_would_read_as_booleans_stay_strings(self, tmp_path: Path) -> None:
        abi = tmp_path / "Switch.json"
        abi.write_bytes(orjson.dumps([event_abi("On", ("tokenId", "uint256", True))]))
        files = generate(tmp_path, abi, "switch")
        config = files["dnft.yaml"]
        assert isinstance(config, dict)
        assert config["contracts"][0]["events"] == {"On": {"token": {"arg": "tokenId"}}}
        (bound,) = load_bound_collections(load_settings(tmp_path / "dnft.yaml", env={}))
        assert [t.event for t in bound.collection.traits] == ["On"]

    def test_erc1155_batches_fan_out_and_holders_are_counted(self, tmp_path: Path) -> None:
        files = generate(tmp_path, STOCK_1155, "items")
        config = files["dnft.yaml"]
        assert isinstance(config, dict)
        events = config["contracts"][0]["events"]
        assert events["TransferBatch"] == {"token": {"arg": "ids", "amount_arg": "values"}}
        assert events["TransferSingle"] == {"token": {"arg": "id"}}
        settings = load_settings(tmp_path / "dnft.yaml", env={})
        (bound,) = load_bound_collections(settings)
        holders = next(t for t in bound.collection.traits if t.reduce == "balance")
        assert (holders.name, holders.event_names, holders.output) == (
            "holders",
            ("TransferBatch", "TransferSingle"),
            "count",
        )
        # URI is the ERC-1155 announcement: a trait on it would re-render after each push.
        assert "URI" not in bound.collection.read_events

    def test_overloads_get_a_token_every_overload_holds(self, tmp_path: Path) -> None:
        abi = tmp_path / "Moves.json"
        abi.write_bytes(orjson.dumps([
            event_abi("Moved", ("tokenId", "uint256", True), ("id", "uint256", False)),
            event_abi("Moved", ("id", "uint256", True)),
        ]))  # fmt: skip
        config = generate(tmp_path, abi, "moves")["dnft.yaml"]
        assert isinstance(config, dict)
        assert config["contracts"][0]["events"] == {"Moved": {"token": {"arg": "id"}}}
        load_bound_collections(load_settings(tmp_path / "dnft.yaml", env={}))

    def test_a_name_yaml_would_read_as_a_number_stays_a_string(self, tmp_path: Path) -> None:
        generate(tmp_path, SAMPLE_ABI, "007")
        (bound,) = load_bound_collections(load_settings(tmp_path / "dnft.yaml", env={}))
        assert bound.collection.name == "007"

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            (b"not json", "is not JSON"),
            (b'{"abi": 3}', "holds no ABI"),
            (b"[]", "has no event"),
            (orjson.dumps([{"type": "event", "name": "X", "inputs": [{"type": "u"}]}]), "X"),
        ],
    )
    def test_a_bad_abi_is_an_error_at_abi(self, tmp_path: Path, content: bytes, words: str) -> None:
        abi = tmp_path / "bad.json"
        abi.write_bytes(content)
        with pytest.raises(ConfigError) as err:
            read_events(abi, "bad")
        assert err.value.key == "--abi"
        assert words in err.value.reason


class TestCommand:
    def args(self, abi: Path, *extra: str) -> list[str]:
        return [
            "init",
            "--abi",
            str(abi),
            "--address",
            ADDRESS,
            "--chain-id",
            "31337",
            # Nothing listens on port 9: a test that reached the chain would fail.
            "--rpc-url",
            "http://127.0.0.1:9",
            *extra,
        ]

    def test_refuses_to_overwrite_without_force(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "dnft.yaml").write_text("mine")
        assert main(self.args(SAMPLE_ABI, "--name", "critters")) == 1
        assert "--force" in capsys.readouterr().err
        assert (tmp_path / "dnft.yaml").read_text() == "mine"
        assert not (tmp_path / "critters.collection.yaml").exists()

    def test_a_bad_abi_writes_nothing(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "x.json").write_text("{")
        assert main(self.args(tmp_path / "x.json")) == 1
        assert "is not JSON" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == [tmp_path / "x.json"]
