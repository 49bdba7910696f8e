"""Free loopback TCP ports for the dev services.

A port is free when binding it succeeds now; nothing holds it afterwards, so another process
may take it before the service binds. The services cover that race by retrying on a new port
(see ``base.start_on_free_port``); this module only avoids handing one port out twice within a
process.
"""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """Return a port the kernel considers free on ``host``, never the same one twice per process.

    Raises OSError when no port can be bound at all.
    """
    with _lock:
        for _ in range(64):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError(f"no unused free port found on {host}")
