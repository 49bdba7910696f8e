"""The whole configuration: every section, and the checks that span sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dnft.config.api import ApiSettings
from dnft.config.base import ConfigModel
from dnft.config.chain import ContractSettings, NetworkSettings
from dnft.config.feeds import FeedSettings, check_feed_references
from dnft.config.kafka import KafkaSettings
from dnft.config.postgres import PostgresSettings
from dnft.config.pusher import PusherSettings, check_pusher_references
from dnft.config.regenerator import CollectionRef, RegeneratorSettings
from dnft.errors import ConfigError


class HttpSettings(ConfigModel):
    """The side server each daemon runs for /metrics, /healthz and /readyz."""

    host: str = "127.0.0.1"
    port: int = Field(default=9100, ge=0, le=65535)


class Settings(ConfigModel):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # After SIGTERM a daemon stops taking work, finishes or hands back what is in flight and
    # commits; past this it is cancelled (exit 1). Keep it below Kubernetes'
    # terminationGracePeriodSeconds.
    shutdown_deadline_s: float = Field(default=25.0, gt=0, le=3_600)
    http: HttpSettings = HttpSettings()
    networks: list[NetworkSettings] = []
    contracts: list[ContractSettings] = []
    kafka: KafkaSettings
    postgres: PostgresSettings
    feeds: list[FeedSettings] = []
    collections: list[CollectionRef] = []
    regenerator: RegeneratorSettings = RegeneratorSettings()
    pusher: PusherSettings = PusherSettings()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _references(self) -> Settings:
        networks = _unique([n.name for n in self.networks], "networks")
        _unique([c.name for c in self.contracts], "contracts")
        _unique([f.id for f in self.feeds], "feeds")
        for contract in self.contracts:
            if contract.network not in networks:
                raise ValueError(
                    f"contracts[{contract.name}].network: unknown network {contract.network!r}"
                    f" (known: {sorted(networks)})"
                )
        check_feed_references(self.feeds, networks)
        check_pusher_references(self.pusher, self.contracts, networks)
        return self

    def network(self, name: str) -> NetworkSettings:
        for network in self.networks:
            if network.name == name:
                return network
        raise ConfigError("networks", f"no network named {name!r}")

    def contracts_on(self, network: str) -> list[ContractSettings]:
        return [c for c in self.contracts if c.network == network]


def _unique(names: list[str], key: str) -> set[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{key}: duplicate name {name!r}")
        seen.add(name)
    return seen
