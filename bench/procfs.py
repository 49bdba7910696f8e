"""What a process tree uses, read from /proc (Linux): resident memory and CPU time, for the
benchmarks' memory and CPU figures."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def usage(pid: int, *, children: bool = True) -> tuple[float, float]:
    """(VmRSS in MB, CPU seconds used) of a process and, with ``children``, its live
    descendants; (0, 0) when it is gone."""
    rss_kb, ticks, stack = 0, 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            stat = Path(f"/proc/{current}/stat").read_text()
            kids = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss_kb += int(line.split()[1])
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        if children:
            stack.extend(int(k) for k in kids)
    return rss_kb / 1024, ticks / CLOCK_TICKS
