"""``dnft init``: start a project for a contract already on chain.

Reads the contract's ABI, checks that the chain answers with the expected chain id and that
the address holds code, then writes ``dnft.yaml`` in the current directory (the network, the
contract with the token identity of each event, Kafka and Postgres from ``dnft dev env``) and
a collection rules file beside it with a commented trait per event. Refuses to overwrite
either file without ``--force``. Then: edit the rules, ``dnft --config dnft.yaml config
check``, ``dnft run --all``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from dnft.cli.console import Commands, add_command
from dnft.config import ADDRESS_PATTERN, NAME_PATTERN, ContractSettings, TokenSource
from dnft.errors import ConfigError, DecodeError, RpcError
from dnft.rpc import RpcClient
from indexer import EventDecoder

CONFIG_FILE = "dnft.yaml"
# ERC-4906 and ERC-1155 announcements: the events a metadata update itself causes. A trait on
# one would change a token's state after every announcement (render, announce, again).
ANNOUNCEMENTS = frozenset(
    {"MetadataUpdate(uint256)", "BatchMetadataUpdate(uint256,uint256)", "URI(string,uint256)"}
)
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def register(subparsers: Commands) -> None:
    """Add the ``init`` command."""
    parser = add_command(subparsers, "init", __doc__, _run)
    parser.add_argument("--abi", type=Path, required=True, help="the contract's ABI (JSON)")
    parser.add_argument("--address", required=True, help="the contract's 0x address")
    parser.add_argument("--chain-id", type=int, required=True, help="the chain's id")
    parser.add_argument("--rpc-url", required=True, help="an HTTP JSON-RPC URL of the chain")
    parser.add_argument(
        "--name", default=None, help="the contract and collection name (default: from --abi)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the ABI, as the generated files describe it."""

    name: str
    signature: str
    described: str  # with argument names and indexed marks, for a comment
    token: TokenSource | None  # None: no single token


def _run(args: argparse.Namespace) -> int:
    name = args.name or _name_of(args.abi)
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError("--name", f"{name!r} must match {NAME_PATTERN} (e.g. my_game)")
    events = read_events(args.abi, name)
    files = project_files(
        events,
        name=name,
        abi=_shown_path(args.abi),
        address=args.address,
        chain_id=args.chain_id,
        rpc_url=args.rpc_url,
    )
    existing = [f for f in files if Path(f).exists()]
    if existing and not args.force:
        raise ConfigError("--force", f"{', '.join(existing)} already exist(s); --force overwrites")
    asyncio.run(check_contract(args.rpc_url, args.chain_id, args.address))
    for path, text in files.items():
        Path(path).write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    print(f"next: edit {_rules_file(name)}, then `dnft --config {CONFIG_FILE} config check`")
    return 0


def _name_of(abi: Path) -> str:
    """A contract name from the ABI file's name: ``MyGame.json`` -> ``mygame``."""
    name = _NOT_NAME.sub("_", abi.stem.lower()).strip("_")[:40]
    return name if re.fullmatch(r"[a-z][a-z0-9_]*", name) else "collection"


def _shown_path(abi: Path) -> str:
    """The ABI as dnft.yaml names it: relative to the current directory when inside it."""
    full = abi.resolve()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(full)


def _rules_file(name: str) -> str:
    return f"{name}.collection.yaml"


