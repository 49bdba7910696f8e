"""The state file ``dnft dev up`` leaves behind: what runs, where, and how to stop it.

``STATE_DIR/state.json`` is the only link between ``dev up`` and the later ``status``, ``env``
and ``down`` commands (each a separate process), so it records every PID with its start time,
every endpoint and log path, and the settings needed to stop a service again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dnft.errors import DnftError

STATE_DIR_ENV = "DNFT_DEV_STATE_DIR"
DEFAULT_STATE_DIR = Path(".dnft/dev")
STATE_FILE_NAME = "state.json"

# A value in ``endpoints`` or ``settings``: JSON scalars only, so the file stays readable.
Scalar = str | int | float | bool | None


class DevStateError(DnftError, ValueError):
    """The state file exists but cannot be read or does not match the expected shape."""


class ProcessRecord(BaseModel):
    """One process of a service. ``ticks`` is its start time, so a reused PID is never signalled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str
    pid: int
    ticks: int | None


class ServiceRecord(BaseModel):
    """One running service: its processes, endpoints, log files and the settings to stop it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    processes: tuple[ProcessRecord, ...]
    endpoints: dict[str, str | int]
    logs: dict[str, str]
    settings: dict[str, Scalar] = {}


class DevState(BaseModel):
    """The whole state file: one record per service, in start order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    created_at: str
    services: tuple[ServiceRecord, ...]

    @classmethod
    def now(cls, services: tuple[ServiceRecord, ...]) -> DevState:
        return cls(created_at=datetime.now(UTC).isoformat(timespec="seconds"), services=services)

    def service(self, name: str) -> ServiceRecord | None:
        return next((s for s in self.services if s.name == name), None)


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$DNFT_DEV_STATE_DIR`` if set, else ``.dnft/dev`` under the current directory."""
    env = os.environ if env is None else env
    value = env.get(STATE_DIR_ENV)
    return Path(value) if value else DEFAULT_STATE_DIR


def state_file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE_NAME


def load_state(state_dir: Path) -> DevState | None:
    """Read the state file; None when there is none. Raises DevStateError when it is invalid."""
    path = state_file(state_dir)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DevStateError(f"cannot read {path}: {exc}") from exc
    try:
        return DevState.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise DevStateError(f"{path} is not JSON: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise DevStateError(f"{path}: {key}: {first['msg']}") from exc


def save_state(state_dir: Path, state: DevState) -> Path:
    """Write the state file atomically (temp file + rename) so a reader never sees half of it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_file(state_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def remove_state(state_dir: Path) -> None:
    state_file(state_dir).unlink(missing_ok=True)
