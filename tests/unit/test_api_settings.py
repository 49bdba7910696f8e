"""The `api` settings section: defaults, overrides, and errors that name the key."""

from __future__ import annotations

import os
from typing import Any

import pytest

from dnft.collection.bound import BoundCollection
from dnft.collection.rules import collection_from_mapping
from dnft.config import CurateSettings, settings_from_mapping
from dnft.errors import ConfigError
from publisher.api import default_collection
from publisher.api.curate_service import read_token


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
            ({"trusted_proxies": -1}, "api.trusted_proxies"),
            ({"max_live_per_client": 0}, "api.max_live_per_client"),
            ({"curate": {"login_threads": 0}}, "api.curate.login_threads"),
            ({"curate": {"failed_logins_per_min": 0}}, "api.curate.failed_logins_per_min"),
            ({"rate_limit": {"trust_forwarded_for": True}}, "api.rate_limit.trust_forwarded_for"),
        ],
    )
    def test_errors_name_the_key(self, api: dict[str, Any], key: str) -> None:
        with pytest.raises(ConfigError) as info:
            settings_from_mapping(base(**api), {})
        assert info.value.key == key

    def test_hardening_defaults(self) -> None:
        api = settings_from_mapping(base(), {}).api
        assert (api.trusted_proxies, api.public_https, api.max_live_per_client) == (0, False, 8)
        env = {"DNFT_API__TRUSTED_PROXIES": "2", "DNFT_API__PUBLIC_HTTPS": "true"}
        api = settings_from_mapping(base(), env).api
        assert (api.trusted_proxies, api.public_https) == (2, True)

    def test_curate_token_from_env_is_removed_from_it(self) -> None:
        curate = CurateSettings(token_env="CURATE_TOKEN")
        env = {"CURATE_TOKEN": " " + "t" * 20 + "\n", "OTHER": "x"}
        assert read_token(curate, env) == "t" * 20
        assert env == {"OTHER": "x"}  # child processes started later cannot inherit it

    def test_curate_token_leaves_os_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DNFT_TEST_CURATE_TOKEN", "s" * 24)
        assert read_token(CurateSettings(token_env="DNFT_TEST_CURATE_TOKEN")) == "s" * 24
        assert "DNFT_TEST_CURATE_TOKEN" not in os.environ

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
