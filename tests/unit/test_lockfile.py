"""The Python lock files (`make lock`): every dependency pyproject.toml declares is pinned with
hashes, torch stays outside (installed first, pinned by the Makefile) while its own requirements
are locked, and the images' runtime lock carries no dev tools."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCKS = {
    "dev": (REPO / "requirements.lock", ("render", "s3", "dev")),
    "runtime": (REPO / "deploy" / "docker" / "requirements-runtime.lock", ("render", "s3")),
}
OUTSIDE = {"torch"}  # installed first with --no-deps: Makefile TORCH_PIN, Dockerfile


def entries(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, [hashes])} from a `uv pip compile --generate-hashes` file."""
    text = re.sub(r"\s*\\\n\s*", " ", lock.read_text())
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split(" ")
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;]+)", requirement)
        assert match, f"{lock.name}: not pinned with ==: {line}"
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")]
        out[canonicalize_name(match.group(1))] = (match.group(3), hashes)
    return out


def declared(extras: tuple[str, ...]) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def torch_requirements() -> set[str]:
    """What the Makefile locks for torch (its wheel's Requires-Dist)."""
    makefile = (REPO / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^TORCH_DEPS := (.+)$", makefile, re.MULTILINE)
    assert match is not None
    return {canonicalize_name(Requirement(r.strip("'")).name) for r in match.group(1).split()}


@pytest.mark.parametrize("which", sorted(LOCKS))
class TestLock:
    def test_every_declared_dependency_is_locked(self, which: str) -> None:
        lock, extras = LOCKS[which]
        missing = declared(extras) - OUTSIDE - set(entries(lock))
        assert not missing, f"{lock.name} lacks {sorted(missing)}: run `make lock`"

    def test_every_line_is_pinned_with_hashes(self, which: str) -> None:
        locked = entries(LOCKS[which][0])
        assert len(locked) > 50
        for name, (_version, hashes) in locked.items():
            assert hashes, f"{name} has no --hash"
            assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name

    def test_torch_outside_its_requirements_inside(self, which: str) -> None:
        locked = set(entries(LOCKS[which][0]))
        assert not locked & OUTSIDE
        assert torch_requirements() <= locked
        assert not {n for n in locked if n.startswith("nvidia-")}, "CUDA libraries locked"


def test_runtime_lock_has_no_dev_tools() -> None:
    runtime = set(entries(LOCKS["runtime"][0]))
    dev_only = declared(("dev",)) - declared(("render", "s3"))
    assert not runtime & dev_only, sorted(runtime & dev_only)


def test_both_locks_agree_on_shared_versions() -> None:
    dev, runtime = (entries(LOCKS[k][0]) for k in ("dev", "runtime"))
    differ = {n for n in runtime if n in dev and dev[n][0] != runtime[n][0]}
    assert not differ, f"the images and `make test` would run different versions: {differ}"
