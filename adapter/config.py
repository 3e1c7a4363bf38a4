"""The daemon's configuration: one TOML file parsed and validated into typed objects.

Every problem is collected, not just the first, so ``tillgate check-config`` can report them all
at once; each names the file and the key (``tillgate.toml: lane[1].baud: must be one of ...``).
Relative paths resolve against the config file's folder. Without a file, :func:`default_config`
gives the embedded default: one TCP listener on 127.0.0.1:7171, any lane, an in-process central
seeded with demo data, data files in the user's data directory.
"""

from __future__ import annotations

import difflib
import errno
import inspect
import ipaddress
import os
import ssl
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drivers.registry import display_names, framing_names, load, printer_names
from drivers.serial import BAUD_RATES
from tillgate.errors import ConfigError

REDEEM_POLICIES = ("deny", "limited")
DEFAULT_ADDRESS = "127.0.0.1:7171"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CentralConfig:
    url: str = "embedded"  #: "embedded", "grpc://host:port" or "grpcs://host:port"
    db: Path = Path("central.db")  #: the embedded central's SQLite file
    deadline_ms: int = 300
    tls: TLSConfig | None = None
    demo: bool = True  #: seed an embedded central's new database with demo data

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"

    @property
    def target(self) -> str:
        """``host:port`` of a remote central."""
        return self.url.split("://", 1)[1]


@dataclass(frozen=True, slots=True)
class CacheConfig:
    db: Path = Path("edge.db")


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    address: str = DEFAULT_ADDRESS
    framing: str = "lines"
    idle_timeout_s: int = 120  #: a TCP connection without traffic this long is closed


@dataclass(frozen=True, slots=True)
class LaneConfig:
    id: str
    token: str = ""
    serial: str | None = None  #: a device path or any pyserial URL; None for a TCP lane
    baud: int = 115200
    framing: str = "link"
    printer: str | None = None  #: ESC/POS printer URL for the lane's receipt messages
    printer_driver: str = "escpos"  #: output driver name in the registry
    printer_width: int = 42
    printer_codepage: str = "cp866"
    printer_baud: int = 9600  #: for a printer on a serial line
    #: how long a receipt tail is tried again while its printer cannot be reached
    printer_retry_s: int = 120
    display: str | None = None  #: customer pole display URL
    display_model: str = "cd5220"  #: output driver name: cd5220 or epson (epson_display)
    display_baud: int = 9600  #: for a display on a serial line
    #: the display's text codepage; None: the driver's default (cp866)
    display_codepage: str | None = None


@dataclass(frozen=True, slots=True)
class OfflineConfig:
    redeem: Literal["deny", "limited"] = "deny"
    redeem_cap: int = 0  #: per-receipt cap in points for ``limited`` (0 = no cap)
    max_queued: int = 100_000
    max_age_hours: int = 72
    breaker_failures: int = 3
    breaker_cooldown_ms: int = 5_000


@dataclass(frozen=True, slots=True)
class SyncConfig:
    interval_s: int = 60
    customers: Literal["all", "seen"] = "all"
    seen_days: int = 90


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    address: str


