"""`dnft demo` as a newcomer runs it, as a real subprocess with its own anvil, tansu and
Postgres: headless for 60 s it exits 0 (every token evolved, `dnft audit` clean); interactive,
it serves the gallery (screenshot in test-artifacts/) and Ctrl-C stops it. Either way no
process it started is left."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dnft.devservices import free_port, pid_running
from dnft.devservices.process import start_ticks
from tests.support.browser import ARTIFACTS, EXECUTABLE, chromium
from tests.support.cli import clean_env, dnft_argv, run_dnft

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
        dnft_argv(None, "demo", "--state-dir", str(state_dir), *port, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "demo"
    yield path
    # A failed test must not leave services running for the rest of the session.
    run_dnft(None, "dev", "down", "--state-dir", str(path), timeout_s=60)


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
        with (
            running_demo(state_dir, "--api-port", str(port)) as (proc, output),
            ProcessWatch(proc.pid, state_dir) as watch,
        ):
            output.wait_for(f"gallery: http://127.0.0.1:{port}/", 120)
            output.wait_for("evolved 20/20", 60)
            output.wait_for("juvenile", 60)  # fed three times: a grown stage
            asyncio.run(screenshot_gallery(port))
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            code = proc.wait(timeout=90)
        out = output.text()
        assert code == 0, out
        assert "stopped: no process left" in out
        assert watch.alive() == [], f"left running: {watch.alive()}\n{out}"


class DemoOutput:
    """The demo's output (stdout and stderr merged), read line by line as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        stdout = proc.stdout
        assert stdout is not None
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")))
        self._reader.start()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout_s: float) -> str:
        """The first line holding ``text``; fails after ``timeout_s`` or once the demo exited."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no line with {text!r} after {timeout_s} s:\n{self.text()}")

    def join(self, timeout_s: float) -> None:
        self._reader.join(timeout_s)


@contextmanager
def running_demo(state_dir: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], DemoOutput]]:
    """:func:`start_demo` with its output read as it comes; killed on exit if still running."""
    proc = start_demo(state_dir, *args)
    output = DemoOutput(proc)
    try:
        yield proc, output
    finally:
        if proc.poll() is None:
            proc.kill()
        output.join(10)


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
        with (
            running_demo(state_dir) as (proc, output),
            ProcessWatch(proc.pid, state_dir) as watch,
        ):
            output.wait_for("gallery: http://127.0.0.1:", 120)
            watch.sample()
            proc.kill()
            proc.wait(10)
        assert len(watch.alive()) >= 4, "services and daemons outlive a SIGKILLed demo"
        down = run_dnft(None, "demo", "--down", "--state-dir", str(state_dir), timeout_s=90)
        assert down.returncode == 0, down.stderr
        assert "left by an earlier demo" in down.stdout
        assert watch.alive() == [], f"left running: {watch.alive()}"
