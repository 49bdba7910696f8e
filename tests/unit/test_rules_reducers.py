"""Richer rules at run time: every reducer, where: conditions (equals, one_of, CEL), computed
traits in CEL, stages from any trait, and CEL runtime errors giving the default."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dnft import metrics
from dnft.collection import TokenEvent, collection_from_mapping, derive_state
from dnft.collection.abi import events_of

# A contract not written for dnft: no key/value event named like TraitSet's.
ABI = [
    {
        "type": "event",
        "name": "Found",
        "inputs": [
            {"name": "item", "type": "uint256", "indexed": True},
            {"name": "kind", "type": "string"},
            {"name": "amount", "type": "uint256"},
            {"name": "finder", "type": "address"},
        ],
    },
    {
        "type": "event",
        "name": "Attr",
        "inputs": [
            {"name": "item", "type": "uint256"},
            {"name": "name", "type": "string"},
            {"name": "val", "type": "string"},
        ],
    },
    {"type": "event", "name": "Level", "inputs": [{"name": "", "type": "uint8"}]},
]
EVENTS = events_of(ABI)


def rules(*traits: dict[str, Any], stage_trait: str = "n") -> dict[str, Any]:
    return {
        "name": "game",
        "contract": "items",
        "salt": "s",
        "traits": [{"name": "n", "event": "Found", "reduce": "count"}, *traits],
        "stages": {
            "trait": stage_trait,
            "levels": [
                {"min": 0, "name": "egg"},
                {"min": 3, "name": "young"},
                {"min": 10, "name": "old"},
            ],
        },
        "prompt": "a {stage} item",
    }


def found(n: int, kind: str = "gold", amount: str = "1", finder: str = "0xaa") -> TokenEvent:
    args = {"item": "1", "kind": kind, "amount": amount, "finder": finder}
    return TokenEvent(f"1:0x{n:064x}:0", "Found", args, n, 0, block_timestamp=1000 + n)


def attr(n: int, name: str, val: str) -> TokenEvent:
    args = {"item": "1", "name": name, "val": val}
    return TokenEvent(f"1:0x{n:064x}:1", "Attr", args, n, 1, block_timestamp=1000 + n)


def traits(raw: dict[str, Any], events: list[TokenEvent], bound: bool = True) -> dict[str, str]:
    collection = collection_from_mapping(raw, events=EVENTS if bound else None)
    return derive_state(collection, 1, events, {}).traits


SEVERAL = [
    found(1, amount="5"),
    found(2, "iron", "300"),
    found(3, amount="7"),
    found(4, "iron", "5"),
]


class TestReducers:
    @pytest.mark.parametrize(
        ("reduce", "value", "empty"),
        [
            ("sum", "317", "0"),
            ("first", "5", "unknown"),
            ("last", "5", "unknown"),
            ("max", "300", "unknown"),
            ("min", "5", "unknown"),
            ("distinct", "3", "0"),
        ],
    )
    def test_reducers_with_arg(self, reduce: str, value: str, empty: str) -> None:
        raw = rules({"name": "x", "event": "Found", "reduce": reduce, "arg": "amount"})
        assert traits(raw, SEVERAL)["x"] == value
        assert traits(raw, [])["x"] == empty

    def test_first_and_last_follow_chain_order_not_arrival(self) -> None:
        raw = rules(
            {"name": "a", "event": "Found", "reduce": "first", "arg": "kind"},
            {"name": "b", "event": "Found", "reduce": "last", "arg": "kind"},
        )
        assert traits(raw, list(reversed(SEVERAL))) == traits(raw, SEVERAL)
        got = traits(raw, list(reversed(SEVERAL)))
        assert (got["a"], got["b"]) == ("gold", "iron")

    def test_max_min_skip_values_that_are_not_numbers(self) -> None:
        raw = rules(
            {"name": "hi", "event": "Found", "reduce": "max", "arg": "amount"},
            {"name": "lo", "event": "Found", "reduce": "min", "arg": "amount", "default": 0},
        )
        events = [found(1, amount="1e999999999"), found(2, amount="NaN"), found(3, amount="-4")]
        assert traits(raw, events) == {"n": "3", "hi": "-4", "lo": "-4"}
        assert traits(raw, [found(1, amount="abc")])["lo"] == "0"

    def test_distinct_counts_values_not_events(self) -> None:
        raw = rules({"name": "finders", "event": "Found", "reduce": "distinct", "arg": "finder"})
        events = [found(1, finder="0xaa"), found(2, finder="0xbb"), found(3, finder="0xaa")]
        assert traits(raw, events)["finders"] == "2"

    def test_trait_reads_named_key_and_value_arguments(self) -> None:
        raw = rules(
            {"name": "colour", "event": "Attr", "reduce": "trait", "key": "colour",
             "key_arg": "name", "value_arg": "val", "default": "grey"},
        )  # fmt: skip
        events = [attr(1, "colour", "red"), attr(2, "size", "big"), attr(3, "colour", "blue")]
        assert traits(raw, events)["colour"] == "blue"
        assert traits(raw, events[1:2])["colour"] == "grey"

    def test_held_since_is_the_latest_matching_timestamp(self) -> None:
        raw = rules({"name": "since", "event": "Found", "reduce": "held_since"})
        assert traits(raw, SEVERAL)["since"] == "1004"


class TestWhere:
    def test_equals_on_text(self) -> None:
        raw = rules({"name": "gold", "event": "Found", "reduce": "count",
                     "where": {"arg": "kind", "equals": "gold"}})  # fmt: skip
        assert traits(raw, SEVERAL)["gold"] == "2"

    def test_one_of_and_numeric_and_address_equality(self) -> None:
        raw = rules(
            {"name": "a", "event": "Found", "reduce": "count",
             "where": {"arg": "kind", "one_of": ["iron", "tin"]}},
            {"name": "b", "event": "Found", "reduce": "count",
             "where": {"arg": "amount", "equals": "005"}},  # an integer argument: a number
            {"name": "c", "event": "Found", "reduce": "count",
             "where": {"arg": "finder", "equals": "0xAA"}},  # an address: any case
        )  # fmt: skip
        got = traits(raw, SEVERAL)
        assert (got["a"], got["b"], got["c"]) == ("2", "2", "4")

    def test_cel_condition_sees_integer_arguments_as_numbers(self) -> None:
        raw = rules(
            {"name": "big", "event": "Found", "reduce": "sum", "arg": "amount",
             "where": "args.amount > 6 && args.kind != 'iron'"},
        )  # fmt: skip
        assert traits(raw, SEVERAL)["big"] == "7"

    def test_cel_condition_on_uint256_beyond_64_bits(self) -> None:
        raw = rules({"name": "whale", "event": "Found", "reduce": "count",
                     "where": "args.amount > 1000"})  # fmt: skip
        events = [found(1, amount="1000000000000000000000"), found(2, amount="999")]
        assert traits(raw, events)["whale"] == "1"

    def test_cel_runtime_error_means_no_match_and_is_counted(self) -> None:
        raw = rules({"name": "odd", "event": "Found", "reduce": "count",
                     "where": "args.amount / (args.amount - 5) > 0"})  # fmt: skip
        counter = metrics.rules_eval_errors_total.labels("game", "odd", "where")
        before = counter._value.get()
        assert traits(raw, [found(1, amount="5"), found(2, amount="9")])["odd"] == "1"
        assert counter._value.get() == before + 1

    @pytest.mark.parametrize(
        ("where", "count"),
        [
            ("size(args) == 4", "4"),  # reads args as a whole: every argument crosses
            ('args["ki" + "nd"] == "gold"', "2"),  # a computed key: every argument crosses
            ('has(args.kind) && args["amount"] < 10', "3"),
            ('args["k\\x69nd"] == "gold"', "2"),  # an escape: the key only CEL spells out
            ("args.kind == 'gold' && \"args['x']\" != ''", "2"),  # a lookalike in a string
            ('args["k\\x69nd"] == "gold" // args["amount"]', "2"),  # both: neither hides the other
        ],
    )
    def test_cel_condition_sees_every_argument_it_reads(self, where: str, count: str) -> None:
        raw = rules({"name": "c", "event": "Found", "reduce": "count", "where": where})
        assert traits(raw, SEVERAL)["c"] == count

    def test_a_yaml_int_compares_as_a_number_even_unbound(self) -> None:
        raw = rules({"name": "c", "event": "Found", "reduce": "count",
                     "where": {"arg": "amount", "equals": 5}})  # fmt: skip
        assert traits(raw, [*SEVERAL, found(5, amount="5.0")], bound=False)["c"] == "3"

    def test_where_filters_before_reducing(self) -> None:
        raw = rules({"name": "last_iron", "event": "Found", "reduce": "last", "arg": "amount",
                     "where": {"arg": "kind", "equals": "iron"}})  # fmt: skip
        assert traits(raw, [*SEVERAL, found(9, amount="1")])["last_iron"] == "5"


POWER = {"name": "power", "expr": 'traits.n * 2 + (traits.colour == "red" ? 1 : 0)'}
COLOUR = {"name": "colour", "event": "Attr", "reduce": "trait", "key": "colour",
          "key_arg": "name", "value_arg": "val", "default": "grey"}  # fmt: skip


class TestComputed:
    def test_expression_over_event_traits(self) -> None:
        raw = rules(COLOUR, POWER)
        assert traits(raw, [*SEVERAL, attr(5, "colour", "red")])["power"] == "9"
        assert traits(raw, SEVERAL)["power"] == "8"

    def test_computed_traits_read_those_above_them(self) -> None:
        raw = rules(
            COLOUR, POWER,
            {"name": "rank", "expr": 'traits.power >= 9 ? "hero" : "novice"'},
            {"name": "strong", "expr": "traits.power > 3"},
        )  # fmt: skip
        got = traits(raw, [*SEVERAL, attr(5, "colour", "red")])
        assert (got["rank"], got["strong"]) == ("hero", "true")

    def test_any_trait_drives_stages(self) -> None:
        raw = rules(COLOUR, POWER, stage_trait="power")
        collection = collection_from_mapping(raw, events=EVENTS)
        assert derive_state(collection, 1, SEVERAL[:1], {}).stage == "egg"  # power 2
        assert derive_state(collection, 1, SEVERAL[:2], {}).stage == "young"  # power 4
        many = [found(i) for i in range(1, 6)]
        assert derive_state(collection, 1, many, {}).stage == "old"  # power 10

    def test_feed_and_decimal_values(self) -> None:
        raw = rules({"name": "price", "feed": "eth-usd"},
                    {"name": "half", "expr": "traits.price / 2.0"})  # fmt: skip
        collection = collection_from_mapping(raw, events=EVENTS)
        state = derive_state(collection, 1, [], {"eth-usd": Decimal("2500.5")})
        assert state.traits["half"] == "1250.25"

    @pytest.mark.parametrize(
        "expr",
        [
            "traits.n / 0",  # division by zero
            "traits.n + 'x'",  # no such overload
            "9223372036854775807 + traits.n",  # int64 overflow
            'traits["n" + "x"]',  # no such trait: a computed key passes the load check
            "[traits.n]",  # not a scalar
            "1.0 / 0.0",  # not finite
        ],
    )
    def test_runtime_errors_give_the_default_and_are_counted(self, expr: str) -> None:
        raw = rules({"name": "bad", "expr": expr, "default": 42})
        counter = metrics.rules_eval_errors_total.labels("game", "bad", "expr")
        before = counter._value.get()
        assert traits(raw, SEVERAL)["bad"] == "42"
        assert counter._value.get() == before + 1

    def test_without_a_default_an_error_reads_unknown_and_null_downstream(self) -> None:
        raw = rules({"name": "bad", "expr": "traits.n / 0"},
                    {"name": "after", "expr": "traits.bad == null"})  # fmt: skip
        got = traits(raw, SEVERAL)
        assert (got["bad"], got["after"]) == ("unknown", "true")

    def test_unbound_rules_see_integers_as_text(self) -> None:
        """Without an ABI (rules checked alone) arguments stay as the indexer sent them."""
        raw = rules({"name": "c", "event": "Found", "reduce": "count",
                     "where": "int(args.amount) > 6"})  # fmt: skip
        assert traits(raw, SEVERAL, bound=False)["c"] == "2"
