"""Collections bound to the contracts they follow: the rules files dnft.yaml names, each with
its contract's chain id and address. Loaded once at start-up by every part that reads rules
(planner, render workers, API, pusher, audit)."""

from __future__ import annotations

from dataclasses import dataclass

from dnft.collection.rules import Collection, load_collection
from dnft.config import Settings
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
        collection = load_collection(ref.file)
        contract = contracts.get(collection.contract)
        if contract is None:
            raise ConfigError(
                f"collections[{i}]",
                f"{ref.file} names contract {collection.contract!r}, which dnft.yaml does not "
                f"configure (known: {sorted(contracts)})",
            )
        chain_id = settings.network(contract.network).chain_id
        out.append(BoundCollection(collection, chain_id, contract.address.lower()))
    if not out:
        raise ConfigError("collections", "no collection is configured")
    return out
