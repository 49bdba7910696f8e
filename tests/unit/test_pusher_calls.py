"""The pusher's configurable call: each argument shape's calldata (decoded back with eth_abi),
the named modes mapped onto it, and the settings that refuse a call that cannot work."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import structlog
from eth_abi.abi import decode
from eth_utils.abi import function_signature_to_4byte_selector

from dnft.config import NetworkSettings, PusherSettings, settings_from_mapping
from dnft.errors import ConfigError
from publisher.pusher.calls import CallSpec, plan_calls, plan_erc4906, plan_token_uri
from publisher.pusher.chain import Receipt
from publisher.pusher.fees import Fees
from publisher.pusher.rows import Confirmed, PlannedPush, Push, TxRecord, WaitingUpdate
from publisher.pusher.sender import ChainPusher
from publisher.pusher.signer import Signer
from publisher.pusher.targets import push_targets
from tests.support.rules import FED, collection_rules

CONTRACT = "0x" + "ab" * 20
ABI = Path(__file__).resolve().parents[2] / "schemas" / "abi" / "DynamicCollection.json"


def waiting(token: int, version: int = 1) -> WaitingUpdate:
    return WaitingUpdate(token, version, f"cid-{token}-{version}")


def args_of(push: PlannedPush, signature: str, types: list[str]) -> tuple[Any, ...]:
    assert push.calldata[:4] == function_signature_to_4byte_selector(signature)
    return decode(types, push.calldata[4:])


def plan(spec: CallSpec, updates: list[WaitingUpdate], size: int = 2) -> list[PlannedPush]:
    return plan_calls(spec, updates, max_range_size=size, max_per_transaction=size)


UPDATES = [waiting(1), waiting(2), waiting(2, 2), waiting(3), waiting(7)]


class TestShapes:
    """Each shape's calls cover every waiting update once, within the per-call cap."""

    def test_range(self) -> None:
        sig = "emitBatchMetadataUpdate(uint256,uint256)"
        pushes = plan(CallSpec.of(sig, "range"), UPDATES)
        assert [args_of(p, sig, ["uint256", "uint256"]) for p in pushes] == [
            (1, 2),
            (3, 3),
            (7, 7),
        ]
        assert [(p.first_token, p.last_token, len(p.updates)) for p in pushes] == [
            (1, 2, 3),
            (3, 3, 1),
            (7, 7, 1),
        ]

    def test_id(self) -> None:
        sig = "emitMetadataUpdate(uint256)"
        pushes = plan(CallSpec.of(sig, "id"), UPDATES)
        assert [args_of(p, sig, ["uint256"]) for p in pushes] == [(1,), (2,), (3,), (7,)]
        assert [p.token_count for p in pushes] == [1, 1, 1, 1]
        assert [u.version for u in pushes[1].updates] == [1, 2]  # both versions of token 2

    def test_ids(self) -> None:
        sig = "refreshTokens(uint256[])"
        pushes = plan(CallSpec.of(sig, "ids"), UPDATES)
        assert [args_of(p, sig, ["uint256[]"]) for p in pushes] == [((1, 2),), ((3, 7),)]
        assert [(p.first_token, p.last_token) for p in pushes] == [(1, 2), (3, 7)]

    def test_id_uri_with_every_placeholder(self) -> None:
        sig = "setURI(uint256,string)"
        spec = CallSpec.of(sig, "id_uri", "https://x.test/{token_id}/v{version}/{cid}.json")
        pushes = plan(spec, UPDATES)
        assert [args_of(p, sig, ["uint256", "string"]) for p in pushes] == [
            (1, "https://x.test/1/v1/cid-1-1.json"),
            (2, "https://x.test/2/v2/cid-2-2.json"),  # the newest version wins
            (3, "https://x.test/3/v1/cid-3-1.json"),
            (7, "https://x.test/7/v1/cid-7-1.json"),
        ]

    def test_ids_uris(self) -> None:
        sig = "updateTokenURIs(uint256[],string[])"
        pushes = plan(CallSpec.of(sig, "ids_uris", "ar://{cid}"), UPDATES, size=3)
        assert [args_of(p, sig, ["uint256[]", "string[]"]) for p in pushes] == [
            ((1, 2, 3), ("ar://cid-1-1", "ar://cid-2-2", "ar://cid-3-1")),
            ((7,), ("ar://cid-7-1",)),
        ]
        assert sum(len(p.updates) for p in pushes) == len(UPDATES)

    def test_literal_braces_survive(self) -> None:
        spec = CallSpec.of("setURI(uint256,string)", "id_uri", "ipfs://{cid}/{{id}}.json")
        (push,) = plan(spec, [waiting(5)])
        assert args_of(push, spec.signature, ["uint256", "string"]) == (
            5,
            "ipfs://cid-5-1/{id}.json",
        )

    def test_spaces_and_uint_alias_are_canonical(self) -> None:
        spec = CallSpec.of(" updateTokenURI(uint, string) ", "id_uri")
        assert spec.signature == "updateTokenURI(uint256,string)"
        assert spec.selector == function_signature_to_4byte_selector(spec.signature)

    @pytest.mark.parametrize(
        ("function", "args", "first"),
        [
            ("f(uint256,uint256)", "range", [0, 2, 4]),
            ("f(uint256)", "id", [0, 1, 2]),
            ("f(uint256[],string[])", "ids_uris", [0, 2, 4]),
        ],
    )
    def test_only_the_budget_is_built(self, function: str, args: Any, first: list[int]) -> None:
        """Tokens 0, 1, 3, 4, 6, ...: runs of two. A backlog of 10,000 tokens with a budget
        of 3 pushes builds 3, the first ones: the rest wait for the next pass."""
        tokens = [t for t in range(15_000) if t % 3 != 2][:10_000]
        spec = CallSpec.of(function, args)
        pushes = plan_calls(
            spec,
            [waiting(t) for t in tokens],
            max_range_size=2,
            max_per_transaction=2,
            max_pushes=3,
        )
        assert [p.first_token for p in pushes] == [tokens[i] for i in first]

    @pytest.mark.parametrize(
        ("shape", "mode"),
        [
            ("range", "erc4906"),
            ("id", "erc4906"),
            ("ids", "erc4906"),
            ("id_uri", "token-uri"),
            ("ids_uris", "token-uri"),
        ],
    )
    def test_outbox_mode(self, shape: str, mode: str) -> None:
        types = {"range": "uint256,uint256", "id": "uint256", "ids": "uint256[]"}
        types |= {"id_uri": "uint256,string", "ids_uris": "uint256[],string[]"}
        assert CallSpec.of(f"f({types[shape]})", shape).outbox_mode == mode  # type: ignore[arg-type]


