"""The house plan is a checked contract: `lint-imports` (make lint) fails on an import against it.

Each case copies the source tree, adds one import that breaks one layering rule, and runs the
project's own import-linter configuration over the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = (
    "dnft",
    "audit",
    "indexer",
    "oracle_feeds",
    "regenerator",
    "publisher",
    "demo",
    "schemas",
)
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and pyproject.toml, free to break."""
    for package in PACKAGES:
        shutil.copytree(
            REPO / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.sol", "*.sql", "static"),
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


class TestLayering:
    """Today's tree keeps every contract; each kind of upward or sideways import breaks one."""

    @pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")
    def test_the_tree_keeps_every_contract(self, tree: Path) -> None:
        result = lint_imports(tree)
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")
    @pytest.mark.parametrize(
        ("module", "line", "broken"),
        [
            ("dnft/errors.py", "import regenerator", "The ground imports no daemon"),
            ("schemas/__init__.py", "import indexer", "The ground imports no daemon"),
            ("publisher/api/queries.py", "import regenerator", "Daemons do not import each other"),
            ("indexer/checkpoint.py", "import audit", "no daemon imports it"),
            ("oracle_feeds/policy.py", "import dnft.cli", "Nothing imports the command line"),
        ],
    )
    def test_a_new_import_against_the_plan_fails(
        self, tree: Path, module: str, line: str, broken: str
    ) -> None:
        path = tree / module
        path.write_text(path.read_text() + f"\n{line}  # against the plan\n")
        result = lint_imports(tree)
        assert result.returncode != 0
        broken_lines = [entry for entry in result.stdout.splitlines() if " BROKEN" in entry]
        assert any(broken in entry for entry in broken_lines), result.stdout
