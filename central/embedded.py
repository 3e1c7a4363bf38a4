"""Embedded mode: the daemon runs central in-process for a single store.

The same server as a standalone central, started on loopback with a SQLite file next to
the daemon's data; ``demo=True`` seeds a new database with the demo chain.
"""

from central.server import CentralServer, ServerTLS, start_server

__all__ = ["CentralServer", "ServerTLS", "start_server"]