class TestNamedModes:
    """erc4906 and token-uri are fixed specs of the generic form: the same bytes as before."""

    def test_erc4906_is_refresh_metadata_over_ranges(self) -> None:
        updates = [waiting(t) for t in (4, 5, 6, 9)]
        generic = CallSpec.of("refreshMetadata(uint256,uint256)", "range")
        assert CallSpec.for_mode("erc4906") == generic
        assert plan_erc4906(updates, 100) == plan(generic, updates, size=100)
        assert [
            args_of(p, generic.signature, ["uint256"] * 2) for p in plan_erc4906(updates, 100)
        ] == [
            (4, 6),
            (9, 9),
        ]

    def test_token_uri_is_set_token_uris_over_lists(self) -> None:
        updates = [waiting(t) for t in (1, 2, 3)]
        generic = CallSpec.of("setTokenURIs(uint256[],string[])", "ids_uris", "ipfs://{cid}")
        assert CallSpec.for_mode("token-uri") == generic
        assert plan_token_uri(updates, 2, "ipfs://{cid}") == plan(generic, updates, size=2)


def config(**collection: Any) -> dict[str, Any]:
    return {
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "contracts": [
            {"name": "collection", "network": "local", "address": CONTRACT, "abi": str(ABI)}
        ],
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
        "pusher": {
            "collections": [{"contract": "collection", **collection}],
            "signer": {"key_env": "K"},
        },
    }


def config_error(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw, {})
    return info.value


