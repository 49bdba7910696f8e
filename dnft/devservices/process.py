"""OS-level process handling for the dev services: spawn detached, check liveness, stop a group.

Liveness is judged from ``/proc`` where it exists, not from ``kill(pid, 0)``: a zombie answers
``kill`` and a recycled PID belongs to someone else. Each process is recorded with its start time
in clock ticks (field 22 of ``/proc/PID/stat``) so a later ``dnft dev down`` only signals the
process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` that liveness checks need."""

    state: str
    pgid: int
    start_ticks: int


def read_stat(pid: int) -> ProcStat | None:
    """Return the process's stat, or None when it does not exist (or /proc is unavailable)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(state=rest[0], pgid=int(rest[2]), start_ticks=int(rest[19]))


def start_ticks(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat.start_ticks


def pid_running(pid: int, ticks: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if ``ticks`` is given, is the same process."""
    if not _PROC.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = read_stat(pid)
    if stat is None or stat.state in ("Z", "X"):
        return False
    return ticks is None or stat.start_ticks == ticks


def group_members(pgid: int, not_before_ticks: int | None = None) -> list[int]:
    """PIDs of live processes in process group ``pgid`` started no earlier than the leader.

    The start-time filter keeps an unrelated group that reused the number out of the answer.
    """
    if not _PROC.is_dir():
        return [pgid] if pid_running(pgid) else []
    members: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_stat(int(entry.name))
        if stat is None or stat.pgid != pgid or stat.state in ("Z", "X"):
            continue
        if not_before_ticks is not None and stat.start_ticks < not_before_ticks:
            continue
        members.append(int(entry.name))
    return members


def listens_on(pid: int, port: int) -> bool | None:
    """Whether ``pid`` holds a listening TCP socket on ``port``; None when it cannot be told.

    Guards readiness against a stranger that grabbed the same port first (other test sessions
    pick free ports on this machine at the same time).
    """
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            return None
        for line in lines:
            cols = line.split()
            # cols[1] is "ADDR:PORT" in hex, cols[3] the state (0A = LISTEN), cols[9] the inode.
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return False
    try:
        fds = list((_PROC / str(pid) / "fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


@dataclass
class ManagedProcess:
    """A process a dev service started, as a child (``popen`` set) or attached from a record.

    The process leads its own process group (started with ``start_new_session``, or, for the
    Postgres postmaster, by ``pg_ctl``'s own ``setsid``), so stopping signals the whole group.
    """

    role: str
    pid: int
    ticks: int | None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def alive(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            return False  # poll() also reaps the zombie
        return pid_running(self.pid, self.ticks)

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def survivors(self) -> list[int]:
        """Live processes of this process's group (the leader included, if alive)."""
        if self.ticks is None and not self.alive():
            return []  # without a start time, an orphaned group number cannot be trusted
        return group_members(self.pid, self.ticks)

    def terminate(
        self, timeout: float = 10.0, first_signal: signal.Signals = signal.SIGTERM
    ) -> list[int]:
        """Send ``first_signal`` to the group, wait up to ``timeout``, then SIGKILL what is left.

        Blocks until the group is gone or 5 s after the SIGKILL; returns the PIDs still alive
        then (empty on success).
        """
        self._signal_group(first_signal)
        if not self._wait_gone(timeout):
            self._signal_group(signal.SIGKILL)
            self._wait_gone(5.0)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=1.0)
        return self.survivors()

    def _signal_group(self, sig: signal.Signals) -> None:
        targets = self.survivors()
        if self.alive():
            # The leader is ours (start time checked): one killpg reaches every member.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            return
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen is not None:
                self.popen.poll()
            if not self.survivors():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def spawn(
    role: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` detached: own session, stdin from /dev/null, output appended to the log.

    Detached so ``dnft dev up`` can exit and leave the service running, and so a stop can
    signal the whole group. The child must not inherit the caller's stdout: a caller capturing
    it (``subprocess.run(..., capture_output=True)``) would otherwise wait for EOF forever.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        log.write(f"=== {stamp} dnft starts: {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    return ManagedProcess(role=role, pid=popen.pid, ticks=start_ticks(popen.pid), popen=popen)
