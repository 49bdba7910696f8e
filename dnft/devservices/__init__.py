"""Real local services for tests and the demo: anvil, tansu (Kafka API) and Postgres.

Each runs on a free 127.0.0.1 port, in its own process group, with its log in
``STATE_DIR/logs``. The same classes back ``dnft dev up`` and the pytest fixtures.
"""

from dnft.devservices.anvil import DEFAULT_CHAIN_ID, AnvilService, find_anvil, rpc_call
from dnft.devservices.base import DevService, ServiceExitedError
from dnft.devservices.moto import MotoService
from dnft.devservices.ports import LOOPBACK, free_port, port_is_free
from dnft.devservices.postgres import PostgresService, find_pg_bin
from dnft.devservices.process import ManagedProcess, pid_running
from dnft.devservices.stack import ServiceStatus, down, env_lines, status, up
from dnft.devservices.state import (
    DevState,
    DevStateError,
    ProcessRecord,
    ServiceRecord,
    default_state_dir,
    load_state,
    remove_state,
    save_state,
    state_file,
)
from dnft.devservices.tansu import TansuService, api_versions_ok, find_tansu
from dnft.devservices.web import LoopbackSite

__all__ = [
    "DEFAULT_CHAIN_ID",
    "LOOPBACK",
    "AnvilService",
    "DevService",
    "DevState",
    "DevStateError",
    "LoopbackSite",
    "ManagedProcess",
    "MotoService",
    "PostgresService",
    "ProcessRecord",
    "ServiceExitedError",
    "ServiceRecord",
    "ServiceStatus",
    "TansuService",
    "api_versions_ok",
    "default_state_dir",
    "down",
    "env_lines",
    "find_anvil",
    "find_pg_bin",
    "find_tansu",
    "free_port",
    "load_state",
    "pid_running",
    "port_is_free",
    "remove_state",
    "rpc_call",
    "save_state",
    "state_file",
    "status",
    "up",
]
