"""`dnft demo` as a newcomer runs it, as a real subprocess with its own anvil, tansu and
Postgres: headless for 60 s it exits 0 (every token evolved, `dnft audit` clean); interactive,
it serves the gallery (screenshot in test-artifacts/) and Ctrl-C stops it. Either way no
process it started is left."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dnft.devservices import free_port, pid_running
from dnft.devservices.process import start_ticks
from tests.support.browser import ARTIFACTS, EXECUTABLE, chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _ppid(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[1])


class ProcessWatch:
    """Every process the demo started while it ran: its descendants (sampled every 0.2 s)
    and the services recorded in its state file (the Postgres postmaster is pg_ctl's child,
    not the demo's). Each is kept as (pid, start ticks), so a reused pid is not mistaken."""

    def __init__(self, root: int, state_dir: Path) -> None:
        self.root, self.state_dir = root, state_dir
        self.seen: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.2)

    def sample(self) -> None:
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        parents = {pid: _ppid(pid) for pid in pids}
        family, grew = {self.root}, True
        while grew:
            grown = {pid for pid, parent in parents.items() if parent in family}
            grew = not grown <= family
            family |= grown
        family.discard(self.root)
        state = self.state_dir / "state.json"
        try:
            for service in json.loads(state.read_text())["services"]:
                family.update(int(p["pid"]) for p in service["processes"])
        except (OSError, ValueError, KeyError):
            pass
        for pid in family:
            ticks = start_ticks(pid)
            if ticks is not None:
                self.seen.add((pid, ticks))

    def alive(self) -> list[int]:
        return sorted(pid for pid, ticks in self.seen if pid_running(pid, ticks))


def start_demo(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    """``dnft demo`` with its own state dir, output piped; no DNFT_* variable of the test
    environment leaks into it. A free API port unless ``args`` name one."""
    port = [] if "--api-port" in args else ["--api-port", str(free_port())]
    return subprocess.Popen(
        [sys.executable, "-m", "dnft", "demo", "--state-dir", str(state_dir), *port, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DNFT_")},
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "demo"
    yield path
    # A failed test must not leave services running for the rest of the session.
    subprocess.run(
        [sys.executable, "-m", "dnft", "dev", "down", "--state-dir", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )


class TestHeadlessDemo:
    """What CI runs: the whole demo for 60 s, then the evolution and audit checks."""

    def test_every_token_evolves_and_the_audit_is_clean(self, state_dir: Path) -> None:
        proc = start_demo(state_dir, "--headless", "--duration", "60")
        with ProcessWatch(proc.pid, state_dir) as watch:
            try:
                out, _ = proc.communicate(timeout=240)
            finally:
                if proc.poll() is None:
                    proc.kill()
        assert proc.returncode == 0, out
        assert "PASS: every token evolved and the audit is clean" in out
        assert "evolved: all 20 tokens have more than one version" in out
        assert "kafka matches; postgres matches" in out
        assert "stopped: no process left" in out
        assert len(watch.seen) >= 4, f"anvil, tansu, postgres and dnft run: {watch.seen}"
        assert watch.alive() == [], f"left running: {watch.alive()}\n{out}"


class TestInteractiveDemo:
    """The gallery URL is printed, art evolves there, and Ctrl-C stops everything."""

    def test_gallery_then_ctrl_c_leaves_nothing(self, state_dir: Path) -> None:
        port = free_port()
        proc = start_demo(state_dir, "--api-port", str(port))
        lines: list[str] = []
        stdout = proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")))
        reader.start()
        try:
            with ProcessWatch(proc.pid, state_dir) as watch:
                wait_for_line(lines, f"gallery: http://127.0.0.1:{port}/", proc, 120)
                wait_for_line(lines, "evolved 20/20", proc, 60)
                wait_for_line(lines, "juvenile", proc, 60)  # fed three times: a grown stage
                asyncio.run(screenshot_gallery(port))
                proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
                code = proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(10)
        out = "".join(lines)
        assert code == 0, out
        assert "stopped: no process left" in out
        assert watch.alive() == [], f"left running: {watch.alive()}\n{out}"


def wait_for_line(
    lines: list[str], text: str, proc: subprocess.Popen[Any], timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in list(lines):
            if text in line:
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no line with {text!r} after {timeout_s} s:\n{''.join(lines)}")


async def screenshot_gallery(port: int) -> None:
    """The collection page and token 1's page in headless Chromium, saved to test-artifacts/
    (docs/gallery.png is a copy). Checks the page shows every token with its art."""
    if EXECUTABLE is None:
        return  # the gallery's own browser test says why it is skipped
    ARTIFACTS.mkdir(exist_ok=True)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.wait_for_function(
            """() => { const imgs = [...document.querySelectorAll("img")];
                       return imgs.length >= 20
                              && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            timeout=20_000,
        )
        await page.screenshot(path=str(ARTIFACTS / "demo-gallery.png"), full_page=True)
        await page.goto(f"http://127.0.0.1:{port}/tokens/1/view")
        await page.wait_for_function(
            """() => { const img = document.getElementById("art");
                       return img && img.complete && img.naturalWidth > 0; }""",
            timeout=20_000,
        )
        await page.screenshot(path=str(ARTIFACTS / "demo-token.png"), full_page=True)


class TestKilledDemo:
    """A demo killed with SIGKILL cannot clean up; `dnft demo --down` (make demo-down) does."""

    def test_down_stops_what_a_killed_demo_left(self, state_dir: Path) -> None:
        proc = start_demo(state_dir)
        lines: list[str] = []
        stdout = proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")))
        reader.start()
        try:
            with ProcessWatch(proc.pid, state_dir) as watch:
                wait_for_line(lines, "gallery: http://127.0.0.1:", proc, 120)
                watch.sample()
                proc.kill()
                proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(10)
        assert len(watch.alive()) >= 4, "services and daemons outlive a SIGKILLed demo"
        down = subprocess.run(
            [sys.executable, "-m", "dnft", "demo", "--down", "--state-dir", str(state_dir)],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert "left by an earlier demo" in down.stdout
        assert watch.alive() == [], f"left running: {watch.alive()}"
