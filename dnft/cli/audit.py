"""``dnft audit``: reconcile a network's chain logs with Kafka and Postgres over a block range,
and check that no token version and no pusher transaction was repeated.

Reads the network's configured contracts' canonical logs, the chain-events topic (from the
beginning, retractions applied) and the regenerator's regen_events over the range, and prints
what is missing, extra or duplicated. Also checks token_versions of the bound collections (two
consecutive versions of one state, version numbers not 1..n) and the pusher's announcing
transactions mined in the range (sent but not in the outbox, a push mined twice, a confirmed
push the chain does not have).

Exit status: 0 when every source matches the chain and no side effect repeated, 1 when
anything is missing, extra or duplicated (events, versions, transactions) or a version
number is skipped, 2 when the audit cannot run (bad arguments or config, a source
unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from dnft.cli.console import Commands, add_command
from dnft.config import load_settings
from dnft.errors import ConfigError, ServiceError

if TYPE_CHECKING:
    from audit import AuditReport, EventRef, SourceReport, TransactionAudit, VersionAudit

EXIT_CLEAN = 0
EXIT_FOUND = 1
EXIT_CANNOT_AUDIT = 2


def register(sub: Commands) -> None:
    parser = add_command(sub, "audit", __doc__, _main)
    parser.add_argument("--network", required=True, help="network name from the config")
    parser.add_argument("--from-block", type=int, required=True, metavar="A")
    parser.add_argument("--to-block", type=int, required=True, metavar="B")
    parser.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="offending entries printed per kind and source (default: 20)",
    )
    parser.add_argument(
        "--quiet-s",
        type=float,
        default=None,
        metavar="S",
        help="keep reading Kafka until no record arrived for S seconds past the end offsets "
        "(default: 2; some brokers under-report partition ends)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _main(args: argparse.Namespace) -> int:
    from audit import DEFAULT_QUIET_S, run_audit

    try:
        if args.limit < 0:
            raise ConfigError("--limit", f"must be >= 0, got {args.limit}")
        quiet_s = DEFAULT_QUIET_S if args.quiet_s is None else args.quiet_s
        if quiet_s <= 0:
            raise ConfigError("--quiet-s", f"must be > 0, got {quiet_s}")
        settings = load_settings(args.config)
        settings.network(args.network)  # an unknown name fails before any I/O
        report = asyncio.run(
            run_audit(settings, args.network, args.from_block, args.to_block, quiet_s=quiet_s)
        )
    except (ConfigError, ServiceError) as exc:
        print(f"dnft audit: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_AUDIT
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report, args.limit))
    return EXIT_CLEAN if report.clean else EXIT_FOUND


def render(report: AuditReport, limit: int) -> str:
    """The human-readable report."""
    read, stream = report.topic_read, report.stream
    lines = [
        f"audit of network {report.network} (chain {report.chain_id}), blocks "
        f"{report.from_block}..{report.to_block} (head {report.head})",
        f"  chain:    {report.chain_events} event(s) of the configured contracts",
        f"  kafka:    {report.topic}: {read.records} record(s) read in {read.seconds:.1f} s "
        f"(end offsets reported: {read.end_offsets}); {stream.events} event(s) and "
        f"{stream.retractions} retraction(s) in range -> {len(stream.net)} live",
    ]
    if stream.repeats:
        lines.append(
            f"            {stream.repeats} repeat(s), harmless: consumers dedupe by event id"
        )
    if stream.unmatched_retractions:
        lines.append(
            f"            {stream.unmatched_retractions} retraction(s) of ids not live when "
            "read (their event is outside what was read)"
        )
    if read.unparseable:
        lines.append(f"            {read.unparseable} record(s) are not JSON (skipped)")
    if report.postgres is not None:
        lines.append(
            f"  postgres: regen_events: {report.postgres.present} event(s) in range, "
            f"{report.postgres.expected} expected (bound contracts, events naming a token)"
        )
    for source in (report.kafka, report.postgres):
        if source is not None:
            lines.extend(_source_lines(source, limit))
    if report.versions is not None:
        lines.extend(_version_lines(report.versions, limit))
    if report.transactions is not None:
        lines.extend(_transaction_lines(report.transactions, limit))
    lines.extend(f"note: {n}" for n in report.notes)
    lines.append("result: clean" if report.clean else "result: MISMATCH")
    return "\n".join(lines) + "\n"


def _source_lines(source: SourceReport, limit: int) -> list[str]:
    if source.clean:
        return [f"{source.source}: OK, matches the chain"]
    lines = [
        f"{source.source}: {len(source.missing)} missing, {len(source.extra)} extra, "
        f"{len(source.duplicated)} duplicated"
    ]
    lines.extend(_listed(f"missing in {source.source} (on chain)", source.missing, limit))
    lines.extend(_listed(f"extra in {source.source} (not on chain)", source.extra, limit))
    if source.duplicated:
        lines.append(f"  duplicated in {source.source} (one log under several event ids):")
        for dup in source.duplicated[:limit]:
            lines.append(f"    tx {dup.tx_hash} log {dup.log_index}:")
            lines.extend(
                f"      {_ref(e)}{'  (on chain)' if e.event_id == dup.on_chain else ''}"
                for e in dup.events
            )
        if len(source.duplicated) > limit:
            lines.append(f"    ... and {len(source.duplicated) - limit} more")
    return lines


def _version_lines(audit: VersionAudit, limit: int) -> list[str]:
    lines = [
        f"versions: {audit.versions} of {audit.tokens} token(s), {len(audit.duplicated)} "
        f"duplicated, {len(audit.gaps)} gaps"
    ]
    duplicated = [
        _versions(f"{d.collection} token {d.token_id} state {d.state_hash}", d.versions)
        for d in audit.duplicated
    ]
    gaps = [_versions(f"{g.collection} token {g.token_id}", g.versions) for g in audit.gaps]
    lines.extend(_capped("  duplicated (consecutive versions of one state):", duplicated, limit))
    lines.extend(_capped("  gaps (version numbers not 1..n):", gaps, limit))
    return lines


def _versions(token: str, versions: Sequence[int]) -> str:
    return f"    {token}: versions " + ", ".join(str(v) for v in versions)


def _transaction_lines(audit: TransactionAudit, limit: int) -> list[str]:
    lines = [
        f"transactions: {audit.transactions} mined by the pusher ({audit.announcements} "
        f"announcements), {len(audit.duplicated)} duplicated, {len(audit.unrecorded)} "
        f"unrecorded, {len(audit.missing)} missing"
    ]
    lines.extend(
        _capped(
            "  duplicated (a push mined more than once):",
            [f"    push {d.push_id}: {', '.join(d.hashes)}" for d in audit.duplicated],
            limit,
        )
    )
    lines.extend(
        _capped(
            "  unrecorded (sent by the pusher's signer, not in its outbox):",
            [f"    {h}" for h in audit.unrecorded],
            limit,
        )
    )
    lines.extend(
        _capped(
            "  missing (confirmed in the outbox, not announced on chain):",
            [f"    push {m.push_id}: {m.hash}" for m in audit.missing],
            limit,
        )
    )
    return lines


def _capped(title: str, entries: list[str], limit: int) -> list[str]:
    if not entries:
        return []
    lines = [title, *entries[:limit]]
    if len(entries) > limit:
        lines.append(f"    ... and {len(entries) - limit} more")
    return lines


def _listed(title: str, refs: list[EventRef], limit: int) -> list[str]:
    if not refs:
        return []
    lines = [f"  {title}:"]
    lines.extend(f"    {_ref(r)}" for r in refs[:limit])
    if len(refs) > limit:
        lines.append(f"    ... and {len(refs) - limit} more")
    return lines


def _ref(ref: EventRef) -> str:
    return f"block {ref.block_number}  {ref.event_id}"
