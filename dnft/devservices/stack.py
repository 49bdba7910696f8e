"""The three dev services together, as ``dnft dev up/status/down/env`` run them.

Each command is a separate process, so everything goes through the state file: ``up`` writes it
after every service is ready, the others rebuild the services from it with ``from_record``.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnft.devservices.anvil import DEFAULT_CHAIN_ID, AnvilService
from dnft.devservices.base import DevService
from dnft.devservices.postgres import PostgresService
from dnft.devservices.process import ManagedProcess
from dnft.devservices.state import (
    DevState,
    DevStateError,
    ServiceRecord,
    load_state,
    remove_state,
    save_state,
    state_file,
)
from dnft.devservices.tansu import TansuService
from dnft.errors import DnftError, ServiceError

_FROM_RECORD: dict[str, Callable[[ServiceRecord, Path], DevService]] = {
    AnvilService.name: AnvilService.from_record,
    TansuService.name: TansuService.from_record,
    PostgresService.name: PostgresService.from_record,
}
# The endpoint ``status`` shows for each service.
_MAIN_ENDPOINT = {"anvil": "rpc_url", "tansu": "bootstrap", "postgres": "dsn"}


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``dnft dev status``."""

    name: str
    endpoint: str
    pids: tuple[int, ...]
    alive: bool

    def line(self) -> str:
        pids = ",".join(str(pid) for pid in self.pids) or "-"
        state = "alive" if self.alive else "dead"
        return f"{self.name:<9} {self.endpoint:<45} pid {pids:<13} {state}"


def attach_all(state: DevState, state_dir: Path) -> list[DevService]:
    """Rebuild every recorded service (not started, not owned: only to check or stop it)."""
    services: list[DevService] = []
    for record in state.services:
        factory = _FROM_RECORD.get(record.name)
        if factory is None:
            raise DevStateError(f"{state_file(state_dir)}: unknown service {record.name!r}")
        services.append(factory(record, state_dir))
    return services


def _record_processes(record: ServiceRecord) -> list[ManagedProcess]:
    return [ManagedProcess(role=p.role, pid=p.pid, ticks=p.ticks) for p in record.processes]


def status(state_dir: Path) -> list[ServiceStatus] | None:
    """The recorded services and whether each of their processes runs; None if none recorded."""
    state = load_state(state_dir)
    if state is None:
        return None
    lines = []
    for record in state.services:
        processes = _record_processes(record)
        endpoint = record.endpoints.get(_MAIN_ENDPOINT.get(record.name, ""), "")
        lines.append(
            ServiceStatus(
                name=record.name,
                endpoint=str(endpoint),
                pids=tuple(p.pid for p in processes),
                alive=bool(processes) and all(p.alive() for p in processes),
            )
        )
    return lines


def up(
    state_dir: Path,
    *,
    block_time: float | None = None,
    chain_id: int = DEFAULT_CHAIN_ID,
    durable_kafka: bool = False,
) -> tuple[DevState, list[DevService]]:
    """Start anvil, tansu and Postgres detached, then write the state file.

    Refuses (ServiceError) while a recorded service still runs; clears a stale state first.
    On a failure, stops what it started and re-raises. Returns the state and the started
    services (their ``ready_seconds`` say how long each took).
    """
    state_dir = state_dir.absolute()
    previous = load_state(state_dir)
    if previous is not None:
        running = [
            s.name for s in previous.services if any(p.alive() for p in _record_processes(s))
        ]
        if running:
            raise ServiceError(
                f"dev services already running ({', '.join(running)}), recorded in "
                f"{state_file(state_dir)}: run `dnft dev down --state-dir {state_dir}` first"
            )
        down(state_dir)

    services: list[DevService] = [
        AnvilService(state_dir, block_time=block_time, chain_id=chain_id),
        TansuService(state_dir, durable=durable_kafka),
        PostgresService(state_dir),
    ]
    started: list[DevService] = []
    try:
        for service in services:
            started.append(service)
            service.start()
    except BaseException:
        for service in reversed(started):
            with contextlib.suppress(DnftError):
                _stop_and_clean(service)
        raise
    state = DevState.now(tuple(service.record() for service in services))
    save_state(state_dir, state)
    return state, services


def _stop_and_clean(service: DevService) -> None:
    if isinstance(service, PostgresService):
        service.destroy()
    else:
        service.stop()


def down(state_dir: Path) -> list[str]:
    """Stop every recorded service, check no process is left, remove the state and data.

    Returns the names of the services it stopped ([] when nothing was recorded). Raises
    ServiceError naming surviving PIDs; the state file is then kept for another try. The
    ``logs/`` directory is kept for post-mortems.
    """
    state_dir = state_dir.absolute()
    state = load_state(state_dir)
    if state is None:
        return []
    errors: list[str] = []
    for service in reversed(attach_all(state, state_dir)):
        try:
            service.stop()
        except ServiceError as exc:
            errors.append(str(exc))
    left = {
        record.name: pids
        for record in state.services
        if (pids := [pid for p in _record_processes(record) for pid in p.survivors()])
    }
    if left:
        raise ServiceError(f"processes still running after stop: {left}; " + "; ".join(errors))
    for record in state.services:
        cluster = record.settings.get("cluster_dir")
        if isinstance(cluster, str):
            shutil.rmtree(cluster, ignore_errors=True)
    remove_state(state_dir)
    return [record.name for record in state.services]


def env_lines(state: DevState) -> list[str]:
    """``export NAME=value`` lines for ``eval "$(dnft dev env)"``."""
    values: dict[str, str | int] = {}
    anvil = state.service("anvil")
    tansu = state.service("tansu")
    postgres = state.service("postgres")
    if anvil is not None:
        values["DNFT_DEV_RPC_URL"] = anvil.endpoints["rpc_url"]
        values["DNFT_DEV_WS_URL"] = anvil.endpoints["ws_url"]
        values["DNFT_DEV_CHAIN_ID"] = anvil.endpoints["chain_id"]
    if tansu is not None:
        values["DNFT_DEV_KAFKA"] = tansu.endpoints["bootstrap"]
    if postgres is not None:
        values["DNFT_DEV_PG_DSN"] = postgres.endpoints["dsn"]
    return [f"export {name}={shlex.quote(str(value))}" for name, value in values.items()]
