"""tillgate: connects cash registers to central loyalty processing, online or offline."""

from tillgate._version import __version__
from tillgate.errors import (
    ConfigError,
    DeviceError,
    DocumentError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StorageError,
    TillgateError,
    UpstreamError,
    UpstreamUnavailable,
    ValidationError,
)

__all__ = [
    "ConfigError",
    "DeviceError",
    "DocumentError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "StorageError",
    "TillgateError",
    "UpstreamError",
    "UpstreamUnavailable",
    "ValidationError",
    "__version__",
]