@dataclass(frozen=True, slots=True)
class Config:
    store: str = "S001"
    timezone: str = "Europe/Moscow"
    data_dir: Path = Path()
    central: CentralConfig = field(default_factory=CentralConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    listeners: tuple[ListenerConfig, ...] = (ListenerConfig(),)
    lanes: tuple[LaneConfig, ...] = ()
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    metrics: MetricsConfig | None = None
    source: str = "<embedded default>"

    @property
    def any_lane(self) -> bool:
        """With no ``[[lane]]`` configured every TCP lane id is accepted without a token."""
        return not self.lanes

    @property
    def journal_db(self) -> Path:
        return self.data_dir / "answers.db"

    def lane(self, lane_id: str) -> LaneConfig | None:
        for lane in self.lanes:
            if lane.id == lane_id:
                return lane
        return None


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/tillgate`` (``~/.local/share/tillgate``): never the working tree."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tillgate"


def default_config() -> Config:
    data = user_data_dir()
    return Config(
        data_dir=data,
        central=CentralConfig(db=data / "central.db"),
        cache=CacheConfig(db=data / "edge.db"),
    )


class _Reader:
    """Walks a parsed TOML document, collecting every problem with its key."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigError] = []

    def problem(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(ConfigError(message, file=self.file, key=key, hint=hint))

    def table(self, doc: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            self.problem(path, "must be a table")
            return {}
        return value

    def tables(self, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(key, f"must be an array of tables ([[{key}]])")
            return []
        return value

    def string(
        self,
        doc: dict[str, Any],
        key: str,
        path: str,
        default: str | None = None,
        *,
        allow_empty: bool = False,
    ) -> str | None:
        """The string at ``key``. An empty one is a problem unless ``allow_empty``: a blank
        left by a config template must not quietly become the default (a store id, the
        central's address)."""
        value = doc.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(path, f"must be a string, not {type(value).__name__}")
            return default
        if not value.strip() and not allow_empty:
            self.problem(path, "must not be empty")
            return default
        if not value.isprintable():
            self.problem(path, "must not contain control characters (a newline, a tab)")
            return default
        return value

    def integer(
        self, doc: dict[str, Any], key: str, path: str, default: int, low: int, high: int
    ) -> int:
        value = doc.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(path, f"must be an integer {low}..{high}")
            return default
        if not low <= value <= high:
            self.problem(path, f"must be {low}..{high}, not {value}")
            return default
        return value

    def one_of(
        self, doc: dict[str, Any], key: str, path: str, default: int, allowed: tuple[int, ...]
    ) -> int:
        """An integer from ``allowed``: ``9600.0`` is refused, else it would pass the membership
        test (``9600.0 == 9600``) and reach a driver that needs an int."""
        value = doc.get(key, default)
        listed = ", ".join(map(str, allowed))
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(path, f"must be an integer, one of {listed}")
            return default
        if value not in allowed:
            self.problem(path, f"must be one of {listed}")
            return default
        return value

    def choice(
        self, doc: dict[str, Any], key: str, path: str, default: str, allowed: tuple[str, ...]
    ) -> str:
        value = self.string(doc, key, path, default)
        if value not in allowed:
            self.problem(path, f"must be one of {', '.join(allowed)}, not {value!r}")
            return default
        return value

    def unknown(self, doc: dict[str, Any], known: set[str], prefix: str) -> None:
        for key in doc:
            if key not in known:
                where = f"{prefix}.{key}" if prefix else key
                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
                said = f"unknown key; did you mean {close[0]!r}?" if close else "unknown key"
                self.problem(where, said, hint=f"known keys: {', '.join(sorted(known))}")


_ADDRESS_RULE = "must be HOST:PORT with a port 0..65535"


def _port_ok(port: str) -> bool:
    # ASCII only: "²".isdigit() is true, and int("²") raises.
    return port.isascii() and port.isdigit() and int(port) <= 65535


def _address_ok(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep and host and _port_ok(port))


def _binds_overlap(one: str, other: str) -> bool:
    """Whether two valid HOST:PORT addresses cannot both be bound (port 0 is any free port)."""
    host_a, _, port_a = one.rpartition(":")
    host_b, _, port_b = other.rpartition(":")
    if int(port_a) != int(port_b) or int(port_a) == 0:
        return False
    hosts = {host_a.strip("[]").lower(), host_b.strip("[]").lower()}
    if len(hosts) == 1:
        return True
    if "0.0.0.0" not in hosts:
        return False
    try:
        return isinstance(ipaddress.ip_address((hosts - {"0.0.0.0"}).pop()), ipaddress.IPv4Address)
    except ValueError:
        return False


def _listener_clash(address: str, listeners: list[ListenerConfig]) -> str | None:
    """Why ``address`` cannot be bound beside the ``listeners`` already read, if it cannot."""
    for number, listener in enumerate(listeners):
        if _address_ok(listener.address) and _binds_overlap(listener.address, address):
            return (
                f"{address} is also listener[{number}]'s ({listener.address}): only one can "
                "listen there"
            )
    return None


def _check_readable(r: _Reader, key: str, path: Path) -> None:
    """A file the daemon reads at start: there, a file, and readable by this user."""
    hint = "the key must be readable by the tillgate group (see docs/tls.md)"
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError as exc:  # a folder on the way this user cannot enter, a name too long
        if exc.errno == errno.EACCES:
            r.problem(key, f"cannot be read by this user: {path}", hint=hint)
        else:
            r.problem(key, f"cannot be read: {exc.strerror or exc}: {path}")
        return
    if is_dir:
        r.problem(key, f"is a directory, not a file: {path}")
    elif not exists:
        r.problem(key, f"no such file: {path}")
    elif not os.access(path, os.R_OK):
        r.problem(key, f"cannot be read by this user: {path}", hint=hint)


def _check_tls_material(r: _Reader, tls: TLSConfig) -> None:
    """The CA parses, and the key belongs to the certificate (else the daemon would start and
    only log "Failed to create security handshaker" at each call)."""
    try:
        ssl.create_default_context(cafile=str(tls.ca))
    except ssl.SSLError:
        r.problem("central.tls_ca", f"is not a PEM CA certificate: {tls.ca}")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            str(tls.cert), str(tls.key), password=_no_passphrase)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            r.problem("central.tls_key", f"{tls.key} does not belong to the certificate {tls.cert}")
        elif _is_encrypted_pem(tls.key):
            r.problem("central.tls_key", f"{tls.key} is encrypted: gRPC needs the key without "
                      "a passphrase", hint="openssl pkey -in KEY -out KEY.plain (see docs/tls.md)")
        else:
            r.problem("central.tls_cert", f"{tls.cert} / {tls.key}: not a PEM certificate and key")


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL asks for an encrypted key's passphrase on the terminal: a
    # check under systemd would hang, then fail with a traceback.
    return b""


def _is_encrypted_pem(path: Path) -> bool:
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    return b"ENCRYPTED" in head


_SERIAL_URL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "alt", "hwgrep")


