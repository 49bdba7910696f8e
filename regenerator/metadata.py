"""ERC-721 metadata for a rendered token state, with the provenance block to verify it.

Marketplaces read ``name``, ``description``, ``image``, ``external_url``, ``attributes`` (with
``display_type`` for numbers) and ``background_color``. ``provenance`` records everything
needed to re-render and compare: the state and its hash, the triggering events and feed
rounds, the renderer and its version, seed, prompt and the image's sha256.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from dnft.collection import Collection, TokenState
from dnft.numbers import BadNumber, parse_decimal
from dnft.sanitize import for_html, for_prompt
from regenerator.renderers.base import RenderRequest, RenderResult

_FIELDS = string.Formatter()


def render_prompt(collection: Collection, state: TokenState) -> str:
    """The collection's prompt with the token's traits filled in: each sanitised, held to
    its allow-list (else its default), and the collection's ``prompt_deny`` words removed
    from each value and from the whole prompt."""
    values = {k: collection.prompt_value(k, v) for k, v in state.traits.items()}
    values |= {
        "stage": state.stage,
        "token_id": str(state.token_id),
        "collection": for_prompt(collection.name),
    }
    return for_prompt(
        collection.prompt.format_map(values), max_chars=1000, deny=collection.prompt_deny
    )


def bucket_of(collection: Collection, state: TokenState) -> tuple[list[str], str]:
    """The first bucketed feed trait's bucket names and the state's bucket ("none" if none)."""
    for trait in collection.traits:
        if trait.buckets is not None:
            names = [b.name for b in trait.buckets]
            value = state.traits.get(trait.name, "")
            return ["unknown", *names], value if value in names else "unknown"
    return ["none"], "none"


def render_request(collection: Collection, state: TokenState, seed: int) -> RenderRequest:
    """What a renderer is asked to draw for ``state`` (render workers and ``dnft verify``)."""
    _, bucket = bucket_of(collection, state)
    return RenderRequest(
        token_id=state.token_id,
        traits=state.traits,
        stage=state.stage,
        bucket=bucket,
        seed=seed,
        prompt=render_prompt(collection, state),
        size=collection.image_size,
        params=collection.renderer.params,
    )


def build_metadata(
    collection: Collection,
    state: TokenState,
    result: RenderResult,
    *,
    image_uri: str,
    image_cid: str,
    triggered_by: list[str],
    prompt: str,
) -> dict[str, Any]:
    attributes: list[dict[str, Any]] = [{"trait_type": "stage", "value": state.stage}]
    for name, value in sorted(state.traits.items()):
        number = _number(value)
        if number is not None and abs(number) < 2**53:
            attributes.append({"trait_type": name, "value": number, "display_type": "number"})
        else:
            attributes.append({"trait_type": name, "value": for_html(value, max_chars=100)})
    token_name = collection.token_name.format(collection=collection.name, token_id=state.token_id)
    document: dict[str, Any] = {
        "name": for_html(token_name, max_chars=200),
        "description": collection.description,
        "image": image_uri,
        "attributes": attributes,
        "provenance": {
            "collection": collection.name,
            "token_id": str(state.token_id),
            "state": {"traits": state.traits, "stage": state.stage},
            "state_hash": state.state_hash,
            "triggered_by": triggered_by,
            "renderer": result.renderer,
            "renderer_version": result.renderer_version,
            "seed": provenance_seed(result.provenance),
            "prompt": prompt,
            "image_sha256": result.sha256,
            "image_cid": image_cid,
            "render": dict(result.provenance),
        },
    }
    if collection.external_url:
        document["external_url"] = collection.external_url.format(token_id=state.token_id)
    return document


def _number(value: str) -> int | float | None:
    """A trait shown as a number attribute, or None to show it as text.

    Trait values are holders' strings: ``"1e999999999"`` is refused by the bounded parser
    (and shown as text) before ``int()`` could expand its billion digits."""
    try:
        number = parse_decimal(value)
    except BadNumber:
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def provenance_seed(provenance: Mapping[str, Any]) -> int:
    return int(provenance.get("seed", 0))
