"""A local anvil chain node (Foundry), run from the npm package's binary."""

from __future__ import annotations

import json
import os
import platform
import shutil
import urllib.request
from pathlib import Path

from dnft.devservices.base import (
    ProcessService,
    attach,
    existing_file,
    setting_int,
    spawn_ready,
)
from dnft.devservices.ports import LOOPBACK
from dnft.devservices.state import ServiceRecord
from dnft.errors import MissingDependencyError

ANVIL_BIN_ENV = "DNFT_ANVIL_BIN"
DEFAULT_CHAIN_ID = 31337
# Keep 256 blocks of state: a bare --prune-history keeps none and anvil_reorg then fails, while
# no pruning at all grew anvil to 14 GB at 200k minted tokens (FACTS.md, Chain).
DEFAULT_PRUNE_HISTORY = 256

_REPO_ROOT = Path(__file__).resolve().parents[2]
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def find_anvil() -> Path:
    """The anvil binary: ``$DNFT_ANVIL_BIN``, else ``node_modules`` (repo or cwd), else PATH.

    The binary itself, never ``npx anvil``: npx wraps it in node, so the PID would be node's.
    Raises MissingDependencyError naming ``npm ci`` when none is found.
    """
    override = os.environ.get(ANVIL_BIN_ENV)
    if override:
        return existing_file(Path(override), ANVIL_BIN_ENV)
    package = f"anvil-{platform.system().lower()}-{_ARCH.get(platform.machine().lower(), '')}"
    for root in (_REPO_ROOT, Path.cwd()):
        candidate = root / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"
        if candidate.is_file():
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise MissingDependencyError(
        f"anvil not found (looked for node_modules/@foundry-rs/{package}/bin/anvil and PATH): "
        f"run `npm ci` in {_REPO_ROOT}, or set {ANVIL_BIN_ENV}"
    )


def rpc_call(
    url: str, method: str, params: list[object] | None = None, timeout: float = 1.0
) -> object:
    """One blocking JSON-RPC call; returns ``result``. Raises OSError or ValueError on failure."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise ValueError(f"{method}: {answer['error']}")
    return answer["result"]


class AnvilService(ProcessService):
    """anvil on 127.0.0.1: automine by default, or a block every ``block_time`` seconds.

    Ready when ``eth_chainId`` answers the configured chain id (about 50 ms on this machine).
    """

    name = "anvil"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        block_time: float | None = None,
        prune_history: int = DEFAULT_PRUNE_HISTORY,
        silent: bool = True,
        ready_timeout: float = 10.0,
        slots_in_an_epoch: int | None = None,
    ) -> None:
        super().__init__(state_dir, port=port, ready_timeout=ready_timeout)
        self.chain_id = chain_id
        self.block_time = block_time
        # The node's tags: ``safe`` is this many blocks behind the head, ``finalized`` twice
        # as many (FACTS.md, Chain); None: anvil's default.
        self.slots_in_an_epoch = slots_in_an_epoch
        self.prune_history = prune_history
        self.silent = silent

    @property
    def rpc_url(self) -> str:
        return f"http://{LOOPBACK}:{self._bound_port()}"

    @property
    def ws_url(self) -> str:
        # anvil serves WebSocket upgrades on the same port as HTTP.
        return f"ws://{LOOPBACK}:{self._bound_port()}"

    @property
    def endpoints(self) -> dict[str, str | int]:
        return {"rpc_url": self.rpc_url, "ws_url": self.ws_url, "chain_id": self.chain_id}

    def argv(self, binary: Path, port: int) -> list[str]:
        argv = [str(binary), "--host", LOOPBACK, "--port", str(port)]
        argv += ["--chain-id", str(self.chain_id), "--prune-history", str(self.prune_history)]
        if self.block_time is not None:
            argv += ["--block-time", f"{self.block_time:g}"]
        if self.slots_in_an_epoch is not None:
            argv += ["--slots-in-an-epoch", str(self.slots_in_an_epoch)]
        if self.silent:
            argv.append("--silent")
        return argv

    def start(self) -> None:
        """Start anvil and block until it is ready. Raises ServiceError, MissingDependencyError."""
        binary = find_anvil()
        self._start_timed(lambda port: self._start_once(binary, port))

    def _start_once(self, binary: Path, port: int) -> None:
        url = f"http://{LOOPBACK}:{port}"

        def probe() -> bool:
            try:
                return rpc_call(url, "eth_chainId", timeout=0.5) == hex(self.chain_id)
            except (OSError, ValueError):
                return False

        self._process = spawn_ready(
            "anvil",
            self.argv(binary, port),
            self.log_path,
            probe,
            port=port,
            timeout=self.ready_timeout,
        )

    def restart(self) -> None:
        """Stop and start on the same port. The chain state is lost (anvil keeps it in memory)."""
        super().restart()

    def record(self) -> ServiceRecord:
        return self._record({"port": self._bound_port(), "block_time": self.block_time})

    @classmethod
    def from_record(cls, record: ServiceRecord, state_dir: Path) -> AnvilService:
        """Attach to an anvil started by another process (``dnft dev up``), to check or stop it."""
        service = cls(
            state_dir,
            port=setting_int(record, "port"),
            chain_id=setting_int(record, "chain_id") or DEFAULT_CHAIN_ID,
        )
        service.log_path = Path(record.logs.get("anvil", str(service.log_path)))
        service._process = attach(record, "anvil")
        return service