def _check_device_url(r: _Reader, key: str, url: str) -> None:
    """A printer or display: tcp://HOST[:PORT], a serial device path or a pyserial URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return  # a device path such as /dev/ttyUSB1 or COM3
    if scheme == "tcp":
        host, colon, port = rest.rpartition(":")
        if not rest or (colon and (not host or not _port_ok(port))):
            r.problem(key, f"must be tcp://HOST[:PORT], not {url!r}")
    elif scheme not in _SERIAL_URL_SCHEMES:
        r.problem(
            key,
            f"unknown device URL scheme {scheme!r} in {url!r}",
            hint="tcp://HOST[:PORT] for a network printer, else a serial device path "
            "such as /dev/ttyUSB0",
        )


def _codepage_ok(lane: dict[str, Any], codepage: str) -> bool:
    """Whether the lane's printer can select ``codepage`` (checked as the daemon will use it,
    so a codepage check-config accepts never stops the daemon's start)."""
    if lane.get("printer") and lane.get("printer_driver", "escpos") == "escpos":
        from drivers.escpos_printer import encode_receipt  # noqa: PLC0415 - only with a printer

        try:
            encode_receipt([], codepage=codepage, cut=False)
        except ConfigError:
            return False
        return True
    try:
        "".encode(codepage)
    except LookupError:
        return False
    return True


def _check_loads(r: _Reader, key: str, kind: Literal["framing", "output"], name: str) -> None:
    """A driver named by the configuration can be imported (a plug-in's package may be
    missing, or broken): found now, not when the first register connects."""
    try:
        load(kind, name)
    except ConfigError as exc:
        r.problem(key, exc.message, hint=exc.hint or "is the plug-in's package installed?")


def _takes_option(factory: Any, option: str) -> bool:
    """Whether a driver's factory can be called with ``option=``; True when its signature
    cannot be read (it will say so itself when made)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD
        or (parameter.name == option and parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))
        for parameter in parameters
    )  # fmt: skip


def _check_display_codepage(r: _Reader, key: str, model: str, codepage: str) -> None:
    """A built-in display can show ``codepage`` (an epson one needs its table number); a
    plug-in display must take a ``codepage`` option (what it makes of it is its own
    business). Found now: the daemon would otherwise fail at start, under no lane's key."""
    if model not in ("cd5220", "epson", "epson_display"):
        try:
            factory = load("output", model)
        except ConfigError:  # reported under display_model
            return
        if not _takes_option(factory, "codepage"):
            r.problem(
                key,
                f"display {model!r} takes no codepage option",
                hint="remove display_codepage from this lane, or name a display that takes one",
            )
        return
    from drivers.display import encode_show  # noqa: PLC0415 - only with a display

    try:
        encode_show("", "", model="cd5220" if model == "cd5220" else "epson", codepage=codepage)
    except ConfigError as exc:
        r.problem(key, exc.message, hint=exc.hint)


