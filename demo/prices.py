"""The demo's price series: real daily closes shipped as CSV, replayed faster than real time.

A series file has ``#`` comment lines (its source), then ``date,close_usd`` rows with ISO dates
one day apart. :class:`Replay` maps elapsed seconds to a day of the series, ``day_s`` seconds
per day, starting over after the last day.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from dnft.errors import ConfigError

DEFAULT_SERIES = Path(__file__).resolve().parent / "data" / "eth-usd-bitstamp-daily.csv"


@dataclass(frozen=True, slots=True)
class DailyClose:
    day: date
    close: Decimal


def load_series(path: Path = DEFAULT_SERIES) -> list[DailyClose]:
    """Read a series file. Raises ConfigError naming the line when it is malformed: a bad date
    or price, a non-positive price, or days that are not consecutive."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("series", f"cannot read {path}: {exc.strerror}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.startswith("#")]
    rows = list(csv.reader(line for _, line in lines))
    if not rows or rows[0] != ["date", "close_usd"]:
        raise ConfigError("series", f"{path}: expected the header 'date,close_usd'")
    series: list[DailyClose] = []
    for (number, _), row in zip(lines[1:], rows[1:], strict=True):
        where = f"{path}:{number}"
        try:
            day, close = date.fromisoformat(row[0]), Decimal(row[1])
        except (IndexError, ValueError, InvalidOperation):
            raise ConfigError("series", f"{where}: expected 'YYYY-MM-DD,price': {row}") from None
        if not close.is_finite() or close <= 0:
            raise ConfigError("series", f"{where}: price must be positive, got {row[1]}")
        if series and day != series[-1].day + timedelta(days=1):
            raise ConfigError("series", f"{where}: {day} does not follow {series[-1].day}")
        series.append(DailyClose(day, close))
    if not series:
        raise ConfigError("series", f"{path}: no rows")
    return series


@dataclass(frozen=True, slots=True)
class Replay:
    """``series`` played at ``day_s`` seconds per day from elapsed time 0, looping."""

    series: list[DailyClose]
    day_s: float

    def __post_init__(self) -> None:
        if not self.series:
            raise ValueError("empty series")
        if self.day_s <= 0:
            raise ValueError(f"day_s must be > 0, got {self.day_s}")

    def index_at(self, elapsed_s: float) -> int:
        """The series index shown ``elapsed_s`` seconds into the replay (0 before it starts)."""
        return int(max(elapsed_s, 0.0) // self.day_s) % len(self.series)

    def at(self, elapsed_s: float) -> DailyClose:
        return self.series[self.index_at(elapsed_s)]
