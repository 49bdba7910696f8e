"""A collection's rules file: which traits derive from which events and feeds, the evolution
stages, the prompt template and the renderer. Validated at load into frozen models; every error
names the file and the failing key (as ``dnft config check`` does for dnft.yaml), and, once
bound to its contract, the event or argument its ABI lacks. Reference: docs/rules.md.

Example::

    name: sample
    contract: collection            # a contract name from dnft.yaml
    salt: sample-v1                 # seeds derive from (salt, token id, state hash)
    traits:
      - {name: fed, event: Fed, reduce: count}
      - {name: fed_wei, event: Fed, reduce: sum, arg: amount}
      - {name: owner, event: Transfer, reduce: last, arg: to}
      - {name: mood, event: TraitSet, reduce: trait, key: mood, default: calm,
         allow: [calm, happy, sleepy]}     # in the prompt: any other value becomes calm
      - {name: market, feed: eth-usd, buckets: [{below: "2000", name: bear},
                                                 {below: "4000", name: calm}, {name: bull}]}
      - {name: whales, event: Fed, reduce: count, where: 'args.amount > 1000'}   # CEL
      - {name: moods, event: TraitSet, reduce: distinct, arg: value,
         where: {arg: key, equals: mood}}
      - {name: power, expr: 'traits.fed * 2 + (traits.mood == "happy" ? 1 : 0)'}  # computed
      # ERC-1155: who holds the token, from single and batch transfers (a batch's part holds
      # its own id and amount); CEL reads size(traits.holders), traits.holders["0x..."]
      - {name: holders, events: [TransferSingle, TransferBatch], reduce: balance}
    stages:
      trait: fed                      # any trait, computed ones included
      levels: [{min: 0, name: egg}, {min: 3, name: hatchling}, {min: 10, name: adult}]
    prompt: "a {stage} creature in a {mood} mood, {market} market"
    prompt_deny: [nsfw, gore]       # removed from every prompt (whole words)
    renderer: {kind: procedural}
    publish: auto                   # or review: new versions wait for a curator (dnft api /curate)
    guardrails: {min_entropy_bits: 0.5, min_stddev: 2, duplicate_distance: 2, max_attempts: 3}
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dnft.collection.abi import EventArgs
from dnft.collection.cel import MAX_EXPRESSION, compile_expression
from dnft.collection.reducers import EXPR_VARIABLES, REDUCERS, WHERE_VARIABLES, Reducer
from dnft.config import read_yaml_file
from dnft.errors import ConfigError
from dnft.sanitize import for_prompt

_NAME = r"^[a-z][a-z0-9_]{0,39}$"
_PLACEHOLDER_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TOKEN_NAME_FIELDS = frozenset({"collection", "token_id"})
_BALANCE_KEYS = frozenset({"from_arg", "to_arg", "amount_arg", "output", "max_holders"})


def _check_template(template: str) -> str:
    """Refuse what ``str.format_map`` would fail on (or misuse) at render time: unbalanced
    braces, positional fields, attribute/index access (``{stage.__class__}``), conversions
    and format specs. Only plain ``{name}`` placeholders; a literal brace is ``{{`` / ``}}``.
    """
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template)]
    except ValueError as exc:
        raise ValueError(f"{exc} (write a literal brace as '{{{{' or '}}}}')") from None
    for field, spec, conversion in fields:
        if field is None:
            continue
        if not _PLACEHOLDER_NAME.fullmatch(field) or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise ValueError(f"placeholder {shown!r} is not a plain {{name}}")
    return template


def prompt_key(value: str) -> str:
    """How allow-lists compare values: as sanitised for a prompt, case-insensitively."""
    return for_prompt(value).casefold()


def _template_fields(template: str) -> set[str]:
    """The placeholder names of a template that passed :func:`_check_template`."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bucket(_Model):
    """Values below ``below`` (exclusive) fall in this bucket; the last bucket has no bound."""

    name: str = Field(pattern=_NAME)
    below: Decimal | None = None


