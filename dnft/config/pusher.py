"""``pusher``: how new metadata versions are announced on chain, and with which key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dnft.config.base import NAME_PATTERN, ConfigModel
from dnft.config.chain import ContractSettings


class PusherCollectionSettings(ConfigModel):
    """How one contract's new metadata versions are announced on chain."""

    contract: str  # a name from `contracts`
    # erc4906: refreshMetadata(from, to) emits MetadataUpdate / BatchMetadataUpdate;
    # token-uri: setTokenURIs(ids, uris) stores each token's new URI (also ERC-4906 events).
    mode: Literal["erc4906", "token-uri"] = "erc4906"
    # token-uri mode: the URI written on chain; {cid} is the metadata CID.
    uri_template: str = "ipfs://{cid}"

    @field_validator("uri_template")
    @classmethod
    def _has_cid(cls, template: str) -> str:
        if "{cid}" not in template:
            raise ValueError("uri_template must contain {cid}")
        return template


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
    signer: PusherSignerSettings | None = None
    # Updates of a contract are gathered this long (from the oldest waiting) into one plan.
    window_s: float = Field(default=10.0, ge=0, le=3_600)
    # Marketplaces rate-limit refreshes; also bounds spend if something loops.
    max_transactions_per_minute: int = Field(default=12, ge=1, le=10_000)
    max_range_size: int = Field(default=10_000, ge=1, le=10_000_000)  # erc4906
    max_uris_per_transaction: int = Field(default=100, ge=1, le=2_000)  # token-uri
    # A push counts once this many blocks hold it (1: the block it was mined in).
    confirmations: int = Field(default=3, ge=1, le=10_000)
    # Unmined this long after signing: replaced with bumped fees (same nonce).
    replace_after_s: float = Field(default=60.0, gt=0, le=86_400)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    fees: PusherFeeSettings = PusherFeeSettings()
    balance_every_s: float = Field(default=30.0, gt=0, le=86_400)
    # Below this the signer's balance is logged as a warning (and alerted on by rules).
    low_balance_wei: int = Field(default=10**17, ge=0)
    # The advisory-lock scope: one leading pusher per scope (per signer key, usually).
    leader_scope: str = Field(default="default", pattern=NAME_PATTERN)


def check_pusher_references(pusher: PusherSettings, contracts: list[ContractSettings]) -> None:
    """Each pushed collection names a configured contract, once; pushing needs a signer."""
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
    if pusher.collections and pusher.signer is None:
        raise ValueError("pusher.signer: set key_env or key_file to push collections")
