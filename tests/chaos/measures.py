"""What a chaos run measures and checks: the canary's recovery time, the oracle's, and at the
end the audit, each token's truth, the pusher's outbox and the values the oracle published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from eth_utils.crypto import keccak

from demo.config import FEED_ID, NETWORK
from dnft.contracts import DevSigner
from dnft.devservices import PostgresService, TansuService
from dnft.errors import DnftError
from tests.chaos.price_source import PriceSource
from tests.chaos.traffic import CANARY_TOKEN, send
from tests.support.daemon import DaemonProcess
from tests.support.kafka import read_topic

FED_TOPIC = "0x" + keccak(text="Fed(uint256,address,uint256)").hex()


async def connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=10)


class Measures:
    """The reads of :class:`tests.chaos.harness.ChaosWorld` (a mixin: the world sets these
    attributes)."""

    root: Path
    postgres: PostgresService
    tansu: TansuService
    source: PriceSource
    daemons: Mapping[str, DaemonProcess]
    deploy: dict[str, Any]
    config_file: Path
    settings: dict[str, Any]
    w3: Any
    collection: Any
    owners: dict[int, int]
    canary_signer: DevSigner | None

    async def canary(self, timeout_s: float = 120.0) -> float:
        """Seconds from now until a new `Fed` of the canary token is a confirmed version."""
        assert self.canary_signer is not None
        began = time.monotonic()
        data = self.collection.encode_abi("feed", [CANARY_TOKEN])
        while True:
            try:
                await send(self.w3, self.collection, self.canary_signer, data, value=1)
                break
            except DnftError:
                self.canary_signer._nonce = None
                if time.monotonic() - began > timeout_s:
                    raise
                await asyncio.sleep(0.5)
        expected = await self.fed_count(CANARY_TOKEN)
        row: Any = None
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                conn = await connect(self.postgres.dsn)
                try:
                    row = await conn.fetchrow(
                        "select v.version, u.confirmed_at from token_versions v "
                        "left join pusher_updates u on u.token_id = v.token_id "
                        "and u.version = v.version where v.token_id = $1 "
                        "and v.state->'traits'->>'fed' = $2 order by v.version desc limit 1",
                        CANARY_TOKEN,
                        str(expected),
                    )
                finally:
                    await conn.close()
            if row is not None and row["confirmed_at"] is not None:
                return time.monotonic() - began
            if time.monotonic() - began > timeout_s:
                raise AssertionError(
                    f"canary (fed={expected}) not confirmed after {timeout_s} s: {row}; "
                    f"logs in {self.root / 'logs'}"
                )
            await asyncio.sleep(0.2)

    async def feed_recovery(self, timeout_s: float = 60.0) -> float:
        """Seconds until the oracle publishes a new true reading of the source."""
        began = time.monotonic()
        self.source.step()
        while True:
            self.source.value += Decimal("0.5")  # a value never served before
            target = float(self.source.value)
            for _ in range(10):
                metrics = await self.daemons["oracle"].metrics()
                if metrics.get("dnft_oracle_last_value") == target:
                    return time.monotonic() - began
                await asyncio.sleep(0.2)
            if time.monotonic() - began > timeout_s:
                raise AssertionError(f"the oracle did not publish {target} in {timeout_s} s")

    async def fed_count(self, token: int) -> int:
        """`Fed` events of ``token`` on the canonical chain (raw eth_getLogs on anvil)."""
        answer = await self.w3.provider.make_request(
            "eth_getLogs",
            [
                {
                    "address": self.collection.address,
                    "fromBlock": hex(int(self.deploy["deploy_block"])),
                    "toBlock": "latest",
                    "topics": [FED_TOPIC, "0x" + token.to_bytes(32, "big").hex()],
                }
            ],
        )
        return len(answer["result"])

    def audit(self, last_block: int) -> dict[str, Any]:
        """`dnft audit --json` over the run's blocks (exit 0 or 1; 2 fails here). Blocks: call
        it in a thread (the proxy and the price source answer on this process's loop).

        A report that is not clean is written to ``audit-N.json`` beside the logs. One whose
        only finding is events missing from Kafka is read again, waiting longer for quiet:
        tansu under-reports partition ends and fetches from S3 storage can pause."""
        report: dict[str, Any] = {}
        for attempt, quiet_s in enumerate((2, 10, 20), start=1):
            proc = subprocess.run(
                [sys.executable, "-m", "dnft", "--config", str(self.config_file), "audit",
                 "--network", NETWORK, "--from-block", str(self.deploy["deploy_block"]),
                 "--to-block", str(last_block), "--quiet-s", str(quiet_s), "--json"],
                capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            assert proc.returncode in (0, 1), proc.stderr
            report = json.loads(proc.stdout)
            if report["clean"]:
                return report
            (self.root / f"audit-{attempt}.json").write_text(json.dumps(report, indent=2))
            kafka, postgres = report["kafka"], report.get("postgres") or {}
            only_kafka_missing = (
                not (kafka["extra"] or kafka["duplicated"])
                and not any(postgres.get(k) for k in ("missing", "extra", "duplicated"))
                and report["versions"]["clean"]
                and report["transactions"]["clean"]
            )
            print(f"[chaos] audit {attempt} not clean: kafka missing {kafka['missing']}; "
                  f"postgres missing {postgres.get('missing')}", flush=True)  # fmt: skip
            if not only_kafka_missing:
                break
        return report

    async def token_truth(self) -> dict[int, tuple[int, int]]:
        """Token -> (Fed events on chain, `fed` of its newest version)."""
        conn = await connect(self.postgres.dsn)
        try:
            rows = await conn.fetch(
                "select distinct on (token_id) token_id, state->'traits'->>'fed' as fed "
                "from token_versions order by token_id, version desc"
            )
        finally:
            await conn.close()
        newest = {int(r["token_id"]): int(r["fed"]) for r in rows}
        return {t: (await self.fed_count(t), newest.get(t, -1)) for t in sorted(self.owners)}

    async def outbox(self) -> dict[str, int]:
        conn = await connect(self.postgres.dsn)
        try:
            row = await conn.fetchrow(
                "select count(*) as updates, count(confirmed_at) as confirmed, "
                "count(failed_at) as failed from pusher_updates"
            )
            versions = await conn.fetchval("select count(*) from token_versions")
        finally:
            await conn.close()
        assert row is not None
        return {**dict(row), "versions": versions}

    def published_values(self) -> list[Decimal]:
        topic = (
            self.settings.get("kafka", {})
            .get("topics", {})
            .get("oracle_observations", "dnft.oracle.observations.v1")
        )
        messages = read_topic(self.tansu.bootstrap, topic, quiet_s=2.0)
        return [Decimal(m["value"]) for m in messages if m.get("feed_id") == FEED_ID]
