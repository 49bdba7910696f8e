"""`dnft` commands run as an operator runs them: a config file written from a mapping, then the
real CLI as a subprocess (``python -m dnft``) or in this process with its output captured.
Either way no DNFT_* variable of the test environment leaks in (in-process runs need the
``no_dnft_env`` fixture for that)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dnft import cli
from dnft.config import Settings


def write_config(path: Path, raw: Mapping[str, Any]) -> Path:
    """``raw`` as a YAML config file at ``path``; returns ``path``."""
    path.write_text(yaml.safe_dump(dict(raw)))
    return path


def write_settings(path: Path, settings: Settings, **sections: Any) -> Path:
    """``settings`` (what differs from the defaults) as a YAML config file at ``path``, with
    whole top-level ``sections`` replaced (e.g. ``http={"port": 9100}``); returns ``path``."""
    raw = settings.model_dump(mode="json", exclude_defaults=True) | sections
    return write_config(path, raw)


def dnft_argv(config: Path | None, *args: str) -> list[str]:
    """The command line of ``dnft [--config CONFIG] ARGS...`` with this interpreter."""
    options = [] if config is None else ["--config", str(config)]
    return [sys.executable, "-m", "dnft", *options, *args]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any DNFT_* variable, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DNFT_")} | extra


def run_dnft(
    config: Path | None, *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``dnft`` as a subprocess: exit code, stdout and stderr (text), no stdin."""
    return subprocess.run(
        dnft_argv(config, *args),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
        check=False,
    )


def run_dnft_in_process(config: Path, *args: str) -> tuple[int, str, str]:
    """``dnft --config CONFIG ARGS...`` through :func:`dnft.cli.main` with stdout and stderr
    captured: (exit code, out, err). It runs its own event loop: from async code call it in
    a thread (``asyncio.to_thread``)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--config", str(config), *args])
    return code, out.getvalue(), err.getvalue()
