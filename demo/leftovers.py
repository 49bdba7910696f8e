"""What a demo leaves while it runs, so that the next one can clear up after a demo that was
killed rather than stopped: a record of its ``dnft run --all`` process, and its services."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dnft.devservices import down as services_down
from dnft.devservices import load_state
from dnft.devservices.process import ManagedProcess, pid_running, start_ticks

# How long `dnft run --all` has to stop on SIGTERM before it is killed.
DAEMONS_STOP_S = 30.0
RUN_RECORD = "demo.json"


def save_run_record(state_dir: Path, daemons: ManagedProcess) -> None:
    record = {"pid": daemons.pid, "ticks": daemons.ticks}
    (state_dir / RUN_RECORD).write_text(json.dumps(record) + "\n")


def forget_run_record(state_dir: Path) -> None:
    (state_dir / RUN_RECORD).unlink(missing_ok=True)


def clear_leftovers(state_dir: Path, say: Callable[[str], None]) -> None:
    """Stop what a previous demo in ``state_dir`` left running (it was killed, not stopped):
    its ``dnft run --all`` and its services. Blocks; raises ServiceError when they survive."""
    record_file = state_dir / RUN_RECORD
    if record_file.exists():
        record = json.loads(record_file.read_text())
        pid, ticks = int(record["pid"]), record.get("ticks")
        if pid_running(pid, ticks) and ticks == start_ticks(pid):
            say(f"stopping dnft run --all (pid {pid}) left by an earlier demo")
            ManagedProcess(role="dnft-run", pid=pid, ticks=ticks).terminate(DAEMONS_STOP_S)
        record_file.unlink(missing_ok=True)
    if load_state(state_dir) is not None:
        stopped = services_down(state_dir)
        if stopped:
            say(f"stopped services left by an earlier demo: {', '.join(stopped)}")
