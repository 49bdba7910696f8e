"""The headless demo's verdict: every token evolved, and ``dnft audit`` over the demo's blocks
is clean once the indexer has passed them (plus the small reads the status line shares)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from demo.config import NETWORK

# How long the pipeline may take to settle after the world stops.
SETTLE_TIMEOUT_S = 45.0


async def version_counts(conn: asyncpg.Connection, collection: str) -> dict[int, int]:
    """Token id -> number of versions."""
    rows = await conn.fetch(
        "select token_id, count(*) as n from token_versions where collection = $1 "
        "group by token_id",
        collection,
    )
    return {int(r["token_id"]): int(r["n"]) for r in rows}


async def check_evolved(
    dsn: str, collection: str, tokens: int, say: Callable[[str], None], interrupted: asyncio.Event
) -> bool:
    """Every minted token has a version after its first (waits for renders in flight)."""
    expected = set(range(1, tokens + 1))
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        while True:
            counts = await version_counts(conn, collection)
            behind = sorted(t for t in expected if counts.get(t, 0) < 2)
            if not behind:
                say(
                    f"evolved: all {len(expected)} tokens have more than one version "
                    f"({sum(counts.values())} versions in all)"
                )
                return True
            if time.monotonic() > deadline or interrupted.is_set():
                say(
                    f"not evolved: tokens {behind} have fewer than two versions "
                    f"(versions: {dict(sorted(counts.items()))})"
                )
                return False
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def check_audit(
    settings_file: Path,
    dsn: str,
    from_block: int,
    to_block: int,
    say: Callable[[str], None],
    interrupted: asyncio.Event,
) -> bool:
    """``dnft audit`` over the demo's blocks is clean, once the indexer's checkpoint has
    passed them. A mismatch that is only "missing" may be a consumer still catching up,
    so the audit runs again (3 tries); anything extra or duplicated fails at once."""
    if not await checkpoint_reaches(dsn, to_block, interrupted):
        say(f"audit: the indexer did not reach block {to_block}")
        return False
    for attempt in range(1, 4):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dnft", "--config", str(settings_file),
            "audit", "--network", NETWORK, "--from-block", str(from_block),
            "--to-block", str(to_block), "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        stdout, stderr = await proc.communicate()
        if proc.returncode == 2 or proc.returncode is None:
            say(f"audit could not run: {stderr.decode().strip()}")
            return False
        report = json.loads(stdout)
        summary = audit_summary(report)
        say(f"audit of blocks {from_block}..{to_block}: {summary}")
        if proc.returncode == 0:
            return True
        only_missing = all(
            not (report.get(source) or {}).get(kind)
            for source in ("kafka", "postgres")
            for kind in ("extra", "duplicated")
        )
        if not only_missing or attempt == 3 or interrupted.is_set():
            say("audit report:\n" + json.dumps(report, indent=2))
            return False
        await asyncio.sleep(3.0)
    return False


async def checkpoint_reaches(dsn: str, block: int, interrupted: asyncio.Event) -> bool:
    """Whether the indexer's checkpoint passes ``block`` within the settle timeout."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        while not interrupted.is_set() and time.monotonic() < deadline:
            reached = await conn.fetchval(
                "select block_number from indexer_checkpoints where network = $1", NETWORK
            )
            if reached is not None and reached >= block:
                return True
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return False


def audit_summary(report: dict[str, Any]) -> str:
    parts = [f"{report['chain']['events']} events on chain"]
    for source in ("kafka", "postgres"):
        body = report.get(source)
        if body is None:
            continue
        found = {k: len(body.get(k) or []) for k in ("missing", "extra", "duplicated")}
        found_text = ", ".join(f"{n} {k}" for k, n in found.items() if n) or "matches"
        parts.append(f"{source} {found_text}")
    versions = report.get("versions")
    if versions is not None:
        parts.append(
            f"{versions['versions']} versions of {versions['tokens']} tokens, "
            f"{len(versions['duplicated'])} duplicated, {len(versions['gaps'])} gaps"
        )
    transactions = report.get("transactions")
    if transactions is not None:
        parts.append(
            f"{transactions['transactions']} pusher transactions, "
            f"{len(transactions['duplicated'])} duplicated, "
            f"{len(transactions['unrecorded'])} unrecorded, "
            f"{len(transactions['missing'])} missing"
        )
    return ("clean: " if report["clean"] else "MISMATCH: ") + "; ".join(parts)