class TestSettings:
    """A call that cannot be built is refused at load, naming the key."""

    def test_call_loads_canonical(self) -> None:
        raw = config(mode="call", function="setTokenURI(uint256, string)", args="id_uri")
        (item,) = settings_from_mapping(raw, {}).pusher.collections
        assert item.call == ("setTokenURI(uint256,string)", "id_uri")

    @pytest.mark.parametrize(
        ("fields", "key", "message"),
        [
            (
                {"mode": "call", "function": "setURI(uint256,string)", "args": "range"},
                "function",
                r"setURI\(uint256,string\) does not take what args 'range' passes: "
                r"\(uint256,uint256\)",
            ),
            (
                {"mode": "call", "function": "setURI(uint256 id, string uri)", "args": "id_uri"},
                "function",
                "not an ABI function signature",
            ),
            ({"mode": "call", "function": "setURI", "args": "id_uri"}, "function", "signature"),
            ({"mode": "call", "args": "id"}, "function", "needs a function"),
            ({"mode": "call", "function": "f(uint256)"}, "args", "needs args"),
            ({"mode": "call", "function": "f(uint256)", "args": "tuple"}, "args", "range"),
            ({"function": "f(uint256)"}, "function", "only with mode call"),
            ({"mode": "none", "args": "id"}, "args", "only with mode call"),
            ({"mode": "setter"}, "mode", "call"),
            ({"uri_template": "ipfs://{id}"}, "uri_template", "placeholder {id}"),
            ({"uri_template": "ipfs://{cid!r}"}, "uri_template", "placeholder {cid}"),
            ({"uri_template": "ipfs://{cid:>9}"}, "uri_template", "placeholder {cid}"),
            ({"uri_template": "ipfs://{cid"}, "uri_template", "literal brace"),
            ({"uri_template": "https://x/{token_id}"}, "uri_template", "{cid} or {version}"),
        ],
    )
    def test_refused(self, fields: dict[str, Any], key: str, message: str) -> None:
        error = config_error(config(**fields))
        assert error.key == f"pusher.collections[0].{key}"
        assert re.search(message, str(error)), str(error)

    def test_version_alone_is_a_new_uri(self) -> None:
        raw = config(uri_template="https://x.test/{token_id}/{version}.json")
        assert (
            settings_from_mapping(raw, {})
            .pusher.collections[0]
            .uri_template.endswith("{version}.json")
        )

    def test_mode_none_needs_no_signer(self) -> None:
        raw = config(mode="none")
        del raw["pusher"]["signer"]
        pusher = settings_from_mapping(raw, {}).pusher
        assert pusher.announcing == []
        raw = config()
        del raw["pusher"]["signer"]
        assert config_error(raw).key == "pusher.signer"


class TestPushTargets:
    """Targets: mode none left out; a call's function must be in its contract's ABI."""

    def test_call_target_from_abi(self) -> None:
        raw = config(mode="call", function="setTokenURI(uint256,string)", args="id_uri")
        raw["pusher"]["collections"][0]["uri_template"] = "ipfs://{cid}/meta.json"
        (target,) = push_targets(settings_from_mapping(raw, {}))["local"]
        assert target.spec == CallSpec(
            "setTokenURI(uint256,string)", "id_uri", "ipfs://{cid}/meta.json"
        )
        assert target.spec.outbox_mode == "token-uri"

    def test_named_mode_target(self) -> None:
        (target,) = push_targets(settings_from_mapping(config(mode="token-uri"), {}))["local"]
        assert target.spec == CallSpec.for_mode("token-uri")

    def test_function_not_in_abi(self) -> None:
        raw = config(mode="call", function="setTokenURI(uint256,uint256)", args="range")
        with pytest.raises(ConfigError) as info:
            push_targets(settings_from_mapping(raw, {}))
        assert info.value.key == "pusher.collections[collection].function"
        assert "setTokenURI(uint256,uint256) is not a function of collection" in str(info.value)
        assert "setTokenURI(uint256,string)" in str(info.value)  # what it does have

    def test_unreadable_abi(self, tmp_path: Path) -> None:
        raw = config(mode="call", function="setURI(uint256,string)", args="id_uri")
        raw["contracts"][0]["abi"] = str(tmp_path / "missing.json")
        with pytest.raises(ConfigError) as info:
            push_targets(settings_from_mapping(raw, {}))
        assert info.value.key == "contracts[collection].abi"

    def test_artifact_with_abi_key(self, tmp_path: Path) -> None:
        artifact = tmp_path / "Stock.json"
        artifact.write_bytes(orjson.dumps({"abi": orjson.loads(ABI.read_bytes())}))
        raw = config(mode="call", function="refreshMetadata(uint256,uint256)", args="range")
        raw["contracts"][0]["abi"] = str(artifact)
        assert push_targets(settings_from_mapping(raw, {}))["local"][0].mode == "call"

    def test_mode_none_is_no_target(self) -> None:
        raw = config(mode="none")
        raw["contracts"].append({**raw["contracts"][0], "name": "other"})
        raw["pusher"]["collections"].append({"contract": "other", "mode": "erc4906"})
        targets = push_targets(settings_from_mapping(raw, {}))
        assert [t.name for t in targets["local"]] == ["other"]
        raw["pusher"]["collections"].pop()
        with pytest.raises(ConfigError, match="mode none announces nothing"):
            push_targets(settings_from_mapping(raw, {}))


