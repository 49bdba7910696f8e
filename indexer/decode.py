"""Fast ABI event decoding for raw ``eth_getLogs`` entries.

Static values (address, uintN, intN, bool, bytesN) are decoded by slicing the hex strings
the node sent, with no bytes conversion (the word decoders of ``indexer.abi``): that is the
hot path, tens of times faster than web3.py's ``process_log``. Data holding dynamic values
(string, bytes, arrays, tuples) falls back to eth_abi for the data part only.

Output conventions (the contract downstream code relies on):

* addresses, in args and ``DecodedEvent.address``: lowercase ``0x`` hex, never checksummed
  (one canonical form for keys and comparisons; checksumming costs a keccak per address);
* ``bytes``/``bytesN``/``function``: lowercase ``0x`` hex strings;
* ``string``: ``str``, invalid UTF-8 replaced by U+FFFD;
* with ``limits`` (the indexer always passes its network's), long strings, bytes and arrays
  are cut by ``indexer.bounds`` and ``DecodedEvent.truncated`` says what was cut; without,
  nothing is cut. A batch's fanned-out arrays (``batches``: ERC-1155 ``ids``/``values``) are
  cut only at ``max_batch_parts``, not by the event's array budget (``indexer.fanout``);
* ints and bools as Python ``int``/``bool``; arrays as lists; tuples as dicts keyed by
  component name; ``fixed``/``ufixed`` as ``decimal.Decimal``;
* indexed dynamic values (string, bytes, arrays, tuples) are only a hash in the log: the
  topic itself, ``0x`` hex;
* unnamed inputs are keyed ``_<position>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.decoding import ContextFramesBytesIO
from eth_abi.registry import registry as _abi_registry
from eth_utils.crypto import keccak

from dnft.errors import DecodeError
from dnft.rpc import RawLog
from indexer.abi import (
    WordDecoder,
    arg_name,
    canonical,
    converter,
    hash_word,
    is_dynamic_or_composite,
    static_word_decoder,
)
from indexer.bounds import (
    EVENT_VALUE_BYTES,
    Bounder,
    Budget,
    ValueLimits,
    bounder,
    parts_bounder,
)

__all__ = ["DecodedEvent", "EventDecoder"]

# The least string and bytes content each part of a large batch keeps (see _value_bytes).
BATCH_PART_VALUE_BYTES: Final = 256

_TOPIC: Final = re.compile(r"0x[0-9a-fA-F]{64}")
# Hex digits after "0x"; whole bytes are checked by length. (A "(?:[0-9a-f]{2})*" pattern
# took 5 s on a 10 MB log: one group repetition per byte.)
_HEX_DIGITS: Final = re.compile(r"[0-9a-fA-F]*")
# Reads eth_abi may make, as a multiple of the data size. Honest encodings read each byte
# at most about twice (offsets are read once to validate, once to follow); aliased
# pointers that make a few KB decode into gigabytes blow through this budget instead.
_READ_BUDGET_FACTOR: Final = 4
_READ_BUDGET_SLACK: Final = 4096


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """One decoded log. ``args`` follows the module's output conventions; do not mutate it."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    block_timestamp: int | None = None  # from the log, where the node includes it
    # Values cut to the network's limits: arg path -> {sha256, bytes | items} (indexer.bounds).
    truncated: dict[str, dict[str, Any]] | None = None
    # The item of a batch event this is (indexer.fanout); None: the log's event itself.
    part: int | None = None


def _optional_int(value: object) -> int | None:
    return int(value, 16) if isinstance(value, str) else None