class Where(_Model):
    """A condition on an event argument: ``{arg: kind, equals: gold}`` or ``one_of: [a, b]``.
    Integers (a YAML int, or an integer argument of the ABI) compare as numbers, addresses
    case-insensitively, everything else as exact text."""

    arg: str = Field(min_length=1, max_length=100)
    equals: str | int | bool | None = None
    one_of: list[str | int] | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_test(self) -> Where:
        if (self.equals is None) == (self.one_of is None):
            raise ValueError("set exactly one of 'equals' or 'one_of'")
        return self


class Trait(_Model):
    name: str = Field(pattern=_NAME)
    # From events: which event (or events, reduced together in chain order), and how their
    # occurrences reduce to one value (dnft.collection.reducers: REDUCERS documents each).
    event: str | None = None
    events: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, min_length=1, max_length=16
    )
    reduce: Reducer | None = None
    arg: str | None = None  # the event argument of sum / last / first / max / min / distinct
    key: str | None = None  # reduce: trait: the key whose value this trait follows
    key_arg: str = "key"  # reduce: trait: the argument holding the key
    value_arg: str = "value"  # reduce: trait: the argument holding the value
    # reduce: balance: each transfer moves amount_arg (default: its value / values / amount
    # argument, else 1) from from_arg to to_arg; output is the holder map, their total or
    # their count; the map keeps the max_holders largest.
    from_arg: str = "from"
    to_arg: str = "to"
    amount_arg: str | None = None
    output: Literal["holders", "total", "count"] = "holders"
    max_holders: int = Field(default=32, ge=1, le=256)
    # Only the events that pass: a condition on one argument, or a CEL expression over 'args'.
    where: Where | Annotated[str, Field(min_length=1, max_length=MAX_EXPRESSION)] | None = None
    # From a feed: its latest value, raw or bucketed.
    feed: str | None = None
    buckets: list[Bucket] | None = None
    # Computed: a CEL expression over 'traits' (event and feed traits, then computed traits
    # listed above this one). A runtime error gives the default.
    expr: Annotated[str, Field(min_length=1, max_length=MAX_EXPRESSION)] | None = None
    default: str | int | None = None
    # Prompt allow-list: a value outside it reaches the prompt as the trait's default
    # (compared after prompt sanitising, case-insensitively). Needs 'default' among them.
    allow: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )

    @field_validator("where")
    @classmethod
    def _where_compiles(cls, where: Where | str | None) -> Where | str | None:
        if isinstance(where, str):
            compile_expression(where, WHERE_VARIABLES)
        return where

    @field_validator("expr")
    @classmethod
    def _expr_compiles(cls, expr: str | None) -> str | None:
        if expr is not None:
            compile_expression(expr, EXPR_VARIABLES)
        return expr

    @model_validator(mode="after")
    def _allowed_default(self) -> Trait:
        if self.allow is None:
            return self
        if self.default is None:
            raise ValueError("'allow' needs a 'default' (what a value outside it becomes)")
        if prompt_key(str(self.default)) not in {prompt_key(v) for v in self.allow}:
            raise ValueError(f"'default' {self.default!r} is not among 'allow'")
        return self

    @model_validator(mode="after")
    def _source(self) -> Trait:
        if self.event is not None and self.events is not None:
            raise ValueError("set one of 'event' or 'events' (a list), not both")
        if sum(s is not None for s in (self.event or self.events, self.feed, self.expr)) != 1:
            raise ValueError("set exactly one of 'event' (or 'events'), 'feed' or 'expr'")
        balance_keys = sorted(self.model_fields_set & _BALANCE_KEYS)
        if balance_keys and self.reduce != "balance":
            raise ValueError(f"{balance_keys} apply to reduce: balance")
        if self.events is not None and len(set(self.events)) != len(self.events):
            raise ValueError("'events' lists an event twice")
        if self.event_names:
            if self.reduce is None:
                raise ValueError("an event trait needs 'reduce'")
            if REDUCERS[self.reduce].needs_arg and not self.arg:
                raise ValueError(f"reduce: {self.reduce} needs 'arg' (the event argument)")
            if self.reduce == "trait" and not self.key:
                raise ValueError("reduce: trait needs 'key' (the key whose value it follows)")
        elif self.reduce is not None or self.where is not None:
            raise ValueError("'reduce' and 'where' apply to event traits")
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

    @property
    def event_names(self) -> tuple[str, ...]:
        """The events an event trait reduces (``event`` or ``events``); empty for others."""
        if self.events is not None:
            return tuple(self.events)
        return () if self.event is None else (self.event,)

    def event_args(self) -> list[tuple[str, str]]:
        """(key, argument) for each event argument this trait reads by name."""
        out: list[tuple[str, str]] = []
        if self.reduce == "trait":
            out += [("key_arg", self.key_arg), ("value_arg", self.value_arg)]
        elif self.reduce == "balance":
            out += [("from_arg", self.from_arg), ("to_arg", self.to_arg)]
            if self.amount_arg is not None:
                out.append(("amount_arg", self.amount_arg))
        elif self.arg is not None:
            out.append(("arg", self.arg))
        if isinstance(self.where, Where):
            out.append(("where.arg", self.where.arg))
        elif isinstance(self.where, str):
            fields = compile_expression(self.where, WHERE_VARIABLES).fields
            out += sorted(("where", field) for _, field in fields)
        return out


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


