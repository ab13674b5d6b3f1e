"""The server's listening socket, bound the moment `serve` starts.

SageMaker expects a container to accept connections on its port within 250 ms of starting;
importing the model's libraries and loading the model takes longer than that. `__main__` binds
the port first, before any heavy import: from then on the kernel accepts connections and queues
them, and the first server worker answers them the moment it is up. server.run() takes the
socket over and hands it to gunicorn.

Standard library only, so binding costs a few milliseconds after Python starts.
"""

from __future__ import annotations

import socket

from .errors import ContractError
from .settings import Settings

BACKLOG = 2048  # Connections the kernel queues while the model loads or every worker is busy.

_early: socket.socket | None = None


def listen(port: int) -> socket.socket:
    """A TCP socket listening on every IPv4 address at `port`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def listen_early(environ: dict[str, str] | None = None) -> None:
    """Bind the configured port now. Problems are left for server.run() to report in one line."""
    global _early
    try:
        _early = listen(Settings.from_environ(environ).port)
    except (ContractError, OSError):
        _early = None


def take(port: int) -> socket.socket:
    """The socket listen_early() bound for `port`, or a new one (raises OSError if it can't)."""
    global _early
    sock, _early = _early, None
    if sock is not None:
        if sock.getsockname()[1] == port:
            return sock
        sock.close()
    return listen(port)
