"""The audit's pure parts: reconciling a source with the chain, and applying a topic's stream."""

from __future__ import annotations

from typing import Any

from audit import EventRef, net_events, reconcile, stored_by_planner

CONTRACT = "0x" + "ab" * 20


def h(n: int) -> str:
    return f"0x{n:064x}"


def ref(
    block: int, index: int, *, block_hash: int | None = None, tx: int | None = None
) -> EventRef:
    return EventRef(
        event_id=f"1:{h(block if block_hash is None else block_hash)}:{index}",
        block_number=block,
        log_index=index,
        tx_hash=None if tx is None else h(tx),
        contract=CONTRACT,
        token_id="7",
    )


def by_id(*refs: EventRef) -> dict[str, EventRef]:
    return {r.event_id: r for r in refs}


def message(r: EventRef, *, removed: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": r.event_id,
        "block_number": r.block_number,
        "contract": r.contract,
        "token_id": r.token_id,
        "removed": removed,
    }
    if not removed:
        body.update(log_index=r.log_index, tx_hash=r.tx_hash)
    return body


class TestReconcile:
    """Missing, extra and duplicated are told apart, by event id and by (tx hash, log index)."""

    def test_identical_sources_are_clean(self) -> None:
        chain = by_id(ref(1, 0, tx=1), ref(2, 3, tx=2))
        report = reconcile("kafka", chain, dict(chain))
        assert report.clean
        assert (report.expected, report.present) == (2, 2)

    def test_missing_and_extra(self) -> None:
        a, b, c = ref(1, 0, tx=1), ref(2, 0, tx=2), ref(3, 0, tx=3)
        orphan = ref(3, 1, block_hash=999, tx=4)  # a block hash not on chain, another log
        report = reconcile("kafka", by_id(a, b, c), by_id(a, c, orphan))
        assert report.missing == [b]
        assert report.extra == [orphan]
        assert report.duplicated == []
        assert not report.clean

    def test_same_log_under_two_block_hashes_is_duplicated_not_extra(self) -> None:
        canonical = ref(5, 2, tx=50)
        orphaned = ref(5, 2, block_hash=555, tx=50)  # same tx and log index, other block hash
        report = reconcile("kafka", by_id(canonical), by_id(canonical, orphaned))
        assert report.missing == []
        assert report.extra == [], "a duplicate's members are not listed again as extra"
        (dup,) = report.duplicated
        assert (dup.tx_hash, dup.log_index) == (h(50), 2)
        assert {e.event_id for e in dup.events} == {canonical.event_id, orphaned.event_id}
        assert dup.on_chain == canonical.event_id

    def test_tx_hash_lookup_for_sources_without_it(self) -> None:
        """regen_events has no tx hash: the lookup (from Kafka) groups its rows."""
        canonical = ref(5, 2, tx=50)
        stored_canonical = ref(5, 2)
        stored_orphan = ref(5, 2, block_hash=555)
        present = by_id(stored_canonical, stored_orphan)
        without = reconcile("postgres", by_id(canonical), present)
        assert without.duplicated == []
        assert without.extra == [stored_orphan]
        report = reconcile("postgres", by_id(canonical), present, {stored_orphan.event_id: h(50)})
        assert report.extra == []
        assert len(report.duplicated) == 1

    def test_same_log_index_in_different_transactions_is_not_a_duplicate(self) -> None:
        a, b = ref(5, 0, tx=1), ref(6, 0, tx=2)
        assert reconcile("kafka", by_id(a, b), by_id(a, b)).clean


class TestNetEvents:
    """Retractions remove what they name; repeats without a retraction are only counted."""

    def test_retraction_removes_and_repeat_counts(self) -> None:
        a, b = ref(1, 0, tx=1), ref(2, 0, tx=2)
        state = net_events([message(a), message(b), message(a), message(b, removed=True)])
        assert set(state.net) == {a.event_id}
        assert (state.events, state.retractions, state.repeats) == (3, 1, 1)
        assert state.tx_hashes == {a.event_id: h(1), b.event_id: h(2)}, "retracted ones too"

    def test_republish_after_retraction_is_not_a_repeat(self) -> None:
        a = ref(1, 0, tx=1)
        state = net_events([message(a), message(a, removed=True), message(a)])
        assert set(state.net) == {a.event_id}
        assert state.repeats == 0

    def test_unmatched_retraction(self) -> None:
        state = net_events([message(ref(1, 0, tx=1), removed=True)])
        assert state.net == {}
        assert state.unmatched_retractions == 1


class TestStoredByPlanner:
    """The planner stores events of bound contracts that name a token, and those of no single
    token that a rule of the contract's collections reads (collection-wide)."""

    def test_filter(self) -> None:
        kept = ref(1, 0, tx=1)
        no_token = EventRef("1:" + h(2) + ":0", 2, 0, h(2), CONTRACT, None, "BatchMetadataUpdate")
        other = EventRef("1:" + h(3) + ":0", 3, 0, h(3), "0x" + "cd" * 20, "1")
        out = stored_by_planner(by_id(kept, no_token, other), {CONTRACT.upper(): {"Fed"}})
        assert out == by_id(kept)

    def test_collection_wide_event_a_rule_reads(self) -> None:
        season = EventRef("1:" + h(4) + ":0", 4, 0, h(4), CONTRACT, None, "SeasonChanged")
        unread = EventRef("1:" + h(5) + ":0", 5, 0, h(5), CONTRACT, None, "Paused")
        out = stored_by_planner(by_id(season, unread), {CONTRACT: {"SeasonChanged"}})
        assert out == by_id(season)


class TestBatchParts:
    """A batch log published once per token id: its parts share tx and log index, yet each
    is its own event, counted once; two ids for the same part are still a duplicate."""

    @staticmethod
    def part(n: int, *, block_hash: int = 5) -> dict[str, Any]:
        return {
            "event_id": f"1:{h(block_hash)}:3:{n}",
            "block_number": 5,
            "log_index": 3,
            "tx_hash": h(77),
            "contract": CONTRACT,
            "token_id": str(10 + n),
            "removed": False,
        }

    def test_parts_are_distinct_events_not_duplicates(self) -> None:
        stream = net_events([self.part(0), self.part(1), self.part(2)])
        assert [r.part for r in stream.net.values()] == [0, 1, 2]
        report = reconcile("kafka", stream.net, stream.net)
        assert report.clean
        assert report.present == 3

    def test_the_same_part_under_two_block_hashes_is_a_duplicate(self) -> None:
        stream = net_events([self.part(0), self.part(1), self.part(0, block_hash=6)])
        expected = {k: v for k, v in stream.net.items() if h(5) in k}
        report = reconcile("kafka", expected, stream.net)
        ((duplicate,),) = [report.duplicated]
        assert (duplicate.part, len(duplicate.events)) == (0, 2)
