"""What a chaos run reports: each fault with the time the pipeline took to recover from it,
measured by the canary (see ``Measures.canary``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FaultResult:
    fault: str
    detail: str
    recovery_s: float


@dataclass
class ChaosReport:
    seed: int
    faults: list[FaultResult] = field(default_factory=list)
    baseline_s: float = 0.0

    def add(self, fault: str, detail: str, recovery_s: float) -> None:
        self.faults.append(FaultResult(fault, detail, recovery_s))
        print(f"[chaos] {fault:<22} {detail:<60} recovered in {recovery_s:6.1f} s", flush=True)

    def table(self) -> str:
        lines = [f"chaos run, seed {self.seed}; canary with no fault: {self.baseline_s:.1f} s"]
        lines.append(f"{'fault':<22} {'detail':<60} {'recovery (s)':>12}")
        lines += [f"{f.fault:<22} {f.detail:<60} {f.recovery_s:>12.1f}" for f in self.faults]
        return "\n".join(lines)
