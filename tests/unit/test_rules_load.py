"""Richer rules at load: errors name the file, the key and the event or argument missing from
the contract's ABI; CEL is compiled (and bounded) at load; dnft.yaml binds each collection to
its contract's ABI (limited by include_events)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from dnft.collection import load_bound_collections, load_collection
from dnft.collection.abi import events_of, read_abi_events
from dnft.collection.cel import MAX_EXPRESSION
from dnft.config import settings_from_mapping
from dnft.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SAMPLE_ABI = REPO / "schemas" / "abi" / "DynamicCollection.json"
SAMPLE = yaml.safe_load((REPO / "collections" / "sample.yaml").read_text())


def load(tmp_path: Path, *traits: dict[str, Any], **changes: Any) -> ConfigError:
    raw = copy.deepcopy(SAMPLE)
    raw["traits"] += list(traits)
    raw.update(changes)
    path = tmp_path / "game.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_collection(path, read_abi_events(SAMPLE_ABI, "abi"), "contract 'collection'")
    return info.value


class TestAbiErrors:
    @pytest.mark.parametrize(
        ("trait", "key", "missing"),
        [
            ({"event": "Feed", "reduce": "count"}, "event", "event 'Feed'"),
            ({"event": "Fed", "reduce": "sum", "arg": "amt"}, "arg", "argument 'amt'"),
            ({"event": "Fed", "reduce": "distinct", "arg": "to"}, "arg", "argument 'to'"),
            (
                {"event": "Fed", "reduce": "count", "where": {"arg": "kind", "equals": "gold"}},
                "where.arg",
                "argument 'kind'",
            ),
            (
                {"event": "Fed", "reduce": "count", "where": "args.amount > 1 && args.kind == 'x'"},
                "where",
                "argument 'kind'",
            ),
            (
                {"event": "Fed", "reduce": "count", "where": 'args["weight"] > 1'},
                "where",
                "'weight'",
            ),
            (
                {"event": "Fed", "reduce": "trait", "key": "mood"},  # Fed has no key/value
                "key_arg",
                "argument 'key'",
            ),
            (
                {"event": "TraitSet", "reduce": "trait", "key": "m", "value_arg": "val"},
                "value_arg",
                "argument 'val'",
            ),
        ],
    )
    def test_error_names_file_key_and_what_is_missing(
        self, tmp_path: Path, trait: dict[str, Any], key: str, missing: str
    ) -> None:
        error = load(tmp_path, {"name": "x", **trait})
        assert error.key == f"{tmp_path / 'game.yaml'}: traits.[x].{key}"
        assert missing in error.reason
        assert "contract 'collection'" in error.reason

    def test_sample_loads_against_its_abi(self) -> None:
        events = read_abi_events(SAMPLE_ABI, "abi")
        collection = load_collection(REPO / "collections" / "sample.yaml", events)
        assert collection.arg_types("Fed")["amount"] == "uint256"

    def test_unnamed_and_overloaded_event_arguments(self) -> None:
        abi = [
            {"type": "event", "name": "E", "inputs": [{"name": "", "type": "uint8"}]},
            {"type": "event", "name": "E", "inputs": [{"name": "a", "type": "address"}]},
            {"type": "function", "name": "f", "inputs": []},
        ]
        assert events_of(abi) == {"E": {"_0": "uint8", "a": "address"}}

    def test_unreadable_abi_names_the_key(self, tmp_path: Path) -> None:
        bad = tmp_path / "abi.json"
        bad.write_text("{not json")
        with pytest.raises(ConfigError, match="is not JSON") as info:
            read_abi_events(bad, "contracts[x].abi")
        assert info.value.key == "contracts[x].abi"


class TestCelAtLoad:
    @pytest.mark.parametrize(
        ("trait", "key", "reason"),
        [
            ({"event": "Fed", "reduce": "count", "where": "args.amount >"}, "where", "syntax"),
            ({"expr": "traits.fed +"}, "expr", "syntax"),
            ({"expr": "[1, 2].map(v, v * 2)[0]"}, "expr", "macro map()"),
            (
                {"event": "Fed", "reduce": "count", "where": "[args.amount].exists(a, a > 1)"},
                "where",
                "macro exists()",
            ),
            # A comment or a quote must not hide a macro from the check (a nested map() ran
            # for a minute on the planner's loop before).
            ({"expr": "[1, 2]. //c\nmap(v, v * 2)[0]"}, "expr", "macro map()"),
            ({"expr": "[1, 2].filter //c\n (v, v > 1)[0]"}, "expr", "macro filter()"),
            ({"expr": '// a "quote\n[1].all(v, v > 0)'}, "expr", "macro all()"),
            ({"expr": 'r"\\" + string([1].exists_one(v, true))'}, "expr", "macro exists_one()"),
            ({"expr": "fed + 1"}, "expr", "unknown variables ['fed']"),
            ({"event": "Fed", "reduce": "count", "where": "traits.fed > 1"}, "where", "unknown"),
            ({"expr": "traits.nope * 2"}, "expr", "reads traits ['nope']"),
            ({"expr": "1 + " * MAX_EXPRESSION + "1"}, "expr", "at most"),
        ],
    )
    def test_expression_errors_name_the_key(
        self, tmp_path: Path, trait: dict[str, Any], key: str, reason: str
    ) -> None:
        error = load(tmp_path, {"name": "x", **trait})
        assert error.key == f"{tmp_path / 'game.yaml'}: traits.[x].{key}"
        assert reason in error.reason

    def test_macro_names_inside_strings_are_text(self, tmp_path: Path) -> None:
        raw = copy.deepcopy(SAMPLE)
        raw["traits"].append({"name": "x", "expr": '"a.map(b)" + traits.mood'})
        path = tmp_path / "ok.yaml"
        path.write_text(yaml.safe_dump(raw))
        assert load_collection(path).traits[-1].expr is not None

    def test_a_computed_trait_reads_only_traits_above_it(self, tmp_path: Path) -> None:
        error = load(tmp_path, {"name": "a", "expr": "traits.b + 1"}, {"name": "b", "expr": "1"})
        assert error.key.endswith("traits.[a].expr")
        assert "listed above it" in error.reason

    @pytest.mark.parametrize(
        ("trait", "reason"),
        [
            ({"event": "Fed", "feed": "eth-usd"}, "exactly one of"),
            ({"expr": "1", "feed": "eth-usd"}, "exactly one of"),
            ({"expr": "1", "reduce": "count"}, "apply to event traits"),
            ({"event": "Fed", "reduce": "max"}, "needs 'arg'"),
            ({"event": "Fed", "reduce": "median", "arg": "amount"}, "Input should be"),
            ({"event": "Fed", "reduce": "count", "where": {"arg": "by"}}, "exactly one of"),
        ],
    )
    def test_shape_errors(self, tmp_path: Path, trait: dict[str, Any], reason: str) -> None:
        error = load(tmp_path, {"name": "x", **trait})
        assert "traits.[x]" in error.key
        assert reason in error.reason

    def test_stages_may_follow_a_computed_trait(self, tmp_path: Path) -> None:
        raw = copy.deepcopy(SAMPLE)
        raw["traits"].append({"name": "power", "expr": "traits.fed * 2"})
        raw["stages"]["trait"] = "power"
        path = tmp_path / "ok.yaml"
        path.write_text(yaml.safe_dump(raw))
        assert load_collection(path).stages.trait == "power"


class TestBound:
    """load_bound_collections checks each collection against its contract's ABI events."""

    def settings(self, tmp_path: Path, rules: dict[str, Any], include: list[str] | None) -> Any:
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(rules))
        abi = tmp_path / "abi.json"
        abi.write_bytes(orjson.dumps({"abi": orjson.loads(SAMPLE_ABI.read_bytes())}))
        contract: dict[str, Any] = {
            "name": "collection", "network": "local", "abi": str(abi),
            "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        }  # fmt: skip
        if include is not None:
            contract["include_events"] = include
        raw = {
            "networks": [
                {"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"]}
            ],
            "contracts": [contract],
            "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
            "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
            "collections": [{"file": str(tmp_path / "c.yaml")}],
        }
        return settings_from_mapping(raw, {})

    def test_bound_collection_knows_its_argument_types(self, tmp_path: Path) -> None:
        (bound,) = load_bound_collections(self.settings(tmp_path, SAMPLE, None))
        assert bound.collection.arg_types("TraitSet") == {
            "tokenId": "uint256", "key": "string", "value": "string"
        }  # fmt: skip

    def test_an_event_left_out_of_include_events_is_an_error(self, tmp_path: Path) -> None:
        settings = self.settings(tmp_path, SAMPLE, ["Transfer", "TraitSet"])
        with pytest.raises(ConfigError, match=r"event 'Fed'.*include_events") as info:
            load_bound_collections(settings)
        assert info.value.key == f"{tmp_path / 'c.yaml'}: traits.[fed].event"
