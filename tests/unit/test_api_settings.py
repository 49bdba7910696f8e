"""The `api` settings section: defaults, overrides, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from dnft.collection.bound import BoundCollection
from dnft.collection.rules import collection_from_mapping
from dnft.config import settings_from_mapping
from dnft.errors import ConfigError
from publisher.api import default_collection


def base(**api: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
    }
    if api:
        raw["api"] = api
    return raw


def bound(name: str) -> BoundCollection:
    rules = {
        "name": name,
        "contract": "collection",
        "salt": "s",
        "traits": [{"name": "fed", "event": "Fed", "reduce": "count"}],
        "stages": {"trait": "fed", "levels": [{"min": 0, "name": "egg"}]},
        "prompt": "an {stage}",
    }
    return BoundCollection(collection_from_mapping(rules), 31337, "0x" + "ab" * 20)


class TestApiSettings:
    """Defaults are usable; bad values fail naming their key."""

    def test_defaults_and_overrides(self) -> None:
        settings = settings_from_mapping(base(), {})
        assert (settings.api.host, settings.api.port) == ("127.0.0.1", 8000)
        assert settings.api.rate_limit.burst == 60
        env = {"DNFT_API__PORT": "8080", "DNFT_API__RATE_LIMIT__REQUESTS_PER_S": "5"}
        settings = settings_from_mapping(base(), env)
        assert settings.api.port == 8080
        assert settings.api.rate_limit.requests_per_s == 5

    @pytest.mark.parametrize(
        ("api", "key"),
        [
            ({"port": 70000}, "api.port"),
            ({"rate_limit": {"burst": 0}}, "api.rate_limit.burst"),
            ({"rate_limit": {"requests_per_s": -1}}, "api.rate_limit.requests_per_s"),
            ({"keepalive_s": 0}, "api.keepalive_s"),
            ({"max_live_clients": 0}, "api.max_live_clients"),
            ({"colection": "x"}, "api.colection"),
        ],
    )
    def test_errors_name_the_key(self, api: dict[str, Any], key: str) -> None:
        with pytest.raises(ConfigError) as info:
            settings_from_mapping(base(**api), {})
        assert info.value.key == key

    def test_default_collection(self) -> None:
        one, two = bound("one"), bound("two")
        settings = settings_from_mapping(base(), {})
        assert default_collection(settings, [one]) is one
        with pytest.raises(ConfigError) as info:
            default_collection(settings, [one, two])
        assert info.value.key == "api.collection"
        assert "several collections" in info.value.reason
        named = settings_from_mapping(base(collection="two"), {})
        assert default_collection(named, [one, two]) is two
        with pytest.raises(ConfigError) as info:
            default_collection(settings_from_mapping(base(collection="three"), {}), [one, two])
        assert info.value.key == "api.collection"
