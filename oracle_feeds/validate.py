"""Why a reading is refused, and the checks that need a feed's history.

Every refusal has one reason from the closed set :data:`RejectReason`; it is the ``outcome``
label of ``dnft_oracle_observations_total`` (next to ``accepted``) and the ``reason`` of the
log line. A refused reading changes nothing: the last good value stays, nothing is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal, get_args

from dnft.errors import DnftError
from oracle_feeds.types import Reading

RejectReason = Literal[
    "malformed",  # not UTF-8 / not JSON (an HTML error page) / no value at the path
    "not_numeric",  # the value is a string, boolean, object... that is no number
    "not_finite",  # NaN or an infinity
    "out_of_bounds",  # outside the feed's [min, max] (or an absurd magnitude)
    "jump",  # moved more than max_change; held until a second reading confirms it
    "stale",  # older than max_age_s, or older than the last accepted reading
    "bad_timestamp",  # an unparseable timestamp, or one in the future
    "too_large",  # body over max_body_bytes (stopped while streaming)
    "timeout",  # no complete answer within timeout_s
    "http_status",  # an answer other than 200 (and not a same-host redirect)
    "rate_limited",  # 429; the next request waits for Retry-After
    "redirect",  # a redirect to another host, or too many redirects
    "blocked_host",  # the SSRF guard refused the address
    "connection",  # refused, reset or dropped connection; DNS failure
    "rpc_error",  # a JSON-RPC read of an aggregator failed
    "no_quorum",  # a median had fewer agreeing fresh sources than its quorum
    "error",  # an unexpected failure while reading (a bug): logged with its traceback
]
REJECT_REASONS: Final[tuple[RejectReason, ...]] = get_args(RejectReason)

Outcome = Literal["accepted"] | RejectReason
"""Label values of ``dnft_oracle_observations_total{outcome}``."""

# A source clock may run a little ahead of ours; beyond this a timestamp is wrong.
MAX_FUTURE_SKEW_S: Final = 60.0


class Rejected(DnftError):
    """A reading refused with ``reason``; ``detail`` says why in words (no secrets).

    ``retry_after_s``: the source asked not to be called again for that long (429).
    """

    def __init__(self, reason: RejectReason, detail: str, *, retry_after_s: float | None = None):
        self.reason: RejectReason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class Limits:
    """A feed's configured checks (see ``dnft.config`` for each key)."""

    min: Decimal | None = None
    max: Decimal | None = None
    max_change: Decimal | None = None
    max_age_s: float | None = None


def relative_change(reference: Decimal, value: Decimal) -> Decimal:
    """``|value - reference| / |reference|``; from 0, any move is infinitely large."""
    if reference == 0:
        return Decimal(0) if value == 0 else Decimal("Infinity")
    return abs(value - reference) / abs(reference)


class Validator:
    """The history-dependent checks of one feed: bounds, staleness, jumps. No I/O.

    ``reference`` is the last accepted value (seeded with the last published one after a
    restart). A move beyond ``max_change`` from it is refused as ``jump`` and remembered; the
    next reading within ``max_change`` of that remembered value confirms the move and is
    accepted. A quorum (``Reading.confirmed``) confirms at once.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        reference: Decimal | None = None,
        reference_observed_at: float | None = None,
    ) -> None:
        self.limits = limits
        self.reference = reference
        self.reference_observed_at = reference_observed_at
        self.held: Decimal | None = None

    def check(self, reading: Reading, now: float) -> None:
        """Accept ``reading`` (it becomes the reference) or raise ``Rejected``."""
        value = reading.value
        limits = self.limits
        if not value.is_finite():
            raise Rejected("not_finite", f"value is {value}")
        if limits.min is not None and value < limits.min:
            raise Rejected("out_of_bounds", f"{value} is below the minimum {limits.min}")
        if limits.max is not None and value > limits.max:
            raise Rejected("out_of_bounds", f"{value} is above the maximum {limits.max}")
        age = now - reading.observed_at
        if age < -MAX_FUTURE_SKEW_S:
            raise Rejected("bad_timestamp", f"observed {-age:.0f} s in the future")
        if limits.max_age_s is not None and age > limits.max_age_s:
            raise Rejected("stale", f"observed {age:.0f} s ago (max_age_s {limits.max_age_s:g})")
        if self.reference_observed_at is not None and reading.observed_at < (
            self.reference_observed_at
        ):
            raise Rejected(
                "stale",
                f"observed {self.reference_observed_at - reading.observed_at:.0f} s before "
                "the last accepted reading",
            )
        self._check_jump(reading)
        self.held = None
        self.reference = value
        self.reference_observed_at = reading.observed_at

    def _check_jump(self, reading: Reading) -> None:
        limit = self.limits.max_change
        if limit is None or self.reference is None or reading.confirmed:
            return
        value = reading.value
        change = relative_change(self.reference, value)
        if change <= limit:
            return
        if self.held is not None and relative_change(self.held, value) <= limit:
            return  # a second reading confirms the move
        self.held = value
        raise Rejected(
            "jump",
            f"{value} is {_percent(change)} away from {self.reference} (max_change "
            f"{_percent(limit)}); held until a second reading confirms it",
        )


def _percent(fraction: Decimal) -> str:
    if not fraction.is_finite():
        return "infinitely far"
    return f"{fraction * 100:,.1f}%"