def test_run_all_leaves_out_a_pusher_with_nothing_to_announce(tmp_path: Path) -> None:
    """`dnft run --all` starts no pusher (and reads no key) when every collection is none."""
    from dnft.cli.run import plan_parts  # the command line, as `dnft run --all` plans parts

    rules = tmp_path / "rules.json"  # JSON is YAML
    rules.write_bytes(orjson.dumps(collection_rules(FED, salt="s", levels={0: "egg"}, prompt="p")))
    raw = config(mode="none") | {"collections": [{"file": str(rules)}]}
    del raw["pusher"]["signer"]
    parts = plan_parts(settings_from_mapping(raw, {}), ["indexer", "oracle", "regenerator", "api"])
    assert "pusher" not in parts


class _Outbox:
    """The outbox calls one confirming pass makes (a fake: Postgres is the integration
    tests' business)."""

    def __init__(self, push: Push) -> None:
        self.open = [push]

    async def pushes_since(self, chain_id: int, seconds: float) -> int:
        return 0

    async def open_pushes(self, chain_id: int) -> list[Push]:
        return list(self.open)

    async def mark_mined(self, push_id: int, **mined: Any) -> None:
        self.open[0].state = "mined"

    async def confirm(self, push_id: int) -> Confirmed:
        self.open = []
        return Confirmed([datetime.now(UTC)])


class _Chain:
    def __init__(self, receipt: Receipt) -> None:
        self.receipt = receipt

    async def head(self) -> int:
        return 10

    async def nonce(self, address: str, tag: str) -> int:
        return 1

    async def receipts(self, hashes: list[str]) -> dict[str, Receipt]:
        return {self.receipt.tx_hash: self.receipt}

    async def block_hash(self, number: int) -> str:
        return self.receipt.block_hash


@pytest.mark.parametrize(
    ("logs", "events", "warned"),
    [((CONTRACT, "0x" + "cd" * 20), 1, False), (("0x" + "cd" * 20,), 0, True), ((), 0, True)],
)
async def test_a_mined_call_is_done_whatever_it_emits(
    logs: tuple[str, ...], events: int, warned: bool
) -> None:
    """A push is confirmed on its receipt (status 1, deep enough, canonical), so any
    contract's call is done once mined (an ERC-1155 URI event, or none at all); a call that
    made its contract emit nothing is confirmed with a warning."""
    now = datetime.now(UTC)
    fees = Fees(max_fee_per_gas=2, max_priority_fee_per_gas=1)
    tx = TxRecord("0x" + "11" * 32, 0, fees, b"raw", now, now)
    push = Push(
        7, 31337, CONTRACT, "token-uri", 1, 1, 1, b"", "sent", 0, 50_000,
        None, None, None, now, [tx],
    )  # fmt: skip
    receipt = Receipt(tx.hash, 5, "0x" + "22" * 32, 1, 40_000, 3, log_addresses=logs)
    outbox = _Outbox(push)
    pusher = ChainPusher(
        network=NetworkSettings(name="local", chain_id=31337, rpc_urls=["http://127.0.0.1:1"]),
        settings=PusherSettings(confirmations=2),
        targets=[],
        outbox=cast(Any, outbox),
        chain=cast(Any, _Chain(receipt)),
        signer=Signer(b"\x01" * 32),
    )
    with structlog.testing.capture_logs() as logged:
        await pusher.step()
    assert outbox.open == []  # confirmed
    (confirmed,) = [e for e in logged if e["event"] == "push confirmed"]
    assert confirmed["events"] == events
    assert any(e["event"].endswith("emitted no event") for e in logged) is warned
