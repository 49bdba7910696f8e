"""The transaction audit's pure part: the chain's announcing transactions against the outbox."""

from __future__ import annotations

from audit import METADATA_UPDATE, Announcement, announcement_of, classify_transactions
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
        assert announcement_of(log) == Announcement("0x" + "cd" * 32, 31, 2, CONTRACT)


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
