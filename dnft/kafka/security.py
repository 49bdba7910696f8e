"""TLS and SASL for every Kafka client: one builder of kafka-python's security arguments.

Producer, consumer, topic admin, group tools, ``dnft status`` and the audit's topic reader all
pass :func:`client_security_kwargs` to kafka-python, so no client can connect in the clear
when the config asks for TLS. The SSL context is built once per TLS section (loading a CA
bundle costs milliseconds and every client of a daemon shares it).

The files ``kafka.security`` names are checked here (:func:`check_files`), when a client is
built, and by ``dnft config check``, not when the config loads: the api and the migrations
load the same config without the Secret behind them. Every daemon that uses Kafka builds its
clients before it reports ready, so a missing file still stops it at start.
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
from typing import Any

from dnft.config.kafka import KafkaSecuritySettings, KafkaSettings, KafkaTlsSettings
from dnft.errors import ConfigError


def check_files(security: KafkaSecuritySettings) -> None:
    """Each CA, certificate, key and password file ``security`` names is a file this user can
    read. Raises ConfigError naming the first failing key (``kafka.security.tls.ca_file``)."""
    for key, path in security.files().items():
        if not path.is_file():
            raise ConfigError(key, f"no such file: {path}")
        if not os.access(path, os.R_OK):
            raise ConfigError(key, f"{path} is not readable by this user")


@functools.lru_cache(maxsize=8)
def ssl_context(tls: KafkaTlsSettings) -> ssl.SSLContext:
    """A client context verifying the broker against ``tls.ca_file`` (or the system CAs),
    with the client certificate when one is configured. Raises ConfigError naming the key."""
    try:
        context = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("kafka.security.tls.ca_file", f"cannot load CA file: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Off only for brokers reached by an address their certificate does not name; the chain
    # is still verified against the CA.
    context.check_hostname = tls.check_hostname
    if tls.cert_file is not None:
        try:
            context.load_cert_chain(
                str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "kafka.security.tls.cert_file",
                f"cannot load client certificate and key: {exc}",
            ) from exc
    return context


def _password(security: KafkaSecuritySettings) -> str:
    path = security.sasl.password_file
    if path is None:  # the settings' validator requires it with SASL; kept for mypy
        raise ConfigError("kafka.security.sasl.password_file", "required with SASL")
    try:
        # A trailing newline is what `echo pw > file` and most secret tools leave.
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "kafka.security.sasl.password_file", f"cannot read {path}: {exc}"
        ) from exc


def client_security_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python's ``security_protocol``, ``ssl_context`` and ``sasl_*`` arguments for
    ``settings.security``. Reads the password file on each call (a rotated secret is picked
    up by the next client); kafka-python takes SCRAM credentials from ``sasl_plain_*`` too.
    Raises ConfigError naming the failing key."""
    security = settings.security
    check_files(security)
    kwargs: dict[str, Any] = {"security_protocol": security.protocol}
    if security.protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl_context(security.tls)
    if security.protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        kwargs["sasl_mechanism"] = security.sasl.mechanism
        kwargs["sasl_plain_username"] = security.sasl.username
        kwargs["sasl_plain_password"] = _password(security)
    return kwargs


def explain_connect_failure(settings: KafkaSettings, timeout_s: float = 3.0) -> str:
    """Why a TLS connection to the first bootstrap server fails, or "" (not TLS, or the
    handshake works). Blocks for at most about ``timeout_s``: call it from a thread.

    kafka-python reports a refused certificate only as "NoBrokersAvailable" (the
    handshake error goes to its debug log); this names the real cause for the operator.
    """
    security = settings.security
    if security.protocol not in ("SSL", "SASL_SSL"):
        return ""
    host, _, port = settings.bootstrap_servers[0].rpartition(":")
    host = host.strip("[]")
    try:
        context = ssl_context(security.tls)
        with (
            socket.create_connection((host, int(port)), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        return (
            f"TLS handshake with {host}:{port} failed: {exc.verify_message} "
            "(check kafka.security.tls.ca_file and tls.check_hostname)"
        )
    except (ssl.SSLError, OSError, ConfigError) as exc:
        return f"TLS handshake with {host}:{port} failed: {exc}"
    return ""
