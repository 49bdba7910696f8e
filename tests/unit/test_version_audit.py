"""The version audit's pure part: consecutive versions of one state, numbering gaps."""

from __future__ import annotations

from audit import VersionRow, classify_versions


def rows(collection: str, token_id: int, *versions: tuple[int, str]) -> list[VersionRow]:
    return [VersionRow(collection, str(token_id), v, state) for v, state in versions]


class TestClassifyVersions:
    """Each token's versions must be 1..n, each changing the token's state."""

    def test_clean(self) -> None:
        audit = classify_versions(
            ["a", "b"],
            [
                *rows("a", 1, (1, "s1"), (2, "s2"), (3, "s3")),
                *rows("a", 2, (1, "s1")),  # the same state hash on another token is fine
                *rows("b", 1, (2, "x2"), (1, "x1")),  # order of rows does not matter
                # A state the token had before, returning: winter -> bear -> winter.
                *rows("b", 2, (1, "winter"), (2, "bear"), (3, "winter"), (4, "bear")),
            ],
        )
        assert audit.clean
        assert (audit.tokens, audit.versions) == (4, 10)
        assert audit.as_dict() == {
            "tokens": 4,
            "versions": 10,
            "duplicated": [],
            "gaps": [],
            "clean": True,
        }

    def test_empty(self) -> None:
        audit = classify_versions(["a"], [])
        assert audit.clean
        assert (audit.tokens, audit.versions) == (0, 0)

    def test_duplicated_state(self) -> None:
        audit = classify_versions(
            ["a"],
            [
                *rows("a", 10, (4, "s1"), (1, "s1"), (2, "s2"), (3, "s1")),
                *rows("a", 2, (1, "t"), (2, "t"), (3, "t")),
                *rows("a", 3, (1, "u"), (2, "v"), (3, "v"), (4, "u"), (5, "u")),
            ],
        )
        assert not audit.clean
        assert [d.as_dict() for d in audit.duplicated] == [
            {"collection": "a", "token_id": "2", "state_hash": "t", "versions": [1, 2, 3]},
            {"collection": "a", "token_id": "3", "state_hash": "v", "versions": [2, 3]},
            {"collection": "a", "token_id": "3", "state_hash": "u", "versions": [4, 5]},
            {"collection": "a", "token_id": "10", "state_hash": "s1", "versions": [3, 4]},
        ], "one entry per run, sorted by token id numerically, then version"
        assert audit.gaps == []

    def test_repeat_across_a_gap(self) -> None:
        """Adjacent in version order is what counts: 1, 2, 4 of one state is one run."""
        audit = classify_versions(["a"], rows("a", 7, (1, "s"), (2, "s"), (4, "s")))
        assert [d.versions for d in audit.duplicated] == [(1, 2, 4)]
        assert [g.versions for g in audit.gaps] == [(1, 2, 4)]

    def test_gaps(self) -> None:
        audit = classify_versions(
            ["a"],
            [
                *rows("a", 1, (1, "s1"), (3, "s3")),  # 2 skipped
                *rows("a", 2, (2, "s2")),  # no version 1
                *rows("a", 3, (1, "s1"), (2, "s2")),
            ],
        )
        assert not audit.clean
        assert [g.as_dict() for g in audit.gaps] == [
            {"collection": "a", "token_id": "1", "versions": [1, 3]},
            {"collection": "a", "token_id": "2", "versions": [2]},
        ]
        assert audit.duplicated == []

    def test_huge_token_ids_stay_exact(self) -> None:
        big = 2**256 - 1
        audit = classify_versions(["a"], rows("a", big, (1, "s"), (2, "s")))
        (dup,) = audit.duplicated
        assert dup.token_id == str(big)
