"""The pusher's key: loaded from an environment variable or a mounted file, signing EIP-1559
transactions with libsecp256k1 (coincurve), off the event loop.

The key never leaves this module: ``repr``/``str`` show the address only, pickling is refused,
and load errors say what is wrong with the value without echoing it.

Signing is done here rather than through eth-account: the payload is one RLP list and one
keccak, and libsecp256k1's RFC 6979 signature is the same one eth-account (whose eth-keys
backend is coincurve too) produces, at a fraction of the per-call overhead.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, NoReturn

import coincurve
import rlp  # type: ignore[import-untyped]
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from dnft.config import PusherSignerSettings
from dnft.errors import ConfigError

_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_EIP1559_TYPE = b"\x02"


@dataclass(frozen=True, slots=True)
class UnsignedTx:
    """An EIP-1559 (type 2) call, without access list."""

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: str  # 0x address
    data: bytes
    value: int = 0


@dataclass(frozen=True, slots=True)
class SignedTx:
    raw: bytes  # what eth_sendRawTransaction takes
    hash: str  # 0x-hex, lowercase

    @property
    def raw_hex(self) -> str:
        return "0x" + self.raw.hex()


class Signer:
    """One private key. ``sign`` is synchronous and fast (about 0.1 ms); ``sign_async`` runs it
    in a thread so that nothing CPU-bound runs on the event loop."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes) -> None:
        try:
            self._key = coincurve.PrivateKey(private_key)
        except (ValueError, TypeError):
            raise ValueError("not a valid secp256k1 private key") from None
        public = self._key.public_key.format(compressed=False)[1:]
        self.address: str = to_checksum_address(keccak(public)[-20:])

    @classmethod
    def from_settings(
        cls,
        settings: PusherSignerSettings,
        env: MutableMapping[str, str] | None = None,
        *,
        key: str = "pusher.signer",
    ) -> Signer:
        """Load the key named by the settings found at ``key`` (``pusher.signers.base``, say).
        Raises ConfigError naming the setting (never the key's value). A key read from the
        environment is removed from it (``os.environ`` by default), so child processes do not
        inherit it."""
        env = os.environ if env is None else env
        if settings.key_env is not None:
            where = f"{key}.key_env"
            if settings.key_env not in env:
                raise ConfigError(where, f"environment variable {settings.key_env} is not set")
            text = env.pop(settings.key_env)
        else:
            assert settings.key_file is not None  # validated: exactly one is set
            where = f"{key}.key_file"
            try:
                text = settings.key_file.read_text()
            except OSError as exc:
                raise ConfigError(
                    where, f"cannot read {settings.key_file}: {exc.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(where, f"{settings.key_file} is not a text file") from None
        text = text.strip()
        if not _HEX_KEY.match(text):
            raise ConfigError(
                where, "does not hold a private key (expected 64 hex digits, optionally 0x)"
            )
        try:
            return cls(bytes.fromhex(text.removeprefix("0x")))
        except ValueError:
            raise ConfigError(where, "is not a valid secp256k1 private key") from None

    def sign(self, tx: UnsignedTx) -> SignedTx:
        fields: list[Any] = [
            tx.chain_id,
            tx.nonce,
            tx.max_priority_fee_per_gas,
            tx.max_fee_per_gas,
            tx.gas,
            bytes.fromhex(tx.to.removeprefix("0x")),
            tx.value,
            tx.data,
            [],  # access list
        ]
        digest = keccak(_EIP1559_TYPE + rlp.encode(fields))
        signature = self._key.sign_recoverable(digest, hasher=None)  # r || s || recovery id
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:64], "big")
        raw = _EIP1559_TYPE + rlp.encode([*fields, signature[64], r, s])
        return SignedTx(raw, "0x" + keccak(raw).hex())

    async def sign_async(self, tx: UnsignedTx) -> SignedTx:
        return await asyncio.to_thread(self.sign, tx)

    def __repr__(self) -> str:
        return f"Signer(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")
