"""dnft's shared ground: what every part of the engine stands on.

Plumbing: settings (:mod:`dnft.config`), Kafka (:mod:`dnft.kafka`) and the consume-process-commit
loop (:mod:`dnft.stream`), typed messages (:mod:`dnft.messages`), Postgres (:mod:`dnft.db`,
:mod:`dnft.migrations`, :mod:`dnft.leader`), JSON-RPC (:mod:`dnft.rpc`), logging, metrics, the
health server and the daemon lifecycle (:mod:`dnft.daemon`, :mod:`dnft.resources`), and the dev
services. Shared domain: collection rules and token state (:mod:`dnft.collection`), blob storage
(:mod:`dnft.storage`) and each token's timeline of versions (:mod:`dnft.timeline`).

The ground imports no daemon package; the command line (:mod:`dnft.cli`) lives here but is the
roof, and nothing imports it. ``pyproject.toml``'s import-linter contracts check both.
"""

from dnft.errors import (
    ConfigError,
    DecodeError,
    DnftError,
    KafkaError,
    MigrationError,
    MissingDependencyError,
    RpcError,
    ServiceError,
)

__all__ = [
    "ConfigError",
    "DecodeError",
    "DnftError",
    "KafkaError",
    "MigrationError",
    "MissingDependencyError",
    "RpcError",
    "ServiceError",
]
