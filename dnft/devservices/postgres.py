"""A throwaway local Postgres cluster: initdb, ``pg_ctl start``, a ``dnft`` database.

Postgres refuses to run as root, and these machines run as root: the server programs then run
as the ``postgres`` user, on a cluster directory that user owns (FACTS.md, Postgres).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from dnft.devservices.base import (
    ProcessService,
    ServiceExitedError,
    attach,
    failure,
    setting_int,
    setting_str,
    start_on_free_port,
    stop_processes,
    wait_ready,
)
from dnft.devservices.ports import LOOPBACK
from dnft.devservices.process import ManagedProcess, start_ticks
from dnft.devservices.state import Scalar, ServiceRecord
from dnft.errors import MissingDependencyError, ServiceError

PG_BIN_ENV = "DNFT_PG_BIN"
DEFAULT_USER = "dnft"
DEFAULT_DATABASE = "dnft"
_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_CLIENT_PROGRAMS = ("pg_isready", "createdb", "dropdb")
# A Unix socket path is limited to 107 bytes; leave room for "/.s.PGSQL.65535".
_MAX_SOCKET_DIR = 90
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_pg_bin() -> Path:
    """The directory with initdb, pg_ctl and the client programs.

    ``$DNFT_PG_BIN``, else the newest ``/usr/lib/postgresql/N/bin`` (Debian keeps the server
    programs off PATH), else the directory of ``pg_ctl`` on PATH. Raises MissingDependencyError
    naming the apt step when none has them all.
    """
    programs = _SERVER_PROGRAMS + _CLIENT_PROGRAMS
    override = os.environ.get(PG_BIN_ENV)
    if override:
        missing = [name for name in programs if not (Path(override) / name).is_file()]
        if missing:
            raise MissingDependencyError(f"{PG_BIN_ENV}={override} lacks {', '.join(missing)}")
        return Path(override)
    candidates: list[Path] = []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if all((directory / name).is_file() for name in programs):
            return directory
    raise MissingDependencyError(
        "Postgres server programs (initdb, pg_ctl) not found: apt-get install postgresql "
        f"(or set {PG_BIN_ENV} to their directory)"
    )


def _server_owner() -> pwd.struct_passwd | None:
    """The account to run the server programs as: ``postgres`` under root, else None (us)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise MissingDependencyError(
            "Postgres refuses to run as root and there is no `postgres` user to run it as: "
            "apt-get install postgresql creates one"
        ) from None


def _reachable(path: Path, owner: pwd.struct_passwd | None) -> bool:
    """Whether ``owner`` can traverse every existing ancestor of ``path`` (mode bits only)."""
    if owner is None:
        return True
    for ancestor in [path, *path.parents]:
        try:
            st = ancestor.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == owner.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == owner.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


