"""The transaction audit's pure part: the chain's announcing transactions against the outbox."""

from __future__ import annotations

from eth_abi.abi import encode

from audit import (
    BATCH_METADATA_UPDATE,
    METADATA_UPDATE,
    URI,
    Announcement,
    announcement_of,
    classify_transactions,
)
from dnft.rpc import RawLog

CONTRACT = "0x" + "ab" * 20
PUSHER = "0x" + "01" * 20
OTHER = "0x" + "02" * 20


def h(n: int) -> str:
    return f"0x{n:064x}"


def ann(tx: int, block: int, index: int = 0) -> Announcement:
    return Announcement(h(tx), block, index, CONTRACT)


class TestAnnouncementOf:
    """A raw log's hex fields become ints and lowercase hashes."""

    def test_decode(self) -> None:
        log: RawLog = {
            "address": "0x" + "AB" * 20,
            "topics": [METADATA_UPDATE],
            "data": "0x" + "00" * 31 + "07",
            "blockNumber": "0x1f",
            "blockHash": h(9),
            "transactionHash": "0x" + "CD" * 32,
            "transactionIndex": "0x0",
            "logIndex": "0x2",
        }
        assert announcement_of(log) == Announcement("0x" + "cd" * 32, 31, 2, CONTRACT, 7, 7)

    def test_each_announcement_says_the_ids_it_covers(self) -> None:
        """ERC-4906 in the data; ERC-1155's URI(string value, uint256 indexed id) in a topic
        (what a mode: call push of setURI(uint256,string) mines)."""
        base: RawLog = {
            "address": CONTRACT,
            "topics": [],
            "data": "0x",
            "blockNumber": "0x1",
            "blockHash": h(9),
            "transactionHash": h(1),
            "transactionIndex": "0x0",
            "logIndex": "0x0",
        }
        batch = {**base, "topics": [BATCH_METADATA_UPDATE], "data": "0x" + encode(
            ["uint256", "uint256"], [3, 9]).hex()}  # fmt: skip
        uri = {
            **base,
            "topics": [URI, h(42)],
            "data": "0x" + encode(["string"], ["ipfs://x"]).hex(),
        }
        odd = {**base, "topics": [METADATA_UPDATE], "data": "0x"}  # malformed: no id
        covered = [announcement_of(log) for log in (batch, uri, odd)]  # type: ignore[arg-type]
        assert [(a.first_id, a.last_id) for a in covered] == [(3, 9), (42, 42), (None, None)]
        assert covered[0].covers(9, 12)
        assert not covered[0].covers(10, 12)
        assert covered[1].covers(42, 42)
        assert not covered[2].covers(0, 2**256)


class TestClassifyTransactions:
    """Unrecorded, duplicated and missing are told apart; other senders are ignored."""

    def test_clean(self) -> None:
        # Push 1: one transaction, three logs (setTokenURIs). Push 2: one log. An admin's
        # setBaseURI announcement (another sender) is none of the pusher's business.
        announcements = [ann(1, 5, 0), ann(1, 5, 1), ann(1, 5, 2), ann(2, 6), ann(3, 7)]
        audit = classify_transactions(
            announcements,
            {h(1): PUSHER, h(2): PUSHER.upper().replace("0X", "0x"), h(3): OTHER},
            [PUSHER],
            {h(1): 1, h(2): 2, h(99): 3},  # push 3: a replacement that was never mined
            {1: h(1), 2: h(2)},
        )
        assert audit.clean
        assert audit.as_dict() == {
            "announcements": 5,
            "transactions": 2,
            "pushes_confirmed": 2,
            "duplicated": [],
            "unrecorded": [],
            "missing": [],
            "clean": True,
        }

    def test_unrecorded_double_send(self) -> None:
        audit = classify_transactions(
            [ann(1, 5), ann(2, 6)],
            {h(1): PUSHER, h(2): PUSHER},
            [PUSHER],
            {h(1): 1},
            {1: h(1)},
        )
        assert not audit.clean
        assert audit.unrecorded == [h(2)]
        assert audit.duplicated == []
        assert audit.missing == []
        assert audit.transactions == 2

    def test_push_mined_twice(self) -> None:
        audit = classify_transactions(
            [ann(7, 9), ann(4, 5)],
            {h(4): PUSHER, h(7): PUSHER},
            [PUSHER],
            {h(4): 1, h(7): 1},
            {1: h(4)},
        )
        assert not audit.clean
        assert [d.as_dict() for d in audit.duplicated] == [
            {"push_id": 1, "hashes": [h(4), h(7)]}
        ], "hashes in block order"
        assert audit.unrecorded == []
        assert audit.missing == []

    def test_confirmed_but_not_on_chain(self) -> None:
        audit = classify_transactions(
            [ann(1, 5)],
            {h(1): PUSHER},
            [PUSHER],
            {h(1): 1, h(2): 2},
            {1: h(1), 2: h(2).upper().replace("0X", "0x")},
        )
        assert not audit.clean
        assert [m.as_dict() for m in audit.missing] == [{"push_id": 2, "hash": h(2)}]
        assert audit.pushes_confirmed == 2

    def test_unknown_sender_is_not_the_pushers(self) -> None:
        """A transaction the node no longer knows has no sender: not classified."""
        audit = classify_transactions([ann(1, 5)], {}, [PUSHER], {}, {})
        assert audit.clean
        assert audit.transactions == 0
        assert audit.announcements == 1

    def test_a_mined_push_must_announce_one_of_its_tokens(self) -> None:
        """With the pushes' token ranges known, a mined transaction whose announcements cover
        none of its tokens is missing too; a URI(string,uint256) of one of them counts."""
        setting_uri = Announcement(h(1), 5, 0, CONTRACT, 42, 42)  # setURI(42, ...) mined
        elsewhere = Announcement(h(2), 6, 0, CONTRACT, 7, 7)  # announced token 7, not 8..9
        audit = classify_transactions(
            [setting_uri, elsewhere],
            {h(1): PUSHER, h(2): PUSHER},
            [PUSHER],
            {h(1): 1, h(2): 2},
            {1: h(1), 2: h(2)},
            {1: (42, 42), 2: (8, 9)},
        )
        assert [m.as_dict() for m in audit.missing] == [{"push_id": 2, "hash": h(2)}]