class _BudgetStream(ContextFramesBytesIO):
    """eth_abi's stream, refusing to read past the data's end or more than a budget.

    Catches claimed lengths beyond the data before they allocate, and aliased pointers that
    would decode the same bytes over and over.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)  # type: ignore[no-untyped-call]  # eth_abi: untyped init
        self._size = len(data)
        self._left = _READ_BUDGET_FACTOR * len(data) + _READ_BUDGET_SLACK

    def read(self, size: int | None = -1, /) -> bytes:
        position = self.tell()
        if size is None or size < 0:
            size = self._size - position
        if size > self._size - position:
            raise DecodeError(
                f"data ends early: {size} bytes needed at byte {position} of {self._size} "
                "(short data, or a length/offset beyond it)"
            )
        self._left -= size
        if self._left < 0:
            raise DecodeError("data reuses the same bytes too often (aliased pointers)")
        data: bytes = super().read(size)
        return data


@dataclass(frozen=True, slots=True)
class _EventSpec:
    name: str
    signature: str
    n_topics: int
    # (arg name, topic index, decoder of the topic's 64 hex chars)
    topic_fields: tuple[tuple[str, int, WordDecoder], ...]
    # Fast path: (arg name, first hex char in ``data``, decoder) when all data is static.
    data_fields: tuple[tuple[str, int, WordDecoder], ...] | None
    data_min_len: int  # len(data) the fast path needs, "0x" included
    # Fallback: eth_abi's tuple decoder plus a converter per value.
    data_names: tuple[str, ...]
    data_decoder: Callable[[_BudgetStream], Any] | None
    data_converters: tuple[Callable[[Any], Any], ...]
    # Per data value, what cuts it to the limits (None: nothing to cut); empty: no limits.
    data_bounders: tuple[Bounder | None, ...]
    limits: ValueLimits | None
    # Positions in ``data_names`` of the arrays a batch fans out (``batches``).
    batch_positions: tuple[int, ...] = ()


def _build_spec(
    event: dict[str, Any], limits: ValueLimits | None, batch_args: Collection[str] = ()
) -> tuple[str, _EventSpec]:
    name = str(event["name"])
    inputs: list[dict[str, Any]] = list(event.get("inputs", []))
    signature = f"{name}({','.join(canonical(p) for p in inputs)})"
    topic0 = "0x" + keccak(text=signature).hex()
    names = [arg_name(p, i) for i, p in enumerate(inputs)]
    if len(set(names)) != len(names):
        raise DecodeError(f"event {signature}: duplicate input names {names}")

    topic_fields: list[tuple[str, int, WordDecoder]] = []
    data_params: list[tuple[str, dict[str, Any]]] = []
    for arg, param in zip(names, inputs, strict=True):
        if not param.get("indexed"):
            data_params.append((arg, param))
            continue
        index = len(topic_fields) + 1
        if is_dynamic_or_composite(param):
            topic_fields.append((arg, index, hash_word))
            continue
        abi_type = canonical(param)
        word = static_word_decoder(abi_type)
        if word is None:
            word = _eth_abi_word(abi_type)
        topic_fields.append((arg, index, word))

    fast: list[tuple[str, int, WordDecoder]] | None = []
    for position, (arg, param) in enumerate(data_params):
        word = static_word_decoder(canonical(param))
        if word is None or fast is None:
            fast = None
            break
        fast.append((arg, 2 + 64 * position, word))

    types = [canonical(p, for_decoding=True) for _, p in data_params]
    return topic0, _EventSpec(
        name=name,
        signature=signature,
        n_topics=1 + len(topic_fields),
        topic_fields=tuple(topic_fields),
        data_fields=tuple(fast) if fast is not None else None,
        data_min_len=2 + 64 * len(data_params),
        data_names=tuple(arg for arg, _ in data_params),
        data_decoder=None if fast is not None else _abi_registry.get_tuple_decoder(*types),
        data_converters=tuple(converter(p) for _, p in data_params),
        data_bounders=tuple(
            parts_bounder(p) if arg in batch_args else bounder(p) for arg, p in data_params
        )
        if limits is not None
        else (),
        limits=limits,
        batch_positions=tuple(i for i, (arg, _) in enumerate(data_params) if arg in batch_args),
    )


def _eth_abi_word(abi_type: str) -> WordDecoder:
    """A word decoder through eth_abi, for rare static types (fixed/ufixed)."""
    decoder = _abi_registry.get_tuple_decoder(abi_type)

    def word(value: str) -> Any:
        try:
            return decoder(_BudgetStream(bytes.fromhex(value)))[0]
        except DecodeError:
            raise
        except Exception as exc:  # eth_abi raises assorted types on malformed input
            raise ValueError(f"{abi_type}: {exc}") from None

    return word


class EventDecoder:
    """Decodes logs of the events of one ABI. Immutable after construction; thread-safe."""

    def __init__(self, specs: Iterable[tuple[str, _EventSpec]]) -> None:
        by_topic: dict[str, tuple[_EventSpec, ...]] = {}
        for topic0, spec in specs:
            # The same signature may exist with different indexed inputs (ERC-20 vs ERC-721
            # Transfer): they differ by topic count.
            by_topic[topic0] = (*by_topic.get(topic0, ()), spec)
        self._by_topic = by_topic

    @classmethod
    def from_abi(
        cls,
        abi: Iterable[dict[str, Any]],
        include: Collection[str] | None = None,
        *,
        limits: ValueLimits | None = None,
        batches: Mapping[str, Collection[str]] | None = None,
    ) -> EventDecoder:
        """Build a decoder for the ABI's events (all, or those named in ``include``).

        With ``limits``, dynamic values beyond them are cut (``indexer.bounds``).
        ``batches``: event name -> the arguments its parts fan out (the ids and amounts of a
        batch, ``indexer.fanout``), each cut at ``limits.max_batch_parts`` only.

        ``include`` holds event names (every overload) or full signatures such as
        ``"Transfer(address,address,uint256)"``. Anonymous events have no topic0 to
        dispatch on and are skipped. Raises ``DecodeError`` for a name in ``include`` that is
        not an event of the ABI (or is anonymous), and for a malformed event entry.
        """
        events = [e for e in abi if isinstance(e, dict) and e.get("type") == "event"]
        built: list[tuple[str, _EventSpec, bool]] = []
        for event in events:
            try:
                topic0, spec = _build_spec(
                    event, limits, (batches or {}).get(str(event.get("name")), ())
                )
            except DecodeError:
                raise
            except Exception as exc:  # KeyError/TypeError/eth_abi parse errors on a bad ABI
                raise DecodeError(f"invalid event in ABI {event.get('name')!r}: {exc}") from exc
            built.append((topic0, spec, bool(event.get("anonymous"))))
        if include is not None:
            known = {s.name for _, s, anon in built if not anon} | {
                s.signature for _, s, anon in built if not anon
            }
            unknown = sorted(set(include) - known)
            if unknown:
                available = ", ".join(sorted({s.signature for _, s, _ in built})) or "none"
                raise DecodeError(
                    f"event(s) {', '.join(unknown)} not in the ABI (or anonymous); "
                    f"its events: {available}"
                )
            wanted = set(include)
            built = [b for b in built if b[1].name in wanted or b[1].signature in wanted]
        return cls((t, s) for t, s, anon in built if not anon)

    @property
    def topic0s(self) -> list[str]:
        """The topic0 of every event decoded, for an ``eth_getLogs`` topic filter."""
        return list(self._by_topic)

    @property
    def signatures(self) -> list[str]:
        return [s.signature for specs in self._by_topic.values() for s in specs]

    def decode(self, log: RawLog) -> DecodedEvent | None:
        """Decode ``log``; None when its topic0 is not one of this decoder's events.

        Raises ``DecodeError`` (with the event name and the reason) for a log of one of our
        events that does not match its ABI: wrong topic count, short or non-hex data,
        invalid padding, lengths or offsets past the data, a pending log's missing fields;
        and for any log whose ``topics`` is not a list.
        Pure CPU; never blocks.
        """
        topics = log.get("topics")
        if not topics:
            return None
        if type(topics) is not list:  # a broken node: a string would "index" into characters
            raise DecodeError(f"log topics is a {type(topics).__name__}, not a list")
        topic0 = topics[0]
        if not isinstance(topic0, str):
            return None
        specs = self._by_topic.get(topic0)
        if specs is None:
            specs = self._by_topic.get(topic0.lower())
            if specs is None:
                return None
        spec = specs[0]
        if len(specs) > 1:
            spec = next((s for s in specs if s.n_topics == len(topics)), spec)
        try:
            if len(topics) != spec.n_topics:
                raise ValueError(f"expected {spec.n_topics} topics, got {len(topics)}")
            args: dict[str, Any] = {}
            for arg, index, word in spec.topic_fields:
                topic = topics[index]
                if not _TOPIC.fullmatch(topic):
                    raise ValueError(f"topic {index} is not 32 bytes of 0x hex")
                args[arg] = word(topic[2:])
            data = log["data"]
            if not (data[:2] == "0x" and len(data) % 2 == 0 and _HEX_DIGITS.fullmatch(data, 2)):
                raise ValueError("data is not 0x hex of whole bytes")
            fields = spec.data_fields
            truncated = None
            if fields is not None:
                if len(data) < spec.data_min_len:
                    raise ValueError(
                        f"data has {(len(data) - 2) // 2} bytes, "
                        f"needs {(spec.data_min_len - 2) // 2}"
                    )
                for arg, start, word in fields:
                    args[arg] = word(data[start : start + 64])
            else:
                truncated = self._decode_dynamic(spec, data, args)
            block_hash, tx_hash = log["blockHash"], log["transactionHash"]
            if type(block_hash) is not str or type(tx_hash) is not str:
                raise ValueError("log has no blockHash/transactionHash (pending log?)")
            return DecodedEvent(
                spec.name,
                args,
                log["address"].lower(),
                int(log["blockNumber"], 16),  # type: ignore[arg-type]  # None -> TypeError
                block_hash,
                tx_hash,
                int(log["logIndex"], 16),  # type: ignore[arg-type]
                _optional_int(log.get("blockTimestamp")),
                truncated,
            )
        except DecodeError as exc:
            raise DecodeError(f"{spec.signature}: {exc}") from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DecodeError(f"{spec.signature}: {reason}") from None

    @staticmethod
    def _decode_dynamic(
        spec: _EventSpec, data: str, args: dict[str, Any]
    ) -> dict[str, dict[str, Any]] | None:
        """Decode the data into ``args``; returns the cuts made (None when none)."""
        assert spec.data_decoder is not None
        try:
            values = spec.data_decoder(_BudgetStream(bytes.fromhex(data[2:])))
        except DecodeError:
            raise
        except Exception as exc:  # eth_abi raises assorted types on malformed input
            raise ValueError(f"data does not match the ABI: {type(exc).__name__}: {exc}") from None
        cuts = None
        if spec.limits is not None:
            budget = _budget(spec, values)
            values = tuple(
                value if bound is None else bound(value, arg, budget)
                for arg, bound, value in zip(
                    spec.data_names, spec.data_bounders, values, strict=True
                )
            )
            cuts = budget.cuts or None
        for arg, convert, value in zip(spec.data_names, spec.data_converters, values, strict=True):
            args[arg] = convert(value)
        return cuts


def _budget(spec: _EventSpec, values: tuple[Any, ...]) -> Budget:
    """What one event may keep. Every part of a batch repeats the batch's other arguments,
    so a batch of N parts shares one event's budgets among them: 64 KiB of string and bytes
    content (at least BATCH_PART_VALUE_BYTES a part) and max_array_items items (at least one
    a part). One hostile log with a 64 KiB string or a 1,024-item array and 10,000 ids must
    not become hundreds of MB of messages."""
    assert spec.limits is not None
    budget = Budget(spec.limits)
    if not spec.batch_positions:
        return budget
    parts = max(
        1,
        max(
            (len(values[i]) for i in spec.batch_positions if isinstance(values[i], (list, tuple))),
            default=1,
        ),
    )
    budget.value_bytes = max(BATCH_PART_VALUE_BYTES, EVENT_VALUE_BYTES // parts)
    budget.items = max(1, spec.limits.max_array_items // parts)
    return budget