class PostgresService(ProcessService):
    """A Postgres cluster of its own on 127.0.0.1: user ``dnft`` (trust auth), database ``dnft``.

    The cluster lives in ``STATE_DIR/postgres`` when the ``postgres`` user can reach it and the
    socket path fits, else in a fresh ``/tmp/dnft-pg-*`` (pytest's tmp dirs are root-only).
    ``fsync`` is off by default: the data is throwaway and it makes tests faster; a clean
    ``restart()`` loses nothing either way. Ready when ``pg_isready`` succeeds (about 1 s for
    initdb + start on this machine, 0.1 s for a restart).
    """

    name = "postgres"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        fsync: bool = False,
        settings: Mapping[str, str] | None = None,
        user: str = DEFAULT_USER,
        database: str = DEFAULT_DATABASE,
        ready_timeout: float = 30.0,
    ) -> None:
        super().__init__(state_dir, port=port, ready_timeout=ready_timeout)
        self.fsync = fsync
        self.settings = dict(settings or {})
        self.user = user
        self.database = database
        self.cluster_dir: Path | None = None
        self.bin_dir: Path | None = None

    # -- endpoints -------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{LOOPBACK}:{self._bound_port()}/{database}"

    @property
    def data_dir(self) -> Path:
        return self._cluster() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._cluster() / "run"

    @property
    def endpoints(self) -> dict[str, str | int]:
        return {"dsn": self.dsn, "data_dir": str(self.data_dir), "socket_dir": str(self.socket_dir)}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """initdb on first use, start the server, create the database; block until ready.

        Raises ServiceError (with the log tail) or MissingDependencyError.
        """
        began = time.monotonic()
        self.bin_dir = self.bin_dir or find_pg_bin()
        owner = _server_owner()
        cluster = self._prepare_cluster(owner)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._run_logged(
                [
                    str(self.bin_dir / "initdb"),
                    *("-D", str(self.data_dir), "-A", "trust", "-U", self.user),
                    # C locale: same sort order everywhere; --no-sync: throwaway data.
                    *("-E", "UTF8", "--locale=C", "--no-sync"),
                ],
                owner,
                cluster,
                what="initdb",
            )
        self.port = start_on_free_port(lambda port: self._start_once(port, owner), self.port)
        self._create_database(self.database, exist_ok=True)
        self.ready_seconds = time.monotonic() - began

    def _start_once(self, port: int, owner: pwd.struct_passwd | None) -> None:
        assert self.bin_dir is not None
        options = ["-p", str(port), "-k", str(self.socket_dir)]
        options += ["-c", f"listen_addresses={LOOPBACK}"]
        if not self.fsync:
            options += ["-c", "fsync=off"]
        for key, value in self.settings.items():
            options += ["-c", f"{key}={value}"]
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w"]
        pg_ctl += ["-t", str(max(1, int(self.ready_timeout))), "-o", shlex.join(options), "start"]
        try:
            self._run_logged(pg_ctl, owner, self._cluster(), what=f"pg_ctl start on port {port}")
        except ServiceError as exc:
            # A server that came up late must not hold the data directory for the next try.
            leftover = self._postmaster()
            if leftover is not None:
                self._pg_ctl_stop(owner)
                leftover.terminate(first_signal=signal.SIGINT)
            # Mostly "could not bind": let start_on_free_port try another port.
            raise ServiceExitedError(str(exc)) from exc
        process = self._postmaster()
        if process is None:
            reason = "started but left no running postmaster"
            raise ServiceError(failure("postgres", reason, self.log_path))
        isready = [str(self.bin_dir / "pg_isready"), "-h", LOOPBACK, "-p", str(port)]
        isready += ["-U", self.user, "-d", "postgres", "-t", "1"]

        def probe() -> bool:
            return _quiet(isready).returncode == 0

        try:
            wait_ready(
                probe,
                what=f"postgres on port {port}",
                timeout=self.ready_timeout,
                log_path=self.log_path,
                process=process,
                port=port,
            )
        except BaseException:
            self._pg_ctl_stop(owner)
            raise
        self._process = process

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (clients are disconnected); SIGINT/SIGKILL as a fallback.

        Blocks until the server's processes are gone; keeps the data for ``start()``.
        Raises ServiceError when a process survives.
        """
        process = self._process or self._postmaster()
        if process is None:
            return
        if process.alive():
            self._pg_ctl_stop(_server_owner())
        # SIGINT is Postgres's "fast" shutdown; SIGTERM would wait for clients to leave.
        stop_processes([process], "postgres", self.log_path, first_signal=signal.SIGINT)
        self._process = None

    def restart(self) -> None:
        """Stop and start on the same data directory and port; data survives."""
        super().restart()

    def destroy(self) -> None:
        """Stop and delete the cluster directory."""
        self.stop()
        if self.cluster_dir is not None:
            shutil.rmtree(self.cluster_dir, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its DSN. Raises ServiceError if it exists."""
        self._create_database(name, exist_ok=False)
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting its clients (``WITH (FORCE)``); a missing one is fine."""
        self._client(["dropdb", "--if-exists", "--force", _checked_name(name)])

    def _create_database(self, name: str, *, exist_ok: bool) -> None:
        result = self._client(["createdb", _checked_name(name)], check=False)
        if result.returncode != 0 and not (exist_ok and "already exists" in result.stdout):
            raise ServiceError(f"postgres: createdb {name} failed: {result.stdout.strip()}")

    def _client(
        self, argv: Sequence[str], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if self.bin_dir is None or self.port is None:
            raise RuntimeError("postgres is not started")
        full = [str(self.bin_dir / argv[0]), "-h", LOOPBACK, "-p", str(self.port), "-U", self.user]
        result = _quiet([*full, *argv[1:]])
        if check and result.returncode != 0:
            raise ServiceError(f"postgres: {' '.join(argv)} failed: {result.stdout.strip()}")
        return result

    # -- records ---------------------------------------------------------------------------

    def record(self) -> ServiceRecord:
        settings: dict[str, Scalar] = {
            "port": self.port,
            "cluster_dir": str(self._cluster()),
            "bin_dir": None if self.bin_dir is None else str(self.bin_dir),
            "user": self.user,
            "database": self.database,
        }
        return self._record(settings)

    @classmethod
    def from_record(cls, record: ServiceRecord, state_dir: Path) -> PostgresService:
        """Attach to a cluster started by another process (``dnft dev up``), to check or stop it."""
        service = cls(
            state_dir,
            port=setting_int(record, "port"),
            user=setting_str(record, "user") or DEFAULT_USER,
            database=setting_str(record, "database") or DEFAULT_DATABASE,
        )
        cluster = setting_str(record, "cluster_dir")
        bin_dir = setting_str(record, "bin_dir")
        service.cluster_dir = None if cluster is None else Path(cluster)
        service.bin_dir = None if bin_dir is None else Path(bin_dir)
        service.log_path = Path(record.logs.get("postgres", str(service.log_path)))
        service._process = attach(record, "postmaster")
        return service

    # -- internals -------------------------------------------------------------------------

    def _cluster(self) -> Path:
        if self.cluster_dir is None:
            raise RuntimeError("postgres has no cluster directory before start()")
        return self.cluster_dir

    def _prepare_cluster(self, owner: pwd.struct_passwd | None) -> Path:
        """Choose (once) and create the cluster directory, owned by the server's account."""
        if self.cluster_dir is None:
            preferred = (self.state_dir / "postgres").absolute()
            # Create the parents first so their real modes (umask) are what gets checked.
            preferred.parent.mkdir(parents=True, exist_ok=True)
            fits = len(str(preferred / "run")) <= _MAX_SOCKET_DIR
            if fits and _reachable(preferred, owner):
                preferred.mkdir(parents=True, exist_ok=True)
                self.cluster_dir = preferred
            else:
                self.cluster_dir = Path(tempfile.mkdtemp(prefix="dnft-pg-"))
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            for path in (self.cluster_dir, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        return self.cluster_dir

    def _postmaster(self) -> ManagedProcess | None:
        """The running postmaster, from ``postmaster.pid`` (pg_ctl's child, so not ours)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError, RuntimeError):
            return None
        ticks = start_ticks(pid)
        return None if ticks is None else ManagedProcess(role="postmaster", pid=pid, ticks=ticks)

    def _pg_ctl_stop(self, owner: pwd.struct_passwd | None) -> None:
        bin_dir = self.bin_dir or find_pg_bin()
        argv = [str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "30"]
        # Errors are not fatal here: the caller's signal fallback finishes the job.
        with contextlib.suppress(ServiceError):
            self._run_logged(
                [*argv, "-m", "fast", "stop"], owner, self._cluster(), what="pg_ctl stop"
            )

    def _run_logged(
        self, argv: Sequence[str], owner: pwd.struct_passwd | None, cwd: Path, *, what: str
    ) -> None:
        """Run a server program as ``owner`` with output appended to the log; wait for it.

        ``pg_ctl start`` hands its stdout to the postmaster, so the server logs there too, and
        never into a pipe a caller might be reading. Raises ServiceError with the log tail.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== dnft runs: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                result = subprocess.run(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    user=None if owner is None else owner.pw_uid,
                    group=None if owner is None else owner.pw_gid,
                    extra_groups=None if owner is None else [],
                    start_new_session=True,
                    timeout=self.ready_timeout + 30,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise ServiceError(failure(what, "timed out", self.log_path)) from exc
        if result.returncode != 0:
            reason = f"failed with status {result.returncode}"
            raise ServiceError(failure(what, reason, self.log_path))


def _quiet(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    )


def _checked_name(name: str) -> str:
    # Names go on a command line and into DSNs: keep them to plain identifiers.
    if not _DB_NAME.match(name):
        raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
    return name
