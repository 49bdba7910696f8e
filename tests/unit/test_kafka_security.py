"""Kafka TLS and SASL settings (kafka.security) and the one builder of kafka-python's arguments
every client uses; tests/integration/test_kafka_security.py runs the TLS path on a broker."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from dnft import cli
from dnft.config import settings_from_mapping
from dnft.config.kafka import KafkaSecuritySettings, KafkaSettings
from dnft.errors import ConfigError
from dnft.kafka import AsyncConsumer, AsyncProducer, client_security_kwargs, explain_connect_failure
from dnft.kafka.security import check_files
from tests.support.kafka import write_test_pki

EXAMPLE = Path(__file__).resolve().parents[2] / "dnft.example.yaml"


def load(security: dict[str, Any], env: dict[str, str] | None = None) -> KafkaSettings:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["kafka"] = {**raw["kafka"], "security": security}
    return settings_from_mapping(raw, env or {}).kafka


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text("s3cret\n")
    return path


class TestSettings:
    """kafka.security loads from YAML and DNFT_KAFKA__SECURITY__* and refuses, naming the key,
    what would fail later or be silently ignored."""

    def test_default_is_plaintext(self) -> None:
        assert load({}).security.protocol == "PLAINTEXT"

    def test_sasl_ssl_from_yaml(self, tmp_path: Path, password_file: Path) -> None:
        pki = write_test_pki(tmp_path)
        security = load(
            {
                "protocol": "SASL_SSL",
                "tls": {"ca_file": str(pki.ca_file)},
                "sasl": {
                    "mechanism": "SCRAM-SHA-512",
                    "username": "dnft",
                    "password_file": str(password_file),
                },
            }
        ).security
        assert security.tls.ca_file == pki.ca_file
        assert security.tls.check_hostname is True
        assert security.sasl.mechanism == "SCRAM-SHA-512"

    def test_environment_overrides(self, password_file: Path) -> None:
        env = {
            "DNFT_KAFKA__SECURITY__PROTOCOL": "SASL_PLAINTEXT",
            "DNFT_KAFKA__SECURITY__SASL__MECHANISM": "SCRAM-SHA-256",
            "DNFT_KAFKA__SECURITY__SASL__USERNAME": "indexer",
            "DNFT_KAFKA__SECURITY__SASL__PASSWORD_FILE": str(password_file),
        }
        security = load({}, env).security
        assert security.protocol == "SASL_PLAINTEXT"
        assert security.sasl.username == "indexer"
        assert security.sasl.password_file == password_file

    @pytest.mark.parametrize(
        ("security", "key", "reason"),
        [
            ({"protocol": "SASL_SSL"}, "kafka.security", "sasl.mechanism is required"),
            (
                {"protocol": "SASL_SSL", "sasl": {"mechanism": "PLAIN", "username": "u"}},
                "kafka.security",
                "sasl.password_file is required",
            ),
            ({"protocol": "PLAINTEXT", "sasl": {"username": "u"}}, "kafka.security", "is set"),
            ({"tls": {"check_hostname": False}}, "kafka.security", "use SSL or SASL_SSL"),
            ({"protocol": "TLS"}, "kafka.security.protocol", ""),
            ({"protocol": "SASL_SSL", "sasl": {"mechanism": "GSSAPI"}}, "", ""),
            # Secrets come from files: an inline password is refused.
            ({"sasl": {"password": "hunter2"}}, "kafka.security.sasl.password", "Extra"),
        ],
    )
    def test_refused_naming_the_key(self, security: dict[str, Any], key: str, reason: str) -> None:
        with pytest.raises(ConfigError) as caught:
            load(security)
        assert caught.value.key.startswith(key or "kafka.security")
        assert reason in str(caught.value)

    def test_client_certificate_needs_its_key(self, tmp_path: Path) -> None:
        pki = write_test_pki(tmp_path)
        with pytest.raises(ConfigError, match=r"cert_file and kafka\.security\.tls\.key_file"):
            load({"protocol": "SSL", "tls": {"cert_file": str(pki.cert_file)}})


FILE_KEYS = [
    "kafka.security.tls.ca_file",
    "kafka.security.tls.cert_file",
    "kafka.security.tls.key_file",
    "kafka.security.sasl.password_file",
]


def mutual_sasl_ssl(tmp_path: Path, password_file: Path) -> dict[str, Any]:
    """A kafka.security naming every file (mutual TLS and SASL), all present."""
    pki = write_test_pki(tmp_path)
    return {
        "protocol": "SASL_SSL",
        "tls": {
            "ca_file": str(pki.ca_file),
            "cert_file": str(pki.cert_file),
            "key_file": str(pki.key_file),
        },
        "sasl": {"mechanism": "PLAIN", "username": "u", "password_file": str(password_file)},
    }


def without(security: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """``security`` with the file at ``key`` (kafka.security.x.y) replaced by ``path``."""
    _, _, section, name = key.split(".")
    return {**security, section: {**security[section], name: str(path)}}


class TestFiles:
    """The files are checked where a Kafka client is built and by `dnft config check`, not
    when the config loads: the api and the migrations load the same dnft.yaml and do not
    hold the Kafka Secret (deploy/k8s/base/patches/kafka-security.yaml)."""

    def test_config_loads_without_its_files(self, tmp_path: Path) -> None:
        gone = tmp_path / "not-mounted"
        security = load(
            {
                "protocol": "SASL_SSL",
                "tls": {
                    "ca_file": str(gone / "ca.crt"),
                    "cert_file": str(gone / "tls.crt"),
                    "key_file": str(gone / "tls.key"),
                },
                "sasl": {
                    "mechanism": "PLAIN",
                    "username": "u",
                    "password_file": str(gone / "password"),
                },
            }
        ).security
        assert set(security.files()) == set(FILE_KEYS)
        with pytest.raises(ConfigError) as caught:
            check_files(security)
        assert caught.value.key == "kafka.security.tls.ca_file"

    @pytest.mark.parametrize("key", FILE_KEYS)
    def test_missing_file_names_its_key(
        self, tmp_path: Path, password_file: Path, key: str
    ) -> None:
        full = load(mutual_sasl_ssl(tmp_path, password_file))
        check_files(full.security)  # all present
        assert client_security_kwargs(full)["sasl_plain_password"] == "s3cret"
        settings = load(without(mutual_sasl_ssl(tmp_path, password_file), key, tmp_path / "x"))
        for check in (
            lambda: check_files(settings.security),
            lambda: client_security_kwargs(settings),
        ):
            with pytest.raises(ConfigError) as caught:
                check()
            assert caught.value.key == key
            assert f"no such file: {tmp_path / 'x'}" in str(caught.value)

    def test_directory_is_not_a_file(self, tmp_path: Path) -> None:
        directory = tmp_path / "ca.pem"
        directory.mkdir()
        settings = load({"protocol": "SSL", "tls": {"ca_file": str(directory)}})
        with pytest.raises(ConfigError) as caught:
            client_security_kwargs(settings)
        assert caught.value.key == "kafka.security.tls.ca_file"

    def test_unreadable_file(
        self, tmp_path: Path, password_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Faked: these tests run as root, who can read a mode-000 file.
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != password_file)
        settings = load(mutual_sasl_ssl(tmp_path, password_file))
        with pytest.raises(ConfigError, match="not readable by this user") as caught:
            check_files(settings.security)
        assert caught.value.key == "kafka.security.sasl.password_file"

    def test_clients_refuse_to_start(self, tmp_path: Path) -> None:
        """A daemon builds its producer and consumers before it reports ready
        (dnft/resources.py): the missing file stops it there, before any connection."""
        settings = load({"protocol": "SSL", "tls": {"ca_file": str(tmp_path / "gone.pem")}})
        for client in (
            AsyncProducer(settings, client_id="t"),
            AsyncConsumer(settings, group_id="g", topics=["t"]),
        ):
            with pytest.raises(ConfigError) as caught:
                asyncio.run(client.start())
            assert caught.value.key == "kafka.security.tls.ca_file"

    def test_config_check_names_the_key(
        self,
        tmp_path: Path,
        password_file: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        for name in [n for n in os.environ if n.startswith("DNFT_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("DNFT_KAFKA__SECURITY__PROTOCOL", "SASL_PLAINTEXT")
        monkeypatch.setenv("DNFT_KAFKA__SECURITY__SASL__MECHANISM", "PLAIN")
        monkeypatch.setenv("DNFT_KAFKA__SECURITY__SASL__USERNAME", "u")
        monkeypatch.setenv("DNFT_KAFKA__SECURITY__SASL__PASSWORD_FILE", str(password_file))
        assert cli.main(["--config", str(EXAMPLE), "config", "check"]) == 0
        assert "config ok" in capsys.readouterr().out
        password_file.unlink()
        assert cli.main(["--config", str(EXAMPLE), "config", "check"]) == 1
        assert capsys.readouterr().out.startswith(
            "config error at kafka.security.sasl.password_file: no such file"
        )


class TestClientKwargs:
    """What every client hands kafka-python."""

    def test_plaintext(self) -> None:
        settings = KafkaSettings(bootstrap_servers=["k:9092"])
        assert client_security_kwargs(settings) == {"security_protocol": "PLAINTEXT"}

    def test_ssl_context_verifies_against_the_ca_and_is_built_once(self, tmp_path: Path) -> None:
        pki = write_test_pki(tmp_path)
        settings = load({"protocol": "SSL", "tls": {"ca_file": str(pki.ca_file)}})
        kwargs = client_security_kwargs(settings)
        assert set(kwargs) == {"security_protocol", "ssl_context"}
        context: ssl.SSLContext = kwargs["ssl_context"]
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert [c["subject"] for c in context.get_ca_certs()] == [
            ((("commonName", "dnft test CA"),),)
        ]
        assert client_security_kwargs(settings)["ssl_context"] is context

    def test_mutual_tls_and_no_hostname_check(self, tmp_path: Path) -> None:
        pki = write_test_pki(tmp_path)
        settings = load(
            {
                "protocol": "SSL",
                "tls": {
                    "ca_file": str(pki.ca_file),
                    "cert_file": str(pki.cert_file),
                    "key_file": str(pki.key_file),
                    "check_hostname": False,
                },
            }
        )
        context: ssl.SSLContext = client_security_kwargs(settings)["ssl_context"]
        assert context.check_hostname is False
        assert context.verify_mode == ssl.CERT_REQUIRED  # the chain is still verified

    def test_mismatched_key_is_a_config_error(self, tmp_path: Path) -> None:
        pki = write_test_pki(tmp_path)
        settings = load(
            {
                "protocol": "SSL",
                "tls": {"cert_file": str(pki.cert_file), "key_file": str(pki.ca_file)},
            }
        )
        with pytest.raises(ConfigError) as caught:
            client_security_kwargs(settings)
        assert caught.value.key == "kafka.security.tls.cert_file"

    @pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    def test_sasl_ssl(self, tmp_path: Path, password_file: Path, mechanism: str) -> None:
        pki = write_test_pki(tmp_path)
        settings = load(
            {
                "protocol": "SASL_SSL",
                "tls": {"ca_file": str(pki.ca_file)},
                "sasl": {
                    "mechanism": mechanism,
                    "username": "dnft",
                    "password_file": str(password_file),
                },
            }
        )
        kwargs = client_security_kwargs(settings)
        assert kwargs["security_protocol"] == "SASL_SSL"
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
        assert kwargs["sasl_mechanism"] == mechanism
        assert kwargs["sasl_plain_username"] == "dnft"
        assert kwargs["sasl_plain_password"] == "s3cret"  # the file's trailing newline dropped

    def test_rotated_password_is_read_again(self, password_file: Path) -> None:
        settings = KafkaSettings(
            bootstrap_servers=["k:9092"],
            security=KafkaSecuritySettings.model_validate(
                {
                    "protocol": "SASL_PLAINTEXT",
                    "sasl": {
                        "mechanism": "PLAIN",
                        "username": "u",
                        "password_file": password_file,
                    },
                }
            ),
        )
        assert "ssl_context" not in client_security_kwargs(settings)
        password_file.write_text("rotated")
        assert client_security_kwargs(settings)["sasl_plain_password"] == "rotated"
        password_file.unlink()
        with pytest.raises(ConfigError) as caught:
            client_security_kwargs(settings)
        assert caught.value.key == "kafka.security.sasl.password_file"

    def test_kafka_python_accepts_the_arguments(self, tmp_path: Path, password_file: Path) -> None:
        """kafka-python validates its configuration names: a typo here would only show at a
        daemon's start."""
        from kafka.net.manager import KafkaConnectionManager

        pki = write_test_pki(tmp_path)
        settings = load(
            {
                "protocol": "SASL_SSL",
                "tls": {"ca_file": str(pki.ca_file)},
                "sasl": {
                    "mechanism": "SCRAM-SHA-512",
                    "username": "u",
                    "password_file": str(password_file),
                },
            }
        )
        assert set(client_security_kwargs(settings)) <= set(KafkaConnectionManager.DEFAULT_CONFIG)

    def test_explain_is_silent_without_tls(self) -> None:
        assert explain_connect_failure(KafkaSettings(bootstrap_servers=["127.0.0.1:1"])) == ""