def read_events(abi_path: Path, name: str) -> list[Event]:
    """The ABI's named, non-anonymous events with their default token identity; raises
    ConfigError (at ``--abi``) on a file that is not an ABI or whose events do not parse."""
    try:
        raw = orjson.loads(abi_path.read_bytes())
    except OSError as exc:
        raise ConfigError("--abi", f"cannot read {abi_path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError("--abi", f"{abi_path} is not JSON: {exc}") from None
    abi = raw.get("abi", raw) if isinstance(raw, dict) else raw
    if not isinstance(abi, list) or not all(isinstance(item, dict) for item in abi):
        raise ConfigError("--abi", f"{abi_path} holds no ABI (a list of entries)")
    try:
        decoder = EventDecoder.from_abi(abi)
    except DecodeError as exc:
        raise ConfigError("--abi", f"{abi_path}: {exc}") from None
    if not decoder.topic0s:
        raise ConfigError("--abi", f"{abi_path} has no event: dnft follows a contract's events")
    contract = ContractSettings(name=name, network="n", address="0x" + "0" * 40, abi=abi_path)
    token_args = contract.token_args(abi)
    out: list[Event] = []
    for item in abi:
        if item.get("type") != "event" or item.get("anonymous") or not item.get("name"):
            continue
        inputs = item.get("inputs", [])
        types = ",".join(str(i["type"]) for i in inputs)
        described = ", ".join(
            f"{i['type']}{' indexed' if i.get('indexed') else ''} {i.get('name', '')}".strip()
            for i in inputs
        )
        event = str(item["name"])
        out.append(
            Event(event, f"{event}({types})", f"{event}({described})", token_args.get(event))
        )
    return out


async def check_contract(rpc_url: str, chain_id: int, address: str) -> None:
    """The node at ``rpc_url`` is on ``chain_id`` and ``address`` holds code there; raises
    ConfigError naming the option otherwise (an unreachable node: ServiceError)."""
    if not re.fullmatch(ADDRESS_PATTERN, address):
        raise ConfigError("--address", f"not a 0x address of 40 hex digits: {address!r}")
    async with RpcClient(rpc_url, timeout_s=10.0) as client:
        try:
            found = int(await client.call("eth_chainId", []), 16)
            code = await client.call("eth_getCode", [address, "latest"])
        except RpcError as exc:
            raise RpcError(f"cannot read the chain at {rpc_url}: {exc}") from exc
    if found != chain_id:
        raise ConfigError(
            "--chain-id", f"the node at {rpc_url} is on chain {found}, not {chain_id}"
        )
    if not isinstance(code, str) or code in ("0x", "0x0", ""):
        raise ConfigError(
            "--address", f"{address} has no code on chain {chain_id}: is it the contract?"
        )


def project_files(
    events: Sequence[Event], *, name: str, abi: str, address: str, chain_id: int, rpc_url: str
) -> dict[str, str]:
    """File name -> text: dnft.yaml and the collection rules file beside it."""
    return {
        CONFIG_FILE: config_text(
            events, name=name, abi=abi, address=address, chain_id=chain_id, rpc_url=rpc_url
        ),
        _rules_file(name): rules_text(events, name=name),
    }


def config_text(
    events: Sequence[Event], *, name: str, abi: str, address: str, chain_id: int, rpc_url: str
) -> str:
    network = f"chain-{chain_id}"
    lines = [
        f"# dnft.yaml written by `dnft init` for contract {name} on chain {chain_id}.",
        '# Kafka and Postgres come from `dnft dev up` (run `eval "$(dnft dev env)"` first);',
        "# every key is in README.md's configuration reference.",
        "log_level: info",
        "",
        "networks:",
        f"  - name: {network}",
        f"    chain_id: {chain_id}",
        f"    rpc_urls: [{_quoted(rpc_url)}]",
        "    confirmations: {depth: 12}   # or {tag: safe} / {tag: finalized}",
        "",
        "contracts:",
        f"  - name: {_quoted(name)}",
        f"    network: {network}",
        f"    address: {_quoted(address)}",
        f"    abi: {_quoted(abi)}",
        "    start_block: 0                # the deploy block skips the history before it",
        "    # Where each event's token id comes from: {token: {arg: NAME}} (an indexed or a",
        "    # data argument), or {token: none}: collection-wide, it re-renders every token",
        "    # of the collection when a trait reads it.",
        "    events:",
    ]
    for event in _unique(events):
        # Quoted: an event named On, No or Null would otherwise load as a YAML boolean or null.
        lines.append(f"      {_quoted(event.name)}: {{token: {_token_yaml(event.token)}}}")
    lines += [
        "",
        "kafka:",
        '  bootstrap_servers: ["${DNFT_DEV_KAFKA:-127.0.0.1:9092}"]',
        "",
        "postgres:",
        "  dsn: ${DNFT_DEV_PG_DSN:-postgresql://dnft@127.0.0.1:5432/dnft}",
        "",
        "collections:",
        f"  - file: {_quoted(_rules_file(name))}",
        "",
        "regenerator:",
        "  public_url: http://127.0.0.1:8000   # where `dnft api` serves metadata and images",
        "  storage: {kind: local, path: .dnft/blobs}",
        "",
        "# On-chain announcements (ERC-4906) need a pusher section: see dnft.example.yaml.",
        "",
    ]
    return "\n".join(lines)


def rules_text(events: Sequence[Event], *, name: str) -> str:
    """A trait counting each event of a token; collection-wide events and the announcements
    dnft itself causes are commented out, with why."""
    traits: list[tuple[Event, str, bool, str]] = []  # event, trait, active, why
    taken: set[str] = set()
    for event in events:
        trait = _trait_name(event.name, taken)
        if event.signature in ANNOUNCEMENTS:
            why = "an announcement dnft's pusher causes: a trait on it re-renders after each one"
            traits.append((event, trait, False, why))
        elif event.token is None:
            why = "no token: collection-wide, a trait on it re-renders every token"
            traits.append((event, trait, False, why))
        elif event.token.batch:
            why = f"one event per token id in '{event.token.arg}'"
            if event.token.amount_arg is not None:
                why += f", its amount in '{event.token.amount_arg}'"
            traits.append((event, trait, True, why))
        else:
            traits.append((event, trait, True, f"token id from '{event.token.arg}'"))
    if not any(on for _, _, on, _ in traits):
        # Only collection-wide events: stages need a trait, so the first one counts them.
        first = next((i for i, t in enumerate(traits) if t[0].signature not in ANNOUNCEMENTS), 0)
        event, trait, _, why = traits[first]
        traits[first] = (event, trait, True, why)
    stage_trait = next(n for _, n, a, _ in traits if a)
    holders = _holders_trait(events, taken)
    lines = [
        f"# Collection rules written by `dnft init` for contract {name}: one trait per event.",
        "# Reducers: count, sum / last / first / max / min / distinct (with arg), trait",
        "# (key_arg / value_arg), balance; conditions with where:. Reference: docs/rules.md.",
        f"name: {_quoted(name)}",
        f"contract: {_quoted(name)}    # the contract name in dnft.yaml",
        f"salt: {_quoted(name + '-v1')}    # seeds derive from (salt, token id, state hash)",
        "traits:",
    ]
    for event, trait, on, why in traits:
        lines.append(f"  # {event.described}: {why}")
        line = f"- {{name: {trait}, event: {_quoted(event.name)}, reduce: count}}"
        lines.append(f"  {line}" if on else f"  # {line}")
    lines += holders
    lines += [
        "stages:",
        f"  trait: {stage_trait}",
        "  levels: [{min: 0, name: new}, {min: 1, name: active}, {min: 10, name: veteran}]",
        'prompt: "a {stage} token"',
        "renderer: {kind: procedural}",
        "",
    ]
    return "\n".join(lines)


def _holders_trait(events: Sequence[Event], taken: set[str]) -> list[str]:
    """ERC-1155 (``TransferSingle`` and ``TransferBatch`` of a token): how many hold it, from
    single and batch transfers together (a batch reaches the rules once per id)."""
    transfers = [
        e.name
        for e in _unique(events)
        if e.name in ("TransferSingle", "TransferBatch") and e.token is not None
    ]
    if len(transfers) < 2:
        return []
    name = next(n for n in ("holders", "holder_count", "holders_1155") if n not in taken)
    taken.add(name)
    listed = ", ".join(_quoted(e) for e in transfers)
    return [
        "  # ERC-1155: how many hold the token (reduce: balance; output: holders is the map",
        "  # address -> amount, total the sum held), from single and batch transfers",
        f"  - {{name: {name}, events: [{listed}], reduce: balance, output: count}}",
    ]


def _trait_name(event: str, taken: set[str]) -> str:
    """``TransferSingle`` -> ``transfer_single_count``; unique among ``taken``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", event).lower()
    base = (_NOT_NAME.sub("_", snake).strip("_") or "event")[:30]
    if not base[0].isalpha():
        base = f"e_{base}"[:30]
    name, n = f"{base}_count", 2
    while name in taken:
        name, n = f"{base}_count_{n}", n + 1
    taken.add(name)
    return name


def _token_yaml(token: TokenSource | None) -> str:
    if token is None:
        return "none"
    amount = "" if token.amount_arg is None else f", amount_arg: {_quoted(token.amount_arg)}"
    return f"{{arg: {_quoted(token.arg)}{amount}}}"


def _unique(events: Sequence[Event]) -> list[Event]:
    """One entry per event name (overloads share their token identity in dnft.yaml)."""
    seen: dict[str, Event] = {}
    for event in events:
        seen.setdefault(event.name, event)
    return list(seen.values())


def _quoted(value: str) -> str:
    return orjson.dumps(value).decode()
