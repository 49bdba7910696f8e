"""A collection's rules file: which traits derive from which events and feeds, the evolution
stages, the prompt template and the renderer. Validated at load into frozen models; every error
names the failing key (as ``dnft config check`` does for dnft.yaml).

Example::

    name: sample
    contract: collection            # a contract name from dnft.yaml
    salt: sample-v1                 # seeds derive from (salt, token id, state hash)
    traits:
      - {name: fed, event: Fed, reduce: count}
      - {name: fed_wei, event: Fed, reduce: sum, arg: amount}
      - {name: owner, event: Transfer, reduce: last, arg: to}
      - {name: mood, event: TraitSet, reduce: trait, key: mood, default: calm}
      - {name: market, feed: eth-usd, buckets: [{below: "2000", name: bear},
                                                 {below: "4000", name: calm}, {name: bull}]}
    stages:
      trait: fed
      levels: [{min: 0, name: egg}, {min: 3, name: hatchling}, {min: 10, name: adult}]
    prompt: "a {stage} creature in a {mood} mood, {market} market"
    renderer: {kind: procedural}
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dnft.errors import ConfigError

_NAME = r"^[a-z][a-z0-9_]{0,39}$"
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bucket(_Model):
    """Values below ``below`` (exclusive) fall in this bucket; the last bucket has no bound."""

    name: str = Field(pattern=_NAME)
    below: Decimal | None = None


class Trait(_Model):
    name: str = Field(pattern=_NAME)
    # From events: which event, and how its occurrences reduce to one value.
    event: str | None = None
    reduce: Literal["count", "sum", "last", "trait", "held_since"] | None = None
    arg: str | None = None  # the event argument for sum / last
    key: str | None = None  # the TraitSet key for reduce: trait
    # From a feed: its latest value, raw or bucketed.
    feed: str | None = None
    buckets: list[Bucket] | None = None
    default: str | int | None = None

    @model_validator(mode="after")
    def _source(self) -> Trait:
        if (self.event is None) == (self.feed is None):
            raise ValueError("set exactly one of 'event' or 'feed'")
        if self.event is not None:
            if self.reduce is None:
                raise ValueError("an event trait needs 'reduce'")
            if self.reduce in ("sum", "last") and not self.arg:
                raise ValueError(f"reduce: {self.reduce} needs 'arg' (the event argument)")
            if self.reduce == "trait" and not self.key:
                raise ValueError("reduce: trait needs 'key' (the TraitSet key)")
        if self.buckets is not None:
            if self.feed is None:
                raise ValueError("'buckets' applies to feed traits")
            bounds = [b.below for b in self.buckets]
            if not bounds or bounds[-1] is not None or any(b is None for b in bounds[:-1]):
                raise ValueError("every bucket but the last needs 'below'; the last has none")
            finite = [b for b in bounds if b is not None]
            if any(a >= b for a, b in itertools.pairwise(finite)):
                raise ValueError("bucket bounds must increase")
        return self


class Level(_Model):
    min: Decimal
    name: str = Field(pattern=_NAME)


class Stages(_Model):
    trait: str
    levels: list[Level] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Stages:
        mins = [level.min for level in self.levels]
        if mins != sorted(mins) or len(set(mins)) != len(mins):
            raise ValueError("stage levels must have increasing 'min'")
        return self


class RendererSpec(_Model):
    kind: Literal["procedural", "diffusion"] = "procedural"
    params: dict[str, Any] = {}
    model_dir: Path | None = None  # diffusion: a mounted directory, loaded offline


class Collection(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    contract: str
    salt: str = Field(min_length=1, max_length=200)
    traits: list[Trait] = Field(min_length=1)
    stages: Stages
    prompt: str = Field(min_length=1, max_length=2000)
    renderer: RendererSpec = RendererSpec()
    image_size: int = Field(default=512, ge=64, le=2048)
    token_name: str = "{collection} #{token_id}"
    description: str = ""
    external_url: str | None = None

    @model_validator(mode="after")
    def _references(self) -> Collection:
        names = [t.name for t in self.traits]
        if len(set(names)) != len(names):
            raise ValueError("trait names must be unique")
        if self.stages.trait not in names:
            raise ValueError(f"stages.trait {self.stages.trait!r} is not a trait")
        known = {*names, "stage", "token_id", "collection"}
        unknown = sorted(set(_PLACEHOLDER.findall(self.prompt)) - known)
        if unknown:
            raise ValueError(f"prompt uses unknown placeholders {unknown} (known: {sorted(known)})")
        if self.renderer.kind == "diffusion" and self.renderer.model_dir is None:
            raise ValueError("renderer.kind diffusion needs renderer.model_dir")
        return self

    @property
    def feeds(self) -> set[str]:
        return {t.feed for t in self.traits if t.feed is not None}


def load_collection(path: str | Path) -> Collection:
    """Read and validate a collection file; raises ConfigError naming the failing key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError("", f"cannot read collection file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}") from None
    return collection_from_mapping(raw, source=str(path))


def collection_from_mapping(raw: Any, source: str = "collection") -> Collection:
    if not isinstance(raw, dict):
        raise ConfigError("", f"{source} must hold a mapping")
    try:
        return Collection.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(_label(part, raw, error["loc"][:i]) for i, part in enumerate(error["loc"]))
        raise ConfigError(f"{source}: {key}".rstrip(": "), error["msg"]) from None


def _label(part: int | str, raw: Any, parents: tuple[int | str, ...]) -> str:
    if isinstance(part, int):
        node = raw
        for p in parents:
            if isinstance(node, dict):
                node = node.get(p)
            elif isinstance(node, list) and isinstance(p, int) and p < len(node):
                node = node[p]
            else:
                node = None
        if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
            return f"[{node[part].get('name', part)}]"
        return f"[{part}]"
    return str(part)
