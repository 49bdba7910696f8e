"""Static checks of deploy/docker/Dockerfile (no Docker daemon is needed, none is built here):
both targets exist and run as a non-root user, torch is pinned and installed before dnft, and
everything the Dockerfile copies exists and passes its ignore file."""

from __future__ import annotations

import re

import pytest

from tests.support.deploy import DEPLOY, REPO

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
IGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each named stage's instructions."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions():
        if word == "FROM":
            current = []
            result[rest.split(" AS ")[-1].strip()] = current
        else:
            current.append((word, rest))
    return result


class TestTargets:
    """The cpu and cuda targets: non-root, torch pinned first, the dnft entry point."""

    @pytest.mark.parametrize("target", ["cpu", "cuda"])
    def test_runs_as_non_root(self, target: str) -> None:
        users = [rest for word, rest in stages()[target] if word == "USER"]
        assert users, f"{target}: no USER"
        uid = users[-1].split(":")[0]
        assert uid.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
        assert int(uid) != 0
        entry = [rest for word, rest in stages()[target] if word == "ENTRYPOINT"]
        assert entry == ['["dnft"]']
        env = " ".join(rest for word, rest in stages()[target] if word == "ENV")
        assert "HF_HUB_OFFLINE=1" in env
        assert "HOME=/home/dnft" in env

    @pytest.mark.parametrize("build", ["cpu-build", "cuda-build"])
    def test_torch_pinned_before_the_package(self, build: str) -> None:
        runs = [rest for word, rest in stages()[build] if word == "RUN"]
        torch = next(i for i, r in enumerate(runs) if '"torch==${TORCH_VERSION}"' in r)
        package = next(i for i, r in enumerate(runs) if '"/src[render,s3]"' in r)
        assert torch < package
        assert "--index-url" in runs[torch]
        args = dict(
            rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest
        )
        makefile_pin = re.search(r"TORCH_PIN := torch==(\S+)", (REPO / "Makefile").read_text())
        assert makefile_pin is not None
        assert args["TORCH_VERSION"] == makefile_pin.group(1), "same torch as `make install`"


class TestSources:
    """Every path the Dockerfile copies from the context exists and is not ignored."""

    def test_copied_paths(self) -> None:
        allowed = {
            line.lstrip("!").rstrip("/")
            for line in IGNORE.read_text().splitlines()
            if line.startswith("!")
        }
        copies = [
            rest
            for word, rest in instructions()
            if word == "COPY" and not rest.startswith("--from")
        ]
        assert copies
        for copy in copies:
            *sources, _ = copy.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.split("/")[0] in allowed, f"{source} is excluded by {IGNORE.name}"
