"""What a render job does, given the token's current state and its versions (pure)."""

from __future__ import annotations

import pytest

from dnft.timeline import JobAction, job_action


class TestJobAction:
    """A job publishes its state once per change of the token's state, never twice in a row."""

    @pytest.mark.parametrize(
        ("current", "newest", "had", "tried", "expected"),
        [
            # First render of a state: the token is in it, no version has it.
            ("S", None, False, False, "render"),
            ("S", "T", False, False, "render"),
            # The newest version is the job's state: a re-delivered or replayed job.
            ("S", "S", True, False, "announce"),
            ("U", "S", True, False, "announce"),  # even if the token moved on since
            ("S", "S", True, True, "announce"),
            # Back in a state it had before: winter -> bear -> winter copies version 1.
            ("S", "T", True, False, "copy"),
            ("S", "T", True, True, "copy"),  # approved before: no second review
            # Moved on, and the state is not the newest version: a newer job follows.
            ("T", "T", True, False, "stale"),
            ("T", None, False, False, "stale"),
            (None, None, False, False, "stale"),
            ("U", "T", True, False, "stale"),
            # Held for review, rejected or failed: nothing to do, whatever the state.
            ("S", None, False, True, "handled"),
            ("T", None, False, True, "handled"),
        ],
    )
    def test_decision(
        self,
        current: str | None,
        newest: str | None,
        had: bool,
        tried: bool,
        expected: JobAction,
    ) -> None:
        assert (
            job_action("S", current_state=current, newest_state=newest, had_state=had, tried=tried)
            == expected
        )
