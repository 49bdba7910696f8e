"""The dev-services state file, port picking and process bookkeeping, without any server."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from dnft.devservices import (
    DevState,
    DevStateError,
    ProcessRecord,
    ServiceRecord,
    default_state_dir,
    env_lines,
    free_port,
    load_state,
    pid_running,
    port_is_free,
    remove_state,
    save_state,
    state_file,
)
from dnft.devservices.process import ManagedProcess, group_members, spawn, start_ticks
from dnft.devservices.stack import ServiceStatus, status


def sample_state() -> DevState:
    return DevState.now(
        (
            ServiceRecord(
                name="anvil",
                processes=(ProcessRecord(role="anvil", pid=4_194_301, ticks=5),),
                endpoints={
                    "rpc_url": "http://127.0.0.1:8545",
                    "ws_url": "ws://127.0.0.1:8545",
                    "chain_id": 31337,
                },
                logs={"anvil": "/tmp/x/logs/anvil.log"},
                settings={"port": 8545, "block_time": None},
            ),
            ServiceRecord(
                name="tansu",
                processes=(
                    ProcessRecord(role="tansu", pid=4_194_302, ticks=6),
                    ProcessRecord(role="moto", pid=4_194_303, ticks=None),
                ),
                endpoints={"bootstrap": "127.0.0.1:9092", "storage": "s3://tansu/"},
                logs={"tansu": "/tmp/x/logs/tansu.log"},
                settings={"port": 9092, "durable": True, "moto_port": 5000},
            ),
            ServiceRecord(
                name="postgres",
                processes=(ProcessRecord(role="postmaster", pid=4_194_304, ticks=7),),
                endpoints={"dsn": "postgresql://dnft@127.0.0.1:5432/dnft", "data_dir": "/d"},
                logs={"postgres": "/tmp/x/logs/postgres.log"},
                settings={"port": 5432, "cluster_dir": "/d/.."},
            ),
        )
    )


class TestStateFile:
    """state.json round trip and validation."""

    def test_round_trip_keeps_every_field(self, tmp_path: Path) -> None:
        state = sample_state()
        path = save_state(tmp_path / "dev", state)
        assert path == state_file(tmp_path / "dev")
        loaded = load_state(tmp_path / "dev")
        assert loaded == state
        assert loaded is not None
        anvil = loaded.service("anvil")
        assert anvil is not None
        assert anvil.endpoints["chain_id"] == 31337  # an int stays an int
        assert loaded.service("nope") is None

    def test_missing_file_is_none_and_remove_is_idempotent(self, tmp_path: Path) -> None:
        assert load_state(tmp_path) is None
        save_state(tmp_path, sample_state())
        remove_state(tmp_path)
        remove_state(tmp_path)
        assert load_state(tmp_path) is None

    def test_save_leaves_no_temp_file(self, tmp_path: Path) -> None:
        save_state(tmp_path, sample_state())
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"]

    def test_invalid_shape_names_the_key(self, tmp_path: Path) -> None:
        raw = sample_state().model_dump(mode="json")
        raw["services"][1]["processes"][0]["pid"] = "not-a-pid"
        state_file(tmp_path).write_text(json.dumps(raw))
        with pytest.raises(DevStateError, match=r"services\.1\.processes\.0\.pid"):
            load_state(tmp_path)

    def test_not_json(self, tmp_path: Path) -> None:
        state_file(tmp_path).write_text("{")
        with pytest.raises(DevStateError, match="not JSON"):
            load_state(tmp_path)

    def test_default_state_dir_env_override(self) -> None:
        assert default_state_dir({}) == Path(".dnft/dev")
        assert default_state_dir({"DNFT_DEV_STATE_DIR": "/x/y"}) == Path("/x/y")

    def test_env_lines_are_shell_safe(self) -> None:
        lines = env_lines(sample_state())
        assert lines == [
            "export DNFT_DEV_RPC_URL=http://127.0.0.1:8545",
            "export DNFT_DEV_WS_URL=ws://127.0.0.1:8545",
            "export DNFT_DEV_CHAIN_ID=31337",
            "export DNFT_DEV_KAFKA=127.0.0.1:9092",
            "export DNFT_DEV_PG_DSN=postgresql://dnft@127.0.0.1:5432/dnft",
        ]

    def test_status_of_dead_processes(self, tmp_path: Path) -> None:
        save_state(tmp_path, sample_state())
        lines = status(tmp_path)
        assert lines is not None
        assert [(s.name, s.endpoint, s.pids) for s in lines] == [
            ("anvil", "http://127.0.0.1:8545", (4_194_301,)),
            ("tansu", "127.0.0.1:9092", (4_194_302, 4_194_303)),
            ("postgres", "postgresql://dnft@127.0.0.1:5432/dnft", (4_194_304,)),
        ]
        # No process has a PID above the kernel's pid_max (4194304 at most).
        assert not any(s.alive for s in lines)
        assert ServiceStatus("anvil", "http://x", (1, 2), True).line().split() == [
            "anvil",
            "http://x",
            "pid",
            "1,2",
            "alive",
        ]


class TestPorts:
    """Free port picking on 127.0.0.1."""

    def test_ports_are_distinct_and_bindable(self) -> None:
        ports = [free_port() for _ in range(20)]
        assert len(set(ports)) == len(ports)
        assert all(port_is_free(p) for p in ports)

    def test_taken_port_is_not_free(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            assert not port_is_free(sock.getsockname()[1])


class TestProcesses:
    """Liveness by PID and start time, and stopping a process group."""

    def test_own_pid_matches_only_its_start_time(self) -> None:
        ticks = start_ticks(os.getpid())
        assert pid_running(os.getpid(), ticks)
        assert ticks is not None
        assert not pid_running(os.getpid(), ticks + 1)

    def test_terminate_stops_the_whole_group(self, tmp_path: Path) -> None:
        # A shell that starts a grandchild: both must go when the group is stopped.
        script = "sleep 60 & wait"
        proc = spawn("sh", ["sh", "-c", script], tmp_path / "sh.log")
        assert proc.alive()
        members: list[int] = []
        for _ in range(200):
            members = group_members(proc.pid, proc.ticks)
            if len(members) == 2:
                break
            time.sleep(0.01)
        assert len(members) == 2
        assert proc.terminate(timeout=5.0) == []
        assert not proc.alive()
        assert group_members(proc.pid, proc.ticks) == []
        attached = ManagedProcess(role="sh", pid=proc.pid, ticks=proc.ticks)
        assert not attached.alive()
        assert "dnft starts: sh -c" in (tmp_path / "sh.log").read_text()
