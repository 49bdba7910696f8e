"""The chaos suite reuses the integration tests' kits (chainkit, daemonkit, rpcproxy)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
