"""``pusher``: how new metadata versions are announced on chain, and with which key."""

from __future__ import annotations

import re
import string
from decimal import Decimal
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from dnft.config.base import NAME_PATTERN, ConfigModel
from dnft.config.chain import ContractSettings

# How a call's arguments are built from the updates it announces (a closed set): ``range``
# (from, to) per run of consecutive ids; ``id`` one call per token; ``ids`` a list of ids;
# ``id_uri`` one id and its URI; ``ids_uris`` two lists. The parameter types each needs:
CallShape = Literal["range", "id", "ids", "id_uri", "ids_uris"]
CALL_SHAPES: Final[dict[str, tuple[str, ...]]] = {
    "range": ("uint256", "uint256"),
    "id": ("uint256",),
    "ids": ("uint256[]",),
    "id_uri": ("uint256", "string"),
    "ids_uris": ("uint256[]", "string[]"),
}
URI_SHAPES: Final = frozenset({"id_uri", "ids_uris"})
# The calls the named modes make (they predate ``mode: call`` and mean exactly these).
MODE_CALLS: Final[dict[str, tuple[str, CallShape]]] = {
    "erc4906": ("refreshMetadata(uint256,uint256)", "range"),
    "token-uri": ("setTokenURIs(uint256[],string[])", "ids_uris"),
}
URI_FIELDS: Final = frozenset({"cid", "token_id", "version"})
_SIGNATURE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)\(([A-Za-z0-9\[\], ]*)\)")
_TYPE = re.compile(r"[a-z][a-z0-9]*(\[[0-9]*\])*")
_ALIASES: Final = {"uint": "uint256", "uint[]": "uint256[]"}


def parse_signature(text: str) -> tuple[str, tuple[str, ...]]:
    """``"setURI(uint256, string)"`` -> ``("setURI", ("uint256", "string"))``; ``uint`` is
    ``uint256`` (the selector hashes the canonical form). Raises ValueError."""
    match = _SIGNATURE.fullmatch(text.strip())
    raw = [t.strip() for t in match.group(2).split(",")] if match and match.group(2).strip() else []
    if match is None or not all(_TYPE.fullmatch(t) for t in raw):
        raise ValueError(
            f"{text!r} is not an ABI function signature like 'setURI(uint256,string)'"
            " (types only, no parameter names)"
        )
    return match.group(1), tuple(_ALIASES.get(t, t) for t in raw)


def canonical_signature(text: str, shape: str) -> str:
    """The canonical signature of ``text`` once its parameters are checked against what
    ``shape`` passes. Raises ValueError saying what differs."""
    name, types = parse_signature(text)
    wanted = CALL_SHAPES[shape]
    if types != wanted:
        raise ValueError(
            f"{name}({','.join(types)}) does not take what args {shape!r} passes:"
            f" ({','.join(wanted)})"
        )
    return f"{name}({','.join(types)})"