def _path(r: _Reader, key: str, base: Path, text: str) -> Path:
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~name of a user this system does not have
        r.problem(key, f"unknown user in {text!r}")
        path = Path(text)
    return path if path.is_absolute() else base / path


def _device_key(device: str) -> str:
    """One spelling per device path (``/dev/../dev/ttyUSB0``, a by-id symlink); URLs as
    written."""
    return device if "://" in device else os.path.realpath(device)


def parse_config(doc: dict[str, Any], *, file: str, base: Path) -> Config:
    """Validate a parsed TOML document; raises one ConfigError holding every problem."""
    r = _Reader(file)
    framings = tuple(framing_names())
    r.unknown(
        doc,
        {
            "store",
            "timezone",
            "data_dir",
            "central",
            "cache",
            "listener",
            "lane",
            "offline",
            "sync",
            "metrics",
        },
        "",
    )
    store = r.string(doc, "store", "store", "S001") or "S001"
    if len(store) > 64:
        r.problem("store", "must be 1..64 characters")
    timezone = r.string(doc, "timezone", "timezone", "Europe/Moscow") or "Europe/Moscow"
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: "Europe" is a folder of the zone database, a long name is too long for a file
        r.problem(
            "timezone", f"unknown time zone {timezone!r}", hint="an IANA name such as Europe/Moscow"
        )
    data_dir = _path(r, "data_dir", base, r.string(doc, "data_dir", "data_dir", ".") or ".")

    c = r.table(doc, "central", "central")
    r.unknown(c, {"url", "db", "deadline_ms", "tls_ca", "tls_cert", "tls_key", "demo"}, "central")
    url = r.string(c, "url", "central.url", "embedded") or "embedded"
    if url != "embedded":
        scheme, sep, target = url.partition("://")
        if not sep or scheme not in ("grpc", "grpcs") or not _address_ok(target):
            r.problem(
                "central.url",
                f'must be "embedded", grpc://HOST:PORT or grpcs://HOST:PORT, not {url!r}',
            )
    tls_keys = ("central.tls_ca", "central.tls_cert", "central.tls_key")
    tls_paths = {key: r.string(c, key.removeprefix("central."), key) for key in tls_keys}
    tls: TLSConfig | None = None
    if url.startswith("grpcs://"):
        # Every file named is checked even when another is missing: check-config reports
        # all problems at once, not one more per run.
        problems_before = len(r.problems)
        files = {key: _path(r, key, base, given) for key, given in tls_paths.items() if given}
        named = {problem.key for problem in r.problems}
        for key in tls_keys:
            if key in named:  # empty, not a string, ~nosuchuser: said once is enough
                continue
            if key not in files:
                r.problem(key, "is required with grpcs:// (tls_ca, tls_cert and tls_key)")
            else:
                _check_readable(r, key, files[key])
        if len(files) == len(tls_keys) and len(r.problems) == problems_before:
            tls = TLSConfig(*(files[key] for key in tls_keys))
            _check_tls_material(r, tls)
    elif any(tls_paths.values()):
        r.problem(
            "central.url",
            f"{url!r} is not TLS, yet tls_ca, tls_cert or tls_key is set",
            hint="grpcs://HOST:PORT to use them, or remove them",
        )
    demo = c.get("demo", True)
    if not isinstance(demo, bool):
        r.problem("central.demo", "must be true or false")
        demo = True
    central = CentralConfig(
        url=url,
        db=_path(
            r,
            "central.db",
            data_dir if "db" not in c else base,
            r.string(c, "db", "central.db", "central.db") or "central.db",
        ),
        deadline_ms=r.integer(c, "deadline_ms", "central.deadline_ms", 300, 10, 10_000),
        tls=tls,
        demo=demo,
    )

    k = r.table(doc, "cache", "cache")
    r.unknown(k, {"db"}, "cache")
    cache = CacheConfig(
        db=_path(
            r,
            "cache.db",
            data_dir if "db" not in k else base,
            r.string(k, "db", "cache.db", "edge.db") or "edge.db",
        )
    )

    listeners: list[ListenerConfig] = []
    for i, item in enumerate(r.tables(doc, "listener")):
        r.unknown(item, {"address", "framing", "idle_timeout_s"}, f"listener[{i}]")
        address = (
            r.string(item, "address", f"listener[{i}].address", DEFAULT_ADDRESS) or DEFAULT_ADDRESS
        )
        if not _address_ok(address):
            r.problem(f"listener[{i}].address", f"{_ADDRESS_RULE}, not {address!r}")
        elif clash := _listener_clash(address, listeners):
            r.problem(f"listener[{i}].address", clash)
        framing = r.choice(item, "framing", f"listener[{i}].framing", "lines", framings)
        _check_loads(r, f"listener[{i}].framing", "framing", framing)
        idle = r.integer(item, "idle_timeout_s", f"listener[{i}].idle_timeout_s", 120, 1, 86_400)
        listeners.append(ListenerConfig(address, framing, idle))
    if "listener" not in doc:
        listeners.append(ListenerConfig())

    lanes: list[LaneConfig] = []
    seen_ids: set[str] = set()
    #: device path (or URL of a serial lane) -> the key that uses it first
    devices: dict[str, str] = {}
    lane_keys = {
        "id",
        "token",
        "serial",
        "baud",
        "framing",
        "printer",
        "printer_driver",
        "printer_width",
        "printer_codepage",
        "display",
        "display_model",
        "printer_baud",
        "printer_retry_s",
        "display_baud",
        "display_codepage",
    }
    printers = tuple(printer_names())
    displays = tuple(display_names())
    for i, item in enumerate(r.tables(doc, "lane")):
        r.unknown(item, lane_keys, f"lane[{i}]")
        codepage = (
            r.string(item, "printer_codepage", f"lane[{i}].printer_codepage", "cp866") or "cp866"
        )
        if not _codepage_ok(item, codepage):
            r.problem(
                f"lane[{i}].printer_codepage",
                f"the printer has no codepage {codepage!r}",
                hint="cp866 for Cyrillic",
            )
            codepage = "cp866"
        lane_id = r.string(item, "id", f"lane[{i}].id")
        if not lane_id:
            r.problem(f"lane[{i}].id", "is required")
            lane_id = f"?{i}"
        elif lane_id in seen_ids:
            r.problem(f"lane[{i}].id", f"lane {lane_id!r} is configured twice")
        seen_ids.add(lane_id)
        serial = r.string(item, "serial", f"lane[{i}].serial")
        baud = r.one_of(item, "baud", f"lane[{i}].baud", 115200, BAUD_RATES)
        printer = r.string(item, "printer", f"lane[{i}].printer")
        if printer is not None:
            _check_device_url(r, f"lane[{i}].printer", printer)
        display = r.string(item, "display", f"lane[{i}].display")
        if display is not None:
            _check_device_url(r, f"lane[{i}].display", display)
        for device, used in (("serial", serial), ("printer", printer), ("display", display)):
            # A network printer may serve two lanes; a device path opened twice may not.
            if used is None or (device != "serial" and "://" in used):
                continue
            where = f"lane[{i}].{device}"
            first = devices.setdefault(_device_key(used), where)
            if first != where:
                r.problem(where, f"{used!r} is the device of {first}: one device, one use")
        device_bauds = [
            r.one_of(item, f"{device}_baud", f"lane[{i}].{device}_baud", 9600, BAUD_RATES)
            for device in ("printer", "display")
        ]
        width = r.one_of(item, "printer_width", f"lane[{i}].printer_width", 42, (32, 42, 48))
        lane_framing = r.choice(
            item, "framing", f"lane[{i}].framing", "link" if serial else "lines", framings
        )
        printer_driver = r.choice(
            item, "printer_driver", f"lane[{i}].printer_driver", "escpos", printers
        )
        display_model = r.choice(
            item, "display_model", f"lane[{i}].display_model", "cd5220", displays
        )
        if serial is not None:
            _check_loads(r, f"lane[{i}].framing", "framing", lane_framing)
        if printer is not None:
            _check_loads(r, f"lane[{i}].printer_driver", "output", printer_driver)
        if display is not None:
            _check_loads(r, f"lane[{i}].display_model", "output", display_model)
        display_codepage = r.string(item, "display_codepage", f"lane[{i}].display_codepage")
        if display_codepage is not None and display is not None:
            _check_display_codepage(r, f"lane[{i}].display_codepage", display_model,
                                    display_codepage)  # fmt: skip
        lanes.append(
            LaneConfig(
                id=lane_id,
                token=r.string(item, "token", f"lane[{i}].token", "", allow_empty=True) or "",
                serial=serial,
                baud=baud,
                framing=lane_framing,
                printer=printer,
                printer_width=width,
                printer_driver=printer_driver,
                printer_codepage=codepage or "cp866",
                printer_baud=device_bauds[0],
                printer_retry_s=r.integer(
                    item, "printer_retry_s", f"lane[{i}].printer_retry_s", 120, 0, 86_400
                ),
                display_baud=device_bauds[1],
                display=display,
                display_model=display_model,
                display_codepage=display_codepage,
            )
        )

    o = r.table(doc, "offline", "offline")
    r.unknown(
        o,
        {
            "redeem",
            "redeem_cap",
            "max_queued",
            "max_age_hours",
            "breaker_failures",
            "breaker_cooldown_ms",
        },
        "offline",
    )
    offline = OfflineConfig(
        redeem="limited"
        if r.choice(o, "redeem", "offline.redeem", "deny", REDEEM_POLICIES) == "limited"
        else "deny",
        redeem_cap=r.integer(o, "redeem_cap", "offline.redeem_cap", 0, 0, 10**12),
        max_queued=r.integer(o, "max_queued", "offline.max_queued", 100_000, 1, 10**9),
        max_age_hours=r.integer(o, "max_age_hours", "offline.max_age_hours", 72, 1, 24 * 365),
        breaker_failures=r.integer(o, "breaker_failures", "offline.breaker_failures", 3, 1, 1000),
        breaker_cooldown_ms=r.integer(
            o, "breaker_cooldown_ms", "offline.breaker_cooldown_ms", 5000, 10, 3_600_000
        ),
    )

    s = r.table(doc, "sync", "sync")
    r.unknown(s, {"interval_s", "customers", "seen_days"}, "sync")
    sync = SyncConfig(
        interval_s=r.integer(s, "interval_s", "sync.interval_s", 60, 1, 86_400),
        customers="seen"
        if r.choice(s, "customers", "sync.customers", "all", ("all", "seen")) == "seen"
        else "all",
        seen_days=r.integer(s, "seen_days", "sync.seen_days", 90, 1, 3650),
    )

    metrics: MetricsConfig | None = None
    if "metrics" in doc:
        m = r.table(doc, "metrics", "metrics")
        r.unknown(m, {"address"}, "metrics")
        address = r.string(m, "address", "metrics.address", "127.0.0.1:9464") or ""
        if not _address_ok(address):
            r.problem("metrics.address", f"{_ADDRESS_RULE}, not {address!r}")
        elif clash := _listener_clash(address, listeners):
            r.problem("metrics.address", clash)
        metrics = MetricsConfig(address)

    if r.problems:
        raise InvalidConfigError(r.problems)
    return Config(
        store=store,
        timezone=timezone,
        data_dir=data_dir,
        central=central,
        cache=cache,
        listeners=tuple(listeners),
        lanes=tuple(lanes),
        offline=offline,
        sync=sync,
        metrics=metrics,
        source=file,
    )


class InvalidConfigError(ConfigError):
    """Several configuration problems at once; ``problems`` lists each with its key."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, file=first.file, key=first.key, hint=first.hint)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def load_config(path: Path | None) -> Config:
    """The configuration at ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        return default_config()
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError("is not UTF-8", file=name) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=name) from exc
    return parse_config(doc, file=name, base=path.resolve().parent)
