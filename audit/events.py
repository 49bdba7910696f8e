"""What the audit compares, and how (pure): event references per source, reconciled with the
chain's by event id into missing, extra and duplicated, and a topic's events with its
retractions applied."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit.plain import Plain, plain
from indexer import part_of


@dataclass(frozen=True, slots=True)
class EventRef:
    """One event as a source holds it. ``tx_hash`` is None where the source does not store
    it (``regen_events``)."""

    event_id: str
    block_number: int
    log_index: int
    tx_hash: str | None = None
    contract: str | None = None
    token_id: str | None = None
    event: str | None = None  # the event's name, where the source has it (the chain)
    # The item of a batch event (``indexer.fanout``: one message per ERC-1155 id), from the
    # event id; None for a whole log.
    part: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return plain(self, leave_out=("contract", "token_id", "event", "part"))


@dataclass(frozen=True, slots=True)
class Duplicate(Plain):
    """One on-chain log (tx hash, log index; and item, for a batch's part) present under
    several event ids."""

    tx_hash: str
    log_index: int
    events: tuple[EventRef, ...]
    on_chain: str | None  # the member the chain has now, if any
    part: int | None = None


@dataclass(slots=True)
class SourceReport:
    """How one source compares with the chain. Lists are sorted by block, then event id."""

    source: str
    expected: int
    present: int
    missing: list[EventRef] = field(default_factory=list)
    extra: list[EventRef] = field(default_factory=list)
    duplicated: list[Duplicate] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.duplicated)

    def as_dict(self) -> dict[str, Any]:
        return {**plain(self), "clean": self.clean}


def _order(ref: EventRef) -> tuple[int, int, str]:
    return (ref.block_number, ref.log_index, ref.event_id)


def reconcile(
    source: str,
    expected: Mapping[str, EventRef],
    present: Mapping[str, EventRef],
    tx_hashes: Mapping[str, str] | None = None,
) -> SourceReport:
    """Compare a source's events (``present``) with the chain's (``expected``), by event id.

    Present events that share a tx hash, log index and part (the parts of one batch log are
    distinct events, ``indexer.fanout``) form a duplicate; ``tx_hashes``
    (event id -> tx hash) fills in the hash for events whose source does not carry it, and
    an event whose hash stays unknown cannot be grouped (it can still be extra). Members of
    a duplicate are not listed again as extra. Pure.
    """
    lookup = tx_hashes or {}
    groups: defaultdict[tuple[str, int, int | None], list[EventRef]] = defaultdict(list)
    for ref in present.values():
        tx = ref.tx_hash or lookup.get(ref.event_id) or _tx_of(expected.get(ref.event_id))
        if tx is not None:
            groups[(tx, ref.log_index, ref.part)].append(ref)
    duplicated = [
        Duplicate(
            tx,
            index,
            tuple(sorted(refs, key=_order)),
            next((r.event_id for r in refs if r.event_id in expected), None),
            part,
        )
        for (tx, index, part), refs in groups.items()
        if len(refs) > 1
    ]
    duplicated.sort(key=lambda d: _order(d.events[0]))
    in_duplicates = {e.event_id for d in duplicated for e in d.events}
    missing = [ref for eid, ref in expected.items() if eid not in present]
    extra = [
        ref for eid, ref in present.items() if eid not in expected and eid not in in_duplicates
    ]
    return SourceReport(
        source=source,
        expected=len(expected),
        present=len(present),
        missing=sorted(missing, key=_order),
        extra=sorted(extra, key=_order),
        duplicated=duplicated,
    )


def _tx_of(ref: EventRef | None) -> str | None:
    return None if ref is None else ref.tx_hash


@dataclass(slots=True)
class StreamState:
    """What a consumer of the chain-events topic ends with, and how it got there."""

    net: dict[str, EventRef] = field(default_factory=dict)
    events: int = 0
    retractions: int = 0
    # An event id delivered again while still live: at-least-once, harmless.
    repeats: int = 0
    # A retraction of an id not live at that point (its event was outside what was read).
    unmatched_retractions: int = 0
    # Every event id's tx hash, retracted ones included (regen_events does not store it).
    tx_hashes: dict[str, str] = field(default_factory=dict)


def net_events(messages: Iterable[Mapping[str, Any]]) -> StreamState:
    """Apply chain events and retractions in order (one partition's order is enough: an
    event and its retraction share a key). Pure."""
    state = StreamState()
    for m in messages:
        eid = str(m["event_id"])
        if m.get("removed"):
            state.retractions += 1
            if state.net.pop(eid, None) is None:
                state.unmatched_retractions += 1
            continue
        state.events += 1
        if eid in state.net:
            state.repeats += 1
        tx = m.get("tx_hash")
        ref = EventRef(
            event_id=eid,
            block_number=int(m["block_number"]),
            log_index=int(m["log_index"]),
            tx_hash=str(tx).lower() if tx else None,
            contract=m.get("contract"),
            token_id=m.get("token_id"),
            part=part_of(eid),
        )
        state.net[eid] = ref
        if ref.tx_hash is not None:
            state.tx_hashes[eid] = ref.tx_hash
    return state


def stored_by_planner(
    events: Mapping[str, EventRef], reads: Mapping[str, Collection[str]]
) -> dict[str, EventRef]:
    """The events the regenerator's planner stores (``regenerator.planner.Planner._store``):
    those of a bound contract (``reads``: contract -> the events its collections' rules read)
    that name a token, and those of no single token that a rule reads (collection-wide).
    Pure."""
    bound = {c.lower(): frozenset(names) for c, names in reads.items()}
    return {
        eid: ref
        for eid, ref in events.items()
        if (ref.contract or "").lower() in bound
        and (ref.token_id is not None or ref.event in bound[(ref.contract or "").lower()])
    }
