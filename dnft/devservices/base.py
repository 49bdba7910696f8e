"""What every dev service shares: the service contract, readiness polling and port retries."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from dnft.devservices.ports import free_port
from dnft.devservices.process import ManagedProcess, listens_on, spawn
from dnft.devservices.state import ProcessRecord, ServiceRecord
from dnft.errors import MissingDependencyError, ServiceError

# How many fresh ports a service tries when the kernel's "free" port was taken meanwhile.
PORT_ATTEMPTS = 3


class DevService(Protocol):
    """A local server started for tests or the demo, on 127.0.0.1 only.

    ``start`` blocks until the service answers its readiness probe (or raises ServiceError with
    the tail of its log); ``stop`` blocks until its processes are gone; ``restart`` is a stop
    then a start on the same port and data, as fault tests need.
    """

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...

    def is_alive(self) -> bool: ...

    @property
    def endpoints(self) -> dict[str, str | int]: ...

    @property
    def processes(self) -> list[ManagedProcess]: ...

    def record(self) -> ServiceRecord: ...


def existing_file(path: Path, env_name: str) -> Path:
    """``path`` when it is an executable file; else MissingDependencyError naming ``env_name``."""
    if not path.is_file() or not os.access(path, os.X_OK):
        raise MissingDependencyError(f"{env_name}={path} is not an executable file")
    return path


class ServiceExitedError(ServiceError):
    """The process died (or another process owned its port) before it became ready."""


def tail_log(path: Path, lines: int = 25, max_chars: int = 4000) -> str:
    """The last ``lines`` lines of a log file, for error messages; never raises."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_chars))
            text = fh.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def failure(what: str, reason: str, log_path: Path) -> str:
    return f"{what} {reason}; log {log_path}, last lines:\n{tail_log(log_path)}"


def spawn_ready(
    role: str,
    argv: Sequence[str],
    log_path: Path,
    probe: Callable[[], bool],
    *,
    port: int,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """Start ``argv`` detached (see ``process.spawn``) and wait until ``probe`` says it is
    ready; a process that never gets ready is terminated. Raises what ``wait_ready`` raises."""
    process = spawn(role, argv, log_path, env=env)
    try:
        wait_ready(
            probe,
            what=f"{role} on port {port}",
            timeout=timeout,
            log_path=log_path,
            process=process,
            port=port,
        )
    except BaseException:
        process.terminate(timeout=2.0)
        raise
    return process


def wait_ready(
    probe: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log_path: Path,
    process: ManagedProcess,
    port: int,
) -> float:
    """Poll ``probe`` until it answers True; return the seconds it took.

    Raises ServiceExitedError when the process dies first or the port turns out to be held by
    another process, and ServiceError after ``timeout`` seconds. ``probe`` must not raise for
    "not ready yet" conditions.
    """
    started = time.monotonic()
    delay = 0.01
    while True:
        if not process.alive():
            code = process.exit_code()
            status = "exited" if code is None else f"exited with status {code}"
            raise ServiceExitedError(failure(what, f"{status} before it was ready", log_path))
        if probe():
            if listens_on(process.pid, port) is False:
                raise ServiceExitedError(
                    failure(what, f"is not the process listening on port {port}", log_path)
                )
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise ServiceError(failure(what, f"was not ready within {timeout:g} s", log_path))
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def start_on_free_port(start_once: Callable[[int], None], port: int | None) -> int:
    """Run ``start_once(port)``; with no fixed port, retry on fresh ports when one was taken.

    ``start_once`` must clean up after itself before raising ServiceExitedError.
    """
    if port is not None:
        start_once(port)
        return port
    for attempt in range(PORT_ATTEMPTS):
        candidate = free_port()
        try:
            start_once(candidate)
        except ServiceExitedError:
            if attempt == PORT_ATTEMPTS - 1:
                raise
            continue
        return candidate
    raise AssertionError("unreachable")


def stop_processes(
    processes: Sequence[ManagedProcess],
    what: str,
    log_path: Path,
    first_signal: signal.Signals = signal.SIGTERM,
) -> None:
    """Terminate each process group in order (``first_signal``, then SIGKILL after 10 s).

    Blocks until they are gone; raises ServiceError naming any PID that survived.
    """
    left = [pid for p in processes for pid in p.terminate(first_signal=first_signal)]
    if left:
        raise ServiceError(failure(what, f"left processes {left} running after SIGKILL", log_path))


def process_records(processes: Sequence[ManagedProcess]) -> tuple[ProcessRecord, ...]:
    return tuple(ProcessRecord(role=p.role, pid=p.pid, ticks=p.ticks) for p in processes)


def attach(record: ServiceRecord, role: str) -> ManagedProcess | None:
    """The recorded process with ``role``, as a ManagedProcess that is not our child."""
    for proc in record.processes:
        if proc.role == role:
            return ManagedProcess(role=proc.role, pid=proc.pid, ticks=proc.ticks)
    return None


def setting_int(record: ServiceRecord, key: str) -> int | None:
    value = record.settings.get(key, record.endpoints.get(key))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def setting_str(record: ServiceRecord, key: str) -> str | None:
    value = record.settings.get(key, record.endpoints.get(key))
    return value if isinstance(value, str) else None


class ProcessService:
    """What a dev service run as one main process shares: its port, log, start time and
    process; a timed start on a free port; stopping it; and the record ``dnft dev up`` keeps.

    Subclasses name themselves (``name``), define ``endpoints``, ``start`` (calling
    :meth:`_start_timed`) and ``stop``, and add what is theirs (moto beside tansu, initdb).
    """

    name: str  # set by each subclass

    def __init__(self, state_dir: Path, *, port: int | None, ready_timeout: float) -> None:
        self.state_dir = state_dir
        self.port = port
        self.ready_timeout = ready_timeout
        self.log_path = state_dir / "logs" / f"{self.name}.log"
        self.ready_seconds: float | None = None
        self._process: ManagedProcess | None = None

    @property
    def endpoints(self) -> dict[str, str | int]:
        raise NotImplementedError

    @property
    def processes(self) -> list[ManagedProcess]:
        return [] if self._process is None else [self._process]

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service's process; blocks until it is gone. Raises ServiceError."""
        self._stop_own()

    def restart(self) -> None:
        """Stop and start on the same port."""
        self.stop()
        self.start()

    def is_alive(self) -> bool:
        return self._process is not None and self._process.alive()

    def record(self) -> ServiceRecord:
        return self._record({"port": self.port})

    def _start_timed(self, start_once: Callable[[int], None]) -> None:
        """``start_once`` on the configured port, or on free ones until one works; records how
        long starting took (``ready_seconds``)."""
        began = time.monotonic()
        self.port = start_on_free_port(start_once, self.port)
        self.ready_seconds = time.monotonic() - began

    def _stop_own(self, first_signal: signal.Signals = signal.SIGTERM) -> None:
        if self._process is not None:
            stop_processes([self._process], self.name, self.log_path, first_signal)
            self._process = None

    def _record(
        self,
        settings: dict[str, str | int | float | bool | None],
        logs: dict[str, str] | None = None,
    ) -> ServiceRecord:
        return ServiceRecord(
            name=self.name,
            processes=process_records(self.processes),
            endpoints=self.endpoints,
            logs={self.name: str(self.log_path)} if logs is None else logs,
            settings=settings,
        )

    def _bound_port(self) -> int:
        if self.port is None:
            raise RuntimeError(f"{self.name} has no port before start()")
        return self.port
