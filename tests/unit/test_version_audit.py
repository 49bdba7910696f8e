"""The version audit's pure part: duplicated states and version numbering gaps."""

from __future__ import annotations

from regenerator.version_audit import VersionRow, classify_versions


def rows(collection: str, token_id: int, *versions: tuple[int, str]) -> list[VersionRow]:
    return [VersionRow(collection, str(token_id), v, state) for v, state in versions]


class TestClassifyVersions:
    """Each token's versions must be 1..n with a distinct state each."""

    def test_clean(self) -> None:
        audit = classify_versions(
            ["a", "b"],
            [
                *rows("a", 1, (1, "s1"), (2, "s2"), (3, "s3")),
                *rows("a", 2, (1, "s1")),  # the same state hash on another token is fine
                *rows("b", 1, (2, "x2"), (1, "x1")),  # order of rows does not matter
            ],
        )
        assert audit.clean
        assert (audit.tokens, audit.versions) == (3, 6)
        assert audit.as_dict() == {
            "tokens": 3,
            "versions": 6,
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
                *rows("a", 10, (1, "s1"), (2, "s2"), (3, "s1")),
                *rows("a", 2, (1, "t"), (2, "t"), (3, "t")),
            ],
        )
        assert not audit.clean
        assert [d.as_dict() for d in audit.duplicated] == [
            {"collection": "a", "token_id": "2", "state_hash": "t", "count": 3},
            {"collection": "a", "token_id": "10", "state_hash": "s1", "count": 2},
        ], "sorted by token id numerically"
        assert audit.gaps == []

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
