"""Collections bound to the contracts they follow: the rules files dnft.yaml names, each with
its contract's chain id and address. Loaded once at start-up by every part that reads rules
(planner, render workers, API, pusher, audit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dnft.collection.abi import read_abi_events
from dnft.collection.rules import Collection, load_collection
from dnft.config import ContractSettings, Settings
from dnft.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BoundCollection:
    """A collection with the contract it follows on chain."""

    collection: Collection
    chain_id: int
    contract: str  # lowercase 0x address


def load_bound_collections(settings: Settings) -> list[BoundCollection]:
    """Each configured collection file, bound to its contract's chain and address."""
    out: list[BoundCollection] = []
    contracts = {c.name: c for c in settings.contracts}
    for i, ref in enumerate(settings.collections):
        named = load_collection(ref.file).contract
        contract = contracts.get(named)
        if contract is None:
            raise ConfigError(
                f"collections[{i}]",
                f"{ref.file} names contract {named!r}, which dnft.yaml does not "
                f"configure (known: {sorted(contracts)})",
            )
        # Again, now checked against the events the indexer publishes for this contract.
        limited = " limited by include_events" if contract.include_events is not None else ""
        label = f"contract {named!r} ({contract.abi}{limited})"
        collection = load_collection(ref.file, _indexed_events(contract), label)
        chain_id = settings.network(contract.network).chain_id
        out.append(BoundCollection(collection, chain_id, contract.address.lower()))
    if not out:
        raise ConfigError("collections", "no collection is configured")
    return out


def _indexed_events(contract: ContractSettings) -> dict[str, dict[str, str]]:
    """The contract's ABI events the indexer decodes (``include_events`` when set)."""
    events = read_abi_events(Path(contract.abi), f"contracts[{contract.name}].abi")
    if contract.include_events is None:
        return events
    return {name: args for name, args in events.items() if name in contract.include_events}