# Renderer kinds dnft ships; others come from installed packages through this entry point
# group (regenerator/renderers/registry.py builds them, docs/renderers.md).
RENDERER_ENTRY_POINTS = "dnft.renderers"
BUILTIN_RENDERERS = ("procedural", "diffusion", "layers")
# Keys every renderer kind accepts; any other key is the kind's own setting (layers, plugins).
_COMMON_RENDERER_KEYS = frozenset({"kind", "params", "model_dir", "lora"})


def renderer_kinds() -> list[str]:
    """The built-in renderer kinds and those installed packages register (entry point names);
    only names are read here, nothing is imported."""
    found = {ep.name for ep in entry_points(group=RENDERER_ENTRY_POINTS)}
    return sorted(found | set(BUILTIN_RENDERERS))


class RendererSpec(BaseModel):
    """``renderer: {kind: NAME, ...}``. Keys beyond the common ones are the kind's own
    settings (``settings``), validated by its renderer when it is built: only ``layers`` and
    plugin kinds take any."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str = Field(default="procedural", pattern=r"^[a-z][a-z0-9_.-]{0,62}$")
    params: dict[str, Any] = {}
    model_dir: Path | None = None  # diffusion: a mounted directory, loaded offline
    # diffusion: LoRA (or other adapter) weights, a file or directory inside model_dir, loaded
    # with diffusers' load_lora_weights; its sha256 goes into every render's provenance.
    lora: Path | None = None

    @field_validator("kind")
    @classmethod
    def _installed_kind(cls, kind: str) -> str:
        # Entry points are read only for a kind dnft does not ship (reading them scans the
        # installed packages' metadata).
        if kind not in BUILTIN_RENDERERS and kind not in (kinds := renderer_kinds()):
            raise ValueError(f"unknown renderer kind {kind!r} (installed kinds: {kinds})")
        return kind

    @model_validator(mode="after")
    def _own_settings(self) -> RendererSpec:
        if self.kind in ("procedural", "diffusion") and self.settings:
            raise ValueError(
                f"renderer kind {self.kind} takes no settings {sorted(self.settings)} "
                f"(its keys: {sorted(_COMMON_RENDERER_KEYS)})"
            )
        return self

    @property
    def settings(self) -> dict[str, Any]:
        """The kind's own settings: every key but kind, params, model_dir and lora."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _lora_inside_model_dir(self) -> RendererSpec:
        if self.lora is None:
            return self
        if self.kind != "diffusion" or self.model_dir is None:
            raise ValueError("renderer.lora needs kind: diffusion and a model_dir")
        if self.lora.is_absolute() or ".." in self.lora.parts or not self.lora.parts:
            raise ValueError(
                f"renderer.lora must be a relative path inside model_dir, got {str(self.lora)!r}"
            )
        return self

    @property
    def lora_path(self) -> Path | None:
        """The LoRA weights' full path (inside model_dir), or None."""
        if self.lora is None or self.model_dir is None:
            return None
        return self.model_dir / self.lora


