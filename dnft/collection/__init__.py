"""Collections: rules files (``rules``), the contracts they follow (``bound``) and their ABI
events (``abi``), token states derived from events and feeds (``state``, through ``reducers``
and CEL expressions: ``cel``) and render seeds (``seeds``). Ground: imports no daemon package."""

from dnft.collection.bound import BoundCollection, load_bound_collections
from dnft.collection.rules import (
    Bucket,
    Collection,
    Guardrails,
    Level,
    RendererSpec,
    Stages,
    Trait,
    Where,
    collection_from_mapping,
    load_collection,
)
from dnft.collection.seeds import MAX_SEED, attempt_seed, derive_seed, reroll_seed
from dnft.collection.state import TokenEvent, TokenState, derive_state, stage_of

__all__ = [
    "MAX_SEED",
    "BoundCollection",
    "Bucket",
    "Collection",
    "Guardrails",
    "Level",
    "RendererSpec",
    "Stages",
    "TokenEvent",
    "TokenState",
    "Trait",
    "Where",
    "attempt_seed",
    "collection_from_mapping",
    "derive_seed",
    "derive_state",
    "load_bound_collections",
    "load_collection",
    "reroll_seed",
    "stage_of",
]
