"""What the pusher announces and who signs, read from settings before anything starts.

``push_targets`` groups the configured collections by network (``mode: none`` ones are left
out: nothing is recorded or sent for them) and checks that a ``mode: call`` function is in its
contract's ABI; ``load_signer`` reads ``pusher.signer``'s key, ``load_signers`` each
network's (``pusher.signers`` gives a network its own); ``prepare_signers`` does it all in the
order that keeps the keys safe (targets checked, process hardened, then the keys read). All
raise ConfigError naming the setting and never block on the network.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import orjson
from eth_typing import ABIFunction
from eth_utils.abi import abi_to_signature

from dnft.config import ContractSettings, PusherSignerSettings, Settings
from dnft.config.pusher import MODE_CALLS
from dnft.errors import ConfigError
from dnft.hardening import protect_secrets
from publisher.pusher.calls import CallSpec
from publisher.pusher.sender import PushTarget
from publisher.pusher.signer import Signer


def push_targets(settings: Settings) -> dict[str, list[PushTarget]]:
    """Announced collections by network name. Raises ConfigError when none is configured or
    a ``mode: call`` function is not in its contract's ABI."""
    contracts = {c.name: c for c in settings.contracts}
    out: dict[str, list[PushTarget]] = {}
    for item in settings.pusher.announcing:
        contract = contracts[item.contract]  # validated at load
        function, args = item.call or MODE_CALLS["erc4906"]  # never None: announced
        call = CallSpec(function, args, item.uri_template)
        if item.mode == "call":  # the named modes' calls are the sample contract's
            _check_in_abi(contract, call.signature, f"pusher.collections[{item.contract}]")
        out.setdefault(contract.network, []).append(
            PushTarget(
                item.contract,
                contract.address.lower(),
                item.mode,
                item.uri_template,
                call,
                announce_after=item.announce_after,
            )
        )
    if not out:
        raise ConfigError(
            "pusher.collections",
            "no collection is configured for pushing (mode none announces nothing)",
        )
    return out


def _check_in_abi(contract: ContractSettings, signature: str, key: str) -> None:
    """A typo in the function would only show at the first push (a revert at estimation)."""
    try:
        raw = orjson.loads(contract.abi.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(
            f"contracts[{contract.name}].abi", f"cannot read ABI {contract.abi}: {exc}"
        ) from None
    abi = raw.get("abi", raw) if isinstance(raw, dict) else raw
    entries: list[Any] = abi if isinstance(abi, list) else []
    functions = {
        abi_to_signature(cast(ABIFunction, e))
        for e in entries
        if isinstance(e, dict) and e.get("type") == "function"
    }
    if signature not in functions:
        name = signature.split("(")[0]
        same_name = sorted(f for f in functions if f.startswith(name + "("))
        raise ConfigError(
            f"{key}.function",
            f"{signature} is not a function of {contract.name} in {contract.abi}"
            + (f" (it has {same_name})" if same_name else ""),
        )


def load_signer(settings: Settings) -> Signer:
    """The key named by ``pusher.signer``. Raises ConfigError (never echoing the key)."""
    if settings.pusher.signer is None:
        raise ConfigError("pusher.signer", "set key_env or key_file")
    return Signer.from_settings(settings.pusher.signer)


def load_signers(settings: Settings, networks: Iterable[str]) -> dict[str, Signer]:
    """Network name -> its signer (``pusher.signers.<network>``, else ``pusher.signer``).
    A key named twice (two networks, one key_env) is read once: reading a key_env removes it
    from the environment. Raises ConfigError naming the key (never echoing it)."""
    loaded: dict[PusherSignerSettings, Signer] = {}
    out: dict[str, Signer] = {}
    for network in networks:
        key, signer = settings.pusher.signer_for(network)
        if signer is None:
            raise ConfigError(key, f"set key_env or key_file (network {network!r} pushes)")
        if signer not in loaded:
            loaded[signer] = Signer.from_settings(signer, key=key)
        out[network] = loaded[signer]
    return out


def prepare_signers(settings: Settings, networks: Iterable[str] | None = None) -> dict[str, Signer]:
    """Check the push targets, then harden the process, then read the keys: nothing to push
    or a bad key fails before anything starts, and no core dump or ptrace can read a key.
    The signer of each network with announced collections (of ``networks`` only, when
    given), each network's own key where ``pusher.signers`` names one. Raises ConfigError
    for an unknown network name, or one with nothing to push."""
    targets = push_targets(settings)
    chosen = sorted(targets) if networks is None else list(networks)
    for name in chosen:
        settings.network(name)  # an unknown name fails here
        if name not in targets:
            raise ConfigError(
                "pusher.collections", f"no collection of network {name!r} is announced"
            )
    protect_secrets()
    return load_signers(settings, chosen)