class Guardrails(_Model):
    """Checks every render must pass before its version can be public (regenerator/guardrails.py).
    A failed render is retried with the next seed, ``max_attempts`` renders in all."""

    enabled: bool = True
    # Blank or near-uniform: grey-level entropy (bits, 0-8) and standard deviation (0-255).
    min_entropy_bits: float = Field(default=0.5, ge=0, le=8)
    min_stddev: float = Field(default=2.0, ge=0, le=128)
    # Near duplicate: at most this many differing bits (of 64) between perceptual hashes.
    # Off by default: renders of equal states look alike by design (procedural art barely
    # depends on the seed), so a collection opts in. At most 3, so the check is an index
    # lookup (guardrails.MAX_INDEXED_DISTANCE).
    duplicate_distance: int | None = Field(default=None, ge=0, le=3)
    # What a render is compared with: the token's previous public art, and/or every other
    # token's current art in the collection.
    duplicate_of: list[Literal["previous", "collection"]] = ["previous", "collection"]
    max_attempts: int = Field(default=3, ge=1, le=20)


class Collection(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    contract: str
    salt: str = Field(min_length=1, max_length=200)
    traits: list[Trait] = Field(min_length=1)
    stages: Stages
    prompt: str = Field(min_length=1, max_length=2000)
    renderer: RendererSpec = RendererSpec()
    image_size: int = Field(default=512, ge=64, le=2048)
    token_name: str = "{collection} #{token_id}"  # noqa: S105 (a name template, not a secret)
    description: str = ""
    external_url: str | None = None
    # auto: a version is public once its guardrails pass; review: it waits for a curator.
    publish: Literal["auto", "review"] = "auto"
    guardrails: Guardrails = Guardrails()
    # Words and phrases removed from every prompt (trait values and the whole prompt), on top
    # of dnft.sanitize's instruction-like phrases; whole words, case-insensitive.
    prompt_deny: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default=[], max_length=1000
    )
    # The ABI's events (name -> argument -> type) once bound to a contract: CEL sees integer
    # arguments as numbers. Empty for rules loaded without an ABI.
    _events: dict[str, dict[str, str]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _bind_events(self, info: ValidationInfo) -> Collection:
        events = (info.context or {}).get("events")
        if events is not None:
            self._events = {name: dict(args) for name, args in events.items()}
        return self

    @field_validator("prompt", "token_name")
    @classmethod
    def _template(cls, template: str) -> str:
        return _check_template(template)

    @field_validator("token_name")
    @classmethod
    def _token_name_fields(cls, template: str) -> str:
        unknown = sorted(_template_fields(template) - _TOKEN_NAME_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown placeholders {unknown} (known: {sorted(_TOKEN_NAME_FIELDS)})"
            )
        return template

    @model_validator(mode="after")
    def _references(self) -> Collection:
        names = [t.name for t in self.traits]
        if len(set(names)) != len(names):
            raise ValueError("trait names must be unique")
        if self.stages.trait not in names:
            raise ValueError(f"stages.trait {self.stages.trait!r} is not a trait")
        known = {*names, "stage", "token_id", "collection"}
        fields = _template_fields(self.prompt)
        unknown = sorted(fields - known)
        if unknown:
            raise ValueError(f"prompt uses unknown placeholders {unknown} (known: {sorted(known)})")
        unused = [t.name for t in self.traits if t.allow is not None and t.name not in fields]
        if unused:
            raise ValueError(f"traits {unused} have 'allow' but the prompt does not use them")
        if self.renderer.kind == "diffusion" and self.renderer.model_dir is None:
            raise ValueError("renderer.kind diffusion needs renderer.model_dir")
        return self

    def prompt_value(self, trait: str, value: str) -> str:
        """A trait's value as it may enter the prompt: sanitised, denied words removed, and
        the trait's default when it has an allow-list that does not hold it."""
        clean = for_prompt(value, deny=self.prompt_deny)
        rule = next((t for t in self.traits if t.name == trait), None)
        if rule is None or rule.allow is None:
            return clean
        if prompt_key(clean) in {prompt_key(v) for v in rule.allow}:
            return clean
        return for_prompt(str(rule.default), deny=self.prompt_deny)

    @property
    def feeds(self) -> set[str]:
        return {t.feed for t in self.traits if t.feed is not None}

    def arg_types(self, event: str) -> Mapping[str, str]:
        """The ABI types of ``event``'s arguments (empty when loaded without an ABI)."""
        return self._events.get(event, {})

    def trait_arg_types(self, trait: Trait) -> Mapping[str, str]:
        """The ABI types of the arguments of the events ``trait`` reduces (the first event
        naming an argument gives its type)."""
        if len(trait.event_names) == 1:
            return self.arg_types(trait.event_names[0])
        types: dict[str, str] = {}
        for event in trait.event_names:
            for name, arg_type in self.arg_types(event).items():
                types.setdefault(name, arg_type)
        return types

    @property
    def read_events(self) -> frozenset[str]:
        """Every event a trait reduces: only these can change a token's state."""
        return frozenset(name for t in self.traits for name in t.event_names)


def load_collection(
    path: str | Path, events: EventArgs | None = None, contract: str = "contract"
) -> Collection:
    """Read and validate a collection file; raises ConfigError naming the file and the failing
    key. With ``events`` (the contract's ABI events), every event and argument the rules name
    must exist in it."""
    path = Path(path)
    raw = read_yaml_file(path, "collection file")
    return collection_from_mapping(raw, source=str(path), events=events, contract=contract)


def collection_from_mapping(
    raw: Any,
    source: str = "collection",
    events: EventArgs | None = None,
    contract: str = "contract",
) -> Collection:
    if not isinstance(raw, dict):
        raise ConfigError("", f"{source} must hold a mapping")
    try:
        context = None if events is None else {"events": events}
        collection = Collection.model_validate(raw, context=context)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(_label(part, raw, error["loc"][:i]) for i, part in enumerate(error["loc"]))
        raise ConfigError(f"{source}: {key}".rstrip(": "), error["msg"]) from None
    _check_computed(collection, source)
    if events is not None:
        _check_abi(collection, events, source, contract)
    return collection


def _check_computed(collection: Collection, source: str) -> None:
    """A computed trait reads event and feed traits and the computed traits above it."""
    known = {t.name for t in collection.traits if t.expr is None}
    for trait in collection.traits:
        if trait.expr is None:
            continue
        fields = compile_expression(trait.expr, EXPR_VARIABLES).fields
        unknown = sorted(field for _, field in fields if field not in known)
        if unknown:
            raise ConfigError(
                f"{source}: traits.[{trait.name}].expr",
                f"reads traits {unknown}, which are not event or feed traits nor computed "
                f"traits listed above it (known: {sorted(known)})",
            )
        known.add(trait.name)


def _check_abi(collection: Collection, events: EventArgs, source: str, contract: str) -> None:
    for trait in collection.traits:
        key = f"{source}: traits.[{trait.name}]"
        for event in trait.event_names:
            args = events.get(event)
            if args is None:
                raise ConfigError(
                    f"{key}.{'event' if trait.events is None else 'events'}",
                    f"event {event!r} is not in the ABI of {contract} "
                    f"(its events: {sorted(events)})",
                )
            for field, arg in trait.event_args():
                if arg not in args:
                    raise ConfigError(
                        f"{key}.{field}",
                        f"argument {arg!r} is not an argument of event "
                        f"{event}({', '.join(args)}) in the ABI of {contract}",
                    )


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