def check_uri_template(template: str) -> str:
    """Only plain ``{cid}``, ``{token_id}``, ``{version}`` placeholders (a literal brace is
    ``{{``/``}}``), and ``{cid}`` or ``{version}``: a new version must make a new URI."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc} (write a literal brace as '{{{{' or '}}}}')") from None
    fields: set[str] = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in URI_FIELDS or spec or conversion:
            raise ValueError(
                f"placeholder {{{field}}} is not one of {sorted(URI_FIELDS)} as a plain {{name}}"
            )
        fields.add(field)
    if not fields & {"cid", "version"}:
        raise ValueError("uri_template must contain {cid} or {version}")
    return template


class PusherCollectionSettings(ConfigModel):
    """How one contract's new metadata versions are announced on chain."""

    contract: str  # a name from `contracts`
    # erc4906: refreshMetadata(from, to) emits MetadataUpdate / BatchMetadataUpdate;
    # token-uri: setTokenURIs(ids, uris) stores each token's new URI (also ERC-4906 events);
    # call: the contract's own `function`, its arguments built as `args` says;
    # none: nothing is announced (metadata served at the contract's base URI).
    mode: Literal["erc4906", "token-uri", "call", "none"] = "erc4906"
    # mode call: how the arguments are built (range | id | ids | id_uri | ids_uris).
    args: CallShape | None = Field(default=None, validate_default=True)
    # mode call: the ABI function, types only, e.g. "setURI(uint256,string)".
    function: str | None = Field(default=None, max_length=200, validate_default=True)
    # URI-carrying calls: the URI written on chain; {cid}, {token_id}, {version}.
    uri_template: str = "ipfs://{cid}"
    # Hold a version's on-chain announcement until the chain events its state follows are
    # this final (the node's safe / finalized block); head: at once. The gallery shows it at
    # once either way; a held version that a reorg (or a newer version) replaces is dropped.
    announce_after: Literal["head", "safe", "finalized"] = "head"

    @field_validator("args")
    @classmethod
    def _args_with_call(cls, args: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if mode == "call" and args is None:
            raise ValueError(f"mode call needs args (one of {sorted(CALL_SHAPES)})")
        if mode != "call" and args is not None:
            raise ValueError(f"only with mode call (mode {mode!r} makes its own call)")
        return args

    @field_validator("function")
    @classmethod
    def _function_matches_args(cls, function: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if mode != "call":
            if function is not None:
                raise ValueError(f"only with mode call (mode {mode!r} makes its own call)")
            return None
        if function is None:
            raise ValueError("mode call needs a function, e.g. 'setURI(uint256,string)'")
        shape = info.data.get("args")
        return function if shape is None else canonical_signature(function, shape)

    @field_validator("uri_template")
    @classmethod
    def _uri_template(cls, template: str) -> str:
        return check_uri_template(template)

    @property
    def call(self) -> tuple[str, CallShape] | None:
        """(canonical signature, args) of the call announcing updates; None for mode none."""
        if self.mode == "none":
            return None
        if self.mode == "call":
            assert self.function is not None  # validated: mode call has both
            assert self.args is not None
            return self.function, self.args
        return MODE_CALLS[self.mode]


class PusherSignerSettings(ConfigModel):
    """Where the pusher's private key comes from; the key itself is never in the config."""

    key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    key_file: Path | None = None  # e.g. a mounted Kubernetes secret

    @model_validator(mode="after")
    def _one_of(self) -> PusherSignerSettings:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("set exactly one of 'key_env' or 'key_file'")
        return self


class PusherFeeSettings(ConfigModel):
    """EIP-1559 fees. Caps are generous on purpose: only base fee + tip is charged, while an
    underpriced transaction silently leaves a node's pool."""

    priority_fee_gwei: Decimal = Field(default=Decimal("1.5"), gt=0)
    # maxFeePerGas = base fee * this + tip: 3 survives about 9 consecutive full blocks.
    base_fee_multiplier: Decimal = Field(default=Decimal(3), ge=1, le=100)
    min_max_fee_gwei: Decimal = Field(default=Decimal(10), gt=0)
    # Never sign above this maxFeePerGas (a replacement that would needs an operator).
    max_fee_gwei: Decimal = Field(default=Decimal(500), gt=0)
    # A replacement must raise tip and max fee by at least 10% (geth's rule).
    bump_percent: int = Field(default=15, ge=10, le=1_000)

    @model_validator(mode="after")
    def _cap(self) -> PusherFeeSettings:
        if self.min_max_fee_gwei > self.max_fee_gwei:
            raise ValueError("min_max_fee_gwei is greater than max_fee_gwei")
        return self


class PusherSettings(ConfigModel):
    """``dnft pusher``: announce new metadata versions on chain, each exactly once."""

    group: str = "dnft-pusher"
    collections: list[PusherCollectionSettings] = []
    # The key every network's pushes are signed with, unless `signers` names another.
    signer: PusherSignerSettings | None = None
    # A key per network name, overriding `signer` there: {base: {key_env: BASE_KEY}}. Each
    # network's transactions (nonces, rate cap) are then scoped to its own sender address.
    signers: dict[str, PusherSignerSettings] = {}
    # Updates of a contract are gathered this long (from the oldest waiting) into one plan.
    window_s: float = Field(default=10.0, ge=0, le=3_600)
    # Marketplaces rate-limit refreshes; also bounds spend if something loops.
    max_transactions_per_minute: int = Field(default=12, ge=1, le=10_000)
    # Ids per call: range calls (erc4906) cover at most max_range_size consecutive ids; list
    # calls (token-uri, ids, ids_uris) at most max_uris_per_transaction ids; id and id_uri
    # calls one id each (the transaction rate cap bounds those).
    max_range_size: int = Field(default=10_000, ge=1, le=10_000_000)
    max_uris_per_transaction: int = Field(default=100, ge=1, le=2_000)
    # A push counts once this many blocks hold it (1: the block it was mined in).
    confirmations: int = Field(default=3, ge=1, le=10_000)
    # Unmined this long after signing: replaced with bumped fees (same nonce).
    replace_after_s: float = Field(default=60.0, gt=0, le=86_400)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    fees: PusherFeeSettings = PusherFeeSettings()
    balance_every_s: float = Field(default=30.0, gt=0, le=86_400)
    # Below this the signer's balance is logged as a warning (and alerted on by rules).
    low_balance_wei: int = Field(default=10**17, ge=0)
    # The advisory-lock scope: one leading pusher per scope. One pusher process pushes for
    # every network it is given; to run one pusher per chain (`dnft pusher --network X`),
    # give each its own scope (DNFT_PUSHER__LEADER_SCOPE=X).
    leader_scope: str = Field(default="default", pattern=NAME_PATTERN)

    @property
    def announcing(self) -> list[PusherCollectionSettings]:
        """The collections announced on chain (all but ``mode: none``)."""
        return [c for c in self.collections if c.mode != "none"]

    def signer_for(self, network: str) -> tuple[str, PusherSignerSettings | None]:
        """(the key naming it, the signer settings) of ``network``'s pushes: its entry in
        ``signers``, else ``signer``."""
        if network in self.signers:
            return f"pusher.signers.{network}", self.signers[network]
        return "pusher.signer", self.signer


def check_pusher_references(
    pusher: PusherSettings, contracts: list[ContractSettings], networks: set[str]
) -> None:
    """Each pushed collection names a configured contract, once; ``signers`` name configured
    networks; each network with announced collections has a key."""
    known = {c.name for c in contracts}
    seen: set[str] = set()
    for item in pusher.collections:
        if item.contract not in known:
            raise ValueError(
                f"pusher.collections[{item.contract}].contract: unknown contract"
                f" {item.contract!r} (known: {sorted(known)})"
            )
        if item.contract in seen:
            raise ValueError(f"pusher.collections: contract {item.contract!r} is listed twice")
        seen.add(item.contract)
    for name in pusher.signers:
        if name not in networks:
            raise ValueError(
                f"pusher.signers.{name}: unknown network {name!r} (known: {sorted(networks)})"
            )
    network_of = {c.name: c.network for c in contracts}
    for network in sorted({network_of[c.contract] for c in pusher.announcing}):
        key, signer = pusher.signer_for(network)
        if signer is None:
            raise ValueError(
                f"{key}: set key_env or key_file to push collections"
                f" (network {network!r}; or pusher.signers.{network})"
            )
