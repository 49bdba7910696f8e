"""What the pusher announces and who signs, read from settings before anything starts.

``push_targets`` groups the configured collections by network; ``load_signer`` reads the key;
``prepare_signer`` does both in the order that keeps the key safe (targets checked, process
hardened, then the key read). All three raise ConfigError naming the setting and never block
on the network.
"""

from __future__ import annotations

from dnft.config import Settings
from dnft.errors import ConfigError
from dnft.hardening import protect_secrets
from publisher.pusher.sender import PushTarget
from publisher.pusher.signer import Signer


def push_targets(settings: Settings) -> dict[str, list[PushTarget]]:
    """Configured collections by network name. Raises ConfigError when none is configured."""
    contracts = {c.name: c for c in settings.contracts}
    out: dict[str, list[PushTarget]] = {}
    for item in settings.pusher.collections:
        contract = contracts[item.contract]  # validated at load
        out.setdefault(contract.network, []).append(
            PushTarget(item.contract, contract.address.lower(), item.mode, item.uri_template)
        )
    if not out:
        raise ConfigError("pusher.collections", "no collection is configured for pushing")
    return out


def load_signer(settings: Settings) -> Signer:
    """The key named by ``pusher.signer``. Raises ConfigError (never echoing the key)."""
    if settings.pusher.signer is None:
        raise ConfigError("pusher.signer", "set key_env or key_file")
    return Signer.from_settings(settings.pusher.signer)


def prepare_signer(settings: Settings) -> Signer:
    """Check the push targets, then harden the process, then read the key: nothing to push or
    a bad key fails before anything starts, and no core dump or ptrace can read the key."""
    push_targets(settings)
    protect_secrets()
    return load_signer(settings)
