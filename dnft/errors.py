"""One exception root for dnft; every error the project raises derives from it.

Where a standard base fits, errors derive from it too (as web3.py does), so callers can
catch either ``DnftError`` or the familiar built-in.
"""

from __future__ import annotations


class DnftError(Exception):
    """Root of every dnft error."""


class ConfigError(DnftError, ValueError):
    """A setting is missing or invalid. ``key`` is the dotted path of the failing setting."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)


class DependencyError(DnftError):
    """Something outside the message failed: a service, a program, the environment.

    A consumer (:mod:`dnft.stream`) never dead-letters a message for a DependencyError: it
    stops without committing, and the message is processed again once the daemon restarts.
    Derive an error from it when retrying later can succeed; errors caused by what a message
    carries must not derive from it."""


class MissingDependencyError(DependencyError, RuntimeError):
    """A program or package dnft needs is not installed; the message names the install step."""


class ServiceError(DependencyError, RuntimeError):
    """A local or remote service (chain node, broker, database) failed or is unreachable."""


class RpcError(ServiceError):
    """A JSON-RPC call failed after retries, or the node answered with an error object."""


class KafkaError(ServiceError):
    """A Kafka produce, consume or commit failed."""


class DecodeError(DnftError, ValueError):
    """Input (a log, a feed body, a message) does not match what its schema says."""


class MigrationError(DnftError, RuntimeError):
    """A database migration is missing, out of order or failed to apply."""
