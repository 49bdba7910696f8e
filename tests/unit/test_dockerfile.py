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
                assert source in allowed or source.split("/")[0] in allowed, (
                    f"{source} is excluded by {IGNORE.name}"
                )


def arg_defaults() -> dict[str, str]:
    return dict(
        rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest
    )


class TestSupplyChain:
    """Base images by digest; Python packages from the hash-locked runtime lock."""

    def test_every_base_image_is_pinned_by_digest(self) -> None:
        args = arg_defaults()
        stage_names = set(stages())
        bases = []
        for word, rest in instructions():
            if word != "FROM":
                continue
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            if image == "scratch" or image in stage_names:
                continue  # no image, or an earlier stage of this file
            bases.append(image)
            assert re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", image), image
        assert len(bases) >= 4  # cpu-build, cpu, cuda-build, cuda

    @pytest.mark.parametrize("build", ["cpu-build", "cuda-build"])
    def test_packages_come_from_the_lock(self, build: str) -> None:
        runs = [rest for word, rest in stages()[build] if word == "RUN"]
        (install,) = [r for r in runs if '"/src[render,s3]"' in r]
        lock = "--require-hashes --no-deps -r /src/requirements-runtime.lock"
        assert install.index(lock) < install.index('"/src[render,s3]"')
        assert '--no-deps --no-build-isolation "/src[render,s3]"' in install
        assert "pip check" in install
