"""Settings: one YAML file plus ``DNFT_*`` environment overrides, validated at start into
frozen typed models whose errors name the failing key.

One module per part of the file (:mod:`~dnft.config.chain`, :mod:`~dnft.config.kafka`, ...),
the whole in :mod:`~dnft.config.settings`, reading and overriding in :mod:`~dnft.config.loader`.
Callers import from here.
"""

from __future__ import annotations

from dnft.config.api import ApiRateLimitSettings, ApiSettings, CurateSettings, CurateUserSettings
from dnft.config.base import ADDRESS_PATTERN, NAME_PATTERN, ConfigModel
from dnft.config.chain import (
    DEFAULT_TOKEN_ID_ARGS,
    Confirmations,
    ContractSettings,
    EventSettings,
    NetworkSettings,
    TokenArg,
    TokenSource,
)
from dnft.config.feeds import (
    ChainlinkFeedSettings,
    Deviation,
    FeedSettings,
    HttpFeedSettings,
    MedianFeedSettings,
)
from dnft.config.kafka import ConsumerSettings, KafkaSettings, ProducerSettings, TopicSettings
from dnft.config.loader import (
    DEFAULT_CONFIG_PATH,
    ENV_PREFIX,
    MAX_CONFIG_VALUES,
    MAX_YAML_FLOW_DEPTH,
    apply_env_overrides,
    load_settings,
    parse_yaml,
    read_yaml_file,
    settings_from_mapping,
)
from dnft.config.postgres import PostgresSettings
from dnft.config.pusher import (
    PusherCollectionSettings,
    PusherFeeSettings,
    PusherSettings,
    PusherSignerSettings,
)
from dnft.config.regenerator import CollectionRef, RegeneratorSettings, StorageSettings
from dnft.config.settings import HttpSettings, Settings

__all__ = [
    "ADDRESS_PATTERN",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_TOKEN_ID_ARGS",
    "ENV_PREFIX",
    "MAX_CONFIG_VALUES",
    "MAX_YAML_FLOW_DEPTH",
    "NAME_PATTERN",
    "ApiRateLimitSettings",
    "ApiSettings",
    "ChainlinkFeedSettings",
    "CollectionRef",
    "ConfigModel",
    "Confirmations",
    "ConsumerSettings",
    "ContractSettings",
    "CurateSettings",
    "CurateUserSettings",
    "Deviation",
    "EventSettings",
    "FeedSettings",
    "HttpFeedSettings",
    "HttpSettings",
    "KafkaSettings",
    "MedianFeedSettings",
    "NetworkSettings",
    "PostgresSettings",
    "ProducerSettings",
    "PusherCollectionSettings",
    "PusherFeeSettings",
    "PusherSettings",
    "PusherSignerSettings",
    "RegeneratorSettings",
    "Settings",
    "StorageSettings",
    "TokenArg",
    "TokenSource",
    "TopicSettings",
    "apply_env_overrides",
    "load_settings",
    "parse_yaml",
    "read_yaml_file",
    "settings_from_mapping",
]
