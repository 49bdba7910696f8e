"""Rebuilding the sample contracts reproduces the committed build byte for byte."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dnft import contracts

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_contracts.mjs"
SCHEMAS = ROOT / "schemas"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output dir of one fresh build run (mirrors the layout under schemas/)."""
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.skip("node_modules/solc is absent: run `npm ci` to rebuild contracts")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: it is needed to run solcjs")
    out = tmp_path_factory.mktemp("contracts")
    result = subprocess.run(
        [node, str(SCRIPT), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Any diagnostic (even a warning) is worth a look when the sources change.
    assert result.stderr == "", result.stderr
    return out


class TestBuildIsReproducible:
    """The committed artifacts are exactly what the script produces now."""

    def test_writes_exactly_the_sample_contracts(self, rebuilt: Path) -> None:
        expected = {f"{name}.json" for name in contracts.CONTRACT_NAMES}
        assert {p.name for p in (rebuilt / "contracts" / "build").iterdir()} == expected
        assert {p.name for p in (rebuilt / "abi").iterdir()} == expected

    @pytest.mark.parametrize("name", contracts.CONTRACT_NAMES)
    @pytest.mark.parametrize("subdir", ["contracts/build", "abi"])
    def test_identical_to_committed(self, rebuilt: Path, subdir: str, name: str) -> None:
        fresh = (rebuilt / subdir / f"{name}.json").read_bytes()
        committed = (SCHEMAS / subdir / f"{name}.json").read_bytes()
        assert fresh == committed, (
            f"schemas/{subdir}/{name}.json is stale: run `node scripts/build_contracts.mjs`"
        )
