"""The one exception tree of tillgate.

Families by phase and by blame, so that a caller can catch exactly what it can handle:

    TillgateError
    ├── ConfigError            the daemon's configuration is wrong (names file and key)
    ├── DocumentError          a catalog / customer / promotion document is wrong
    │                          (names document, id, key, line)
    ├── ValidationError        a request field is wrong (names the field path)
    ├── ProtocolError          a framing or message-sequence violation
    │   ├── LocalProtocolError     we tried to do something the protocol forbids
    │   └── RemoteProtocolError    the peer sent something the protocol forbids
    ├── UpstreamError          central processing failed or could not be reached
    │   └── UpstreamUnavailable    no answer within the deadline / connection refused / breaker open
    ├── StorageError           an SQLite file could not be read or written
    └── DeviceError            a serial port, printer or display failed
"""

from __future__ import annotations


class TillgateError(Exception):
    """Root of every error tillgate raises on purpose."""


class ConfigError(TillgateError):
    """A configuration problem, located by file and key (``tillgate.toml: lane[1].baud: ...``)."""

    def __init__(self, message: str, *, file: str = "", key: str = "", hint: str = "") -> None:
        self.file = file
        self.key = key
        self.message = message
        self.hint = hint
        where = ": ".join(part for part in (file, key) if part)
        text = f"{where}: {message}" if where else message
        if hint:
            text = f"{text} (hint: {hint})"
        super().__init__(text)


class DocumentError(TillgateError):
    """A data document is wrong.

    ``promotion "oil-15": reward.percent: must be 0 < p <= 100``
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        doc_id: str = "",
        key: str = "",
        file: str = "",
        line: int | None = None,
    ) -> None:
        self.kind = kind
        self.doc_id = doc_id
        self.key = key
        self.file = file
        self.line = line
        self.message = message
        parts: list[str] = []
        if file:
            parts.append(f"{file}:{line}" if line is not None else file)
        elif line is not None:
            parts.append(f"line {line}")
        if kind:
            parts.append(f'{kind} "{doc_id}"' if doc_id else kind)
        if key:
            parts.append(key)
        parts.append(message)
        super().__init__(": ".join(parts))


class ValidationError(TillgateError):
    """A request field is missing or wrong; ``field`` is its path (``receipt.lines[2].n``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def under(self, prefix: str) -> ValidationError:
        """The same error with its field path placed under ``prefix``."""
        if not self.field:
            return ValidationError(prefix, self.message)
        joiner = "" if self.field.startswith("[") else "."
        return ValidationError(f"{prefix}{joiner}{self.field}", self.message)


class ProtocolError(TillgateError):
    """A framing or sequencing violation."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol does not allow in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class UpstreamError(TillgateError):
    """Central processing answered with a failure we cannot turn into a register answer."""


class UpstreamUnavailable(UpstreamError):  # noqa: N818 - reads as the condition it reports
    """Central could not be reached in time (deadline, refused connection, open breaker).

    ``refused``: central answered but refuses this store (its certificate names another one,
    or none): no retry helps until the configuration or the certificate is fixed.
    ``answered``: central is reachable but failed this one call (an internal error, a request
    it could not read): the call falls back to the edge, yet central is not counted as down."""

    def __init__(self, message: str, *, refused: bool = False, answered: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
        self.answered = answered


class StorageError(TillgateError):
    """An SQLite file could not be opened, read or written."""


class DeviceError(TillgateError):
    """A serial port, printer or display could not be opened or written."""


class DeviceRefusedError(DeviceError):
    """A network device refused the connection: switched off, or busy with another job (a
    9100 printer serves one connection at a time)."""


class StartupError(TillgateError):
    """The daemon cannot start: a port, a file or the data directory's lock it needs."""
