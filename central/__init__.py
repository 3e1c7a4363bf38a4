"""Central processing: the reference loyalty server (gRPC Processing + Sync), its storage,
data loading, admin commands and embedded mode.

The public surface: :func:`start_server` / :class:`CentralServer` / :class:`ServerTLS`
(also as ``central.embedded``), :class:`Processing` (the lifecycle logic without gRPC),
the :class:`Repository` protocol with its SQLite backend, :func:`import_file`,
:func:`content_hash`, and ``central.cli.add_commands`` for the tillgate command line.
"""

from central.importer import ImportRejectedError, import_file
from central.processing import Processing
from central.server import CentralServer, ServerTLS, start_server
from central.storage import Repository, SQLiteRepository, Transaction
from central.syncfeed import content_hash

__all__ = [
    "CentralServer",
    "ImportRejectedError",
    "Processing",
    "Repository",
    "SQLiteRepository",
    "ServerTLS",
    "Transaction",
    "content_hash",
    "import_file",
    "start_server",
]
