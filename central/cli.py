"""The ``tillgate central`` commands: serve, import, adjust, receipts, customer, journal,
statuses, favorites, settings.

Every handler returns an exit code; errors print one line (or one per problem, for a
rejected import) to stderr and exit non-zero, never a traceback: 2 for a command line that
cannot work (a bad flag, a database file that does not exist), 1 for anything else.
Only ``serve`` and ``import`` create a database; the administration commands refuse a
``--db`` that does not exist, since a mistyped path would otherwise report an empty chain.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pwd
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import structlog

from central import admin, favorites, statuses
from central.accounts import ACTIVATION_SETTING, VALIDITY_SETTING, parse_days
from central.clock import now
from central.importer import ImportRejectedError, import_file
from central.schema import CENTRAL_ID
from central.server import ServerTLS, parse_listen, start_server
from central.storage import SQLiteRepository
from central.syncfeed import HORIZON_SETTING
from loyalty import MAX_INTEGER
from tillgate import systemd
from tillgate.cli import parse_command_line
from tillgate.errors import ConfigError, DocumentError, TillgateError

#: Settings the ``settings`` command may change.
KNOWN_SETTINGS = (ACTIVATION_SETTING, VALIDITY_SETTING, HORIZON_SETTING)

Handler = Callable[[argparse.Namespace], int]


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ImportRejectedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            for problem in exc.errors:
                print(f"  {problem}", file=sys.stderr)
            return 1
        except TillgateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _as_db_owner(handler: Handler) -> Handler:
    """Root is sent to the user whose folder holds the database: SQLite files (and the -wal and
    -shm files even a reader makes) created by root could not be written by that user's
    service afterwards."""

    def run(args: argparse.Namespace) -> int:
        folder = Path(args.db).resolve().parent
        if os.geteuid() == 0 and folder.is_dir() and folder.stat().st_uid != 0:
            owner = _owner_name(folder.stat().st_uid)
            print(
                f"error: --db {args.db}: its folder belongs to {owner}; run this as that user "
                f"(sudo -u {owner} tillgate central ...) so that the service can still write it",
                file=sys.stderr,
            )
            return 2
        return handler(args)

    return run


def _on_existing_db(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        db: Path = args.db
        if not db.exists():
            print(
                f"error: --db {db}: no such database (only central import and central serve "
                "create one)",
                file=sys.stderr,
            )
            return 2
        return handler(args)

    return run


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


T = TypeVar("T")


def _using(db: str, work: Callable[[SQLiteRepository], T]) -> T:
    """Run ``work`` on the database at ``db`` and close it, whatever happens."""
    repository = SQLiteRepository(db)
    try:
        return work(repository)
    finally:
        repository.close()


def _serve(args: argparse.Namespace) -> int:
    tls_parts = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls_parts) and not all(tls_parts):
        print("error: --tls-ca, --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        parse_listen(args.listen)
    except ConfigError as exc:
        print(f"error: --listen: {exc.message}", file=sys.stderr)
        return 2
    tls = (
        ServerTLS(Path(args.tls_ca), Path(args.tls_cert), Path(args.tls_key))
        if all(tls_parts)
        else None
    )
    if tls is not None:
        try:
            tls.check()  # before the lifetime settings below touch the database
        except ConfigError as exc:
            print(f"error: --{exc.key.replace('_', '-')}: {exc.message}", file=sys.stderr)
            return 1
    _configure_logging()
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lifetime = {
        ACTIVATION_SETTING: args.points_activation_days,
        VALIDITY_SETTING: args.points_validity_days,
    }
    if any(value is not None for value in lifetime.values()):
        repository = SQLiteRepository(args.db)
        try:
            with repository.transaction() as tx:
                for key, value in lifetime.items():
                    if value is not None:
                        tx.set_setting(key, str(value))
        finally:
            repository.close()
    server = start_server(args.db, args.listen, tls=tls, demo=args.demo, workers=args.workers)
    print(f"central listening on {server.address}", file=sys.stderr, flush=True)
    systemd.notify("READY=1")
    watchdog = systemd.watchdog_interval_s()
    while not done.wait(min(1.0, watchdog or 1.0)):
        if watchdog:
            systemd.notify("WATCHDOG=1")
    systemd.notify("STOPPING=1")
    server.stop(args.grace)
    return 0


def _import(args: argparse.Namespace) -> int:
    repository = SQLiteRepository(args.db)
    failed = 0
    try:
        for name in args.files:
            try:
                result = import_file(repository, Path(name), now())
            except ImportRejectedError as exc:
                failed += 1
                print(f"error: {exc}", file=sys.stderr)
                for problem in exc.errors:
                    print(f"  {problem}", file=sys.stderr)
                continue
            except TillgateError as exc:
                failed += 1
                print(f"error: {exc}", file=sys.stderr)
                continue
            except Exception as exc:  # noqa: BLE001 - one file's surprise must not hide the rest
                # The file's transaction was rolled back; the next files still load.
                failed += 1
                print(f"error: {name}: not imported, nothing of it was written "
                      f"({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            counts = ", ".join(f"{count} {kind}" for kind, count in sorted(result.counts.items()))
            deleted = f", {result.deleted} deleted" if result.deleted else ""
            print(f"{name}: imported {counts or 'nothing'}{deleted}")
    finally:
        repository.close()
    return 1 if failed else 0


def _adjust(args: argparse.Namespace) -> int:
    balance = _using(
        args.db,
        lambda repository: admin.adjust(repository, args.customer_id, args.points, args.reason),
    )
    print(f"{args.customer_id}: adjusted by {args.points}, balance {balance}")
    return 0


def _receipts(args: argparse.Namespace) -> int:
    rows = _using(args.db, admin.receipts_view)
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        print(
            f"{row['store']:<8} {row['receipt_id']:<28} {row['state']:<10} {row['mode']:<8} "
            f"due {row['due']:>10} refunded {row['refunded']:>10}"
        )
    return 0


def _customer(args: argparse.Namespace) -> int:
    view = _using(args.db, lambda repository: admin.customer_view(repository, args.customer_id))
    if args.json:
        _print_json(view)
        return 0
    print(f"{view['id']} {view['name']}: balance {view['balance']} (spendable {view['available']})")
    print(
        f"statuses: {view['statuses']}  counters: {view['counters']}  "
        f"purchases: {view['purchases']}"
    )
    for row in view["ledger"]:
        print(
            f"  {row['at']}  {row['kind']:<10} {row['points']:>10}  {row['receipt_id']}  "
            f"{row['reason']}"
        )
    return 0


def _journal(args: argparse.Namespace) -> int:
    rows = _using(
        args.db, lambda repository: admin.journal_view(repository, rejected_only=args.rejected)
    )
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        print(
            f"{row['store']:<8} {row['receipt_id']:<28} seq {row['seq']:<8} "
            f"{row['operation'] or '-':<10} {row['status']:<9} {row['message']}"
        )
    return 0


def _statuses_recompute(args: argparse.Namespace) -> int:
    changes = _using(args.db, statuses.recompute)
    for change in changes:
        print(
            f"{change.customer_id}: {change.system} {change.old} -> {change.new} ({change.source})"
        )
    print(f"{len(changes)} status change(s)")
    return 0


def _statuses_set(args: argparse.Namespace) -> int:
    repository = SQLiteRepository(args.db)
    try:
        with repository.transaction() as tx:
            change = statuses.set_status(
                tx, args.customer_id, args.system, args.value, "manual", now()
            )
    finally:
        repository.close()
    print("unchanged" if change is None else f"{args.customer_id}: {args.system} -> {args.value}")
    return 0


def _favorites_refresh(args: argparse.Namespace) -> int:
    result = _using(
        args.db, lambda repository: favorites.refresh(repository, month=args.month, fill=args.fill)
    )
    print(
        f"candidates from {result.month}: {result.customers} customer(s) updated, "
        f"{result.filled} slot(s) filled"
    )
    return 0


def _settings(args: argparse.Namespace) -> int:
    repository = SQLiteRepository(args.db)
    try:
        if args.key is None:
            with repository.read() as tx:
                for key, value in sorted(tx.settings().items()):
                    if key in KNOWN_SETTINGS or key == CENTRAL_ID:
                        print(f"{key} = {value}")
            return 0
        if args.key == CENTRAL_ID:
            if args.value is not None:
                print(f"error: {CENTRAL_ID} is drawn when the database is created and cannot "
                      "be set: stores bind their journal to it", file=sys.stderr)
                return 2
            with repository.read() as tx:
                print(f"{CENTRAL_ID} = {tx.setting(CENTRAL_ID) or ''}")
            return 0
        if args.key not in KNOWN_SETTINGS:
            print(
                f"error: unknown setting {args.key!r}: one of {', '.join(KNOWN_SETTINGS)}",
                file=sys.stderr,
            )
            return 2
        with repository.transaction() as tx:
            if args.value is None:
                print(f"{args.key} = {tx.setting(args.key) or ''}")
            else:
                if args.value:
                    try:
                        parse_days(args.value, args.key)
                    except DocumentError as exc:
                        print(f"error: {args.key} {exc.message}", file=sys.stderr)
                        return 2
                tx.set_setting(args.key, args.value)
                print(f"{args.key} = {args.value}")
    finally:
        repository.close()
    return 0


def _points_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer of points, not {text!r}") from None
    if not -MAX_INTEGER <= value <= MAX_INTEGER:
        raise argparse.ArgumentTypeError(f"must be between {-MAX_INTEGER} and {MAX_INTEGER}")
    return value


def _days_arg(text: str) -> int:
    try:
        return parse_days(text, "days")
    except DocumentError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


#: The most gRPC worker threads ``--workers`` takes (each holds a SQLite connection).
MAX_WORKERS = 1024


def _workers_arg(text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of threads 1..{MAX_WORKERS}, not {text!r}")
    return int(value)


def _grace_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 3600:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be seconds 0..3600, not {text!r}")
    return value


def _month_arg(text: str) -> str:
    year, dash, month = text.partition("-")
    if not (dash and len(year) == 4 and year.isascii() and year.isdigit() and len(month) == 2
            and month.isascii() and month.isdigit() and 1 <= int(month) <= 12):
        raise argparse.ArgumentTypeError(f"must be a month YYYY-MM, not {text!r}")
    return text


def _name_arg(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, required=True, help="central SQLite database")


def add_central_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add central's commands (serve, import, …) to ``sub``."""
    serve = sub.add_parser("serve", help="run central processing (gRPC)")
    _db(serve)
    serve.add_argument("--listen", default="127.0.0.1:7443", help="host:port (default %(default)s)")
    serve.add_argument("--tls-ca", help="CA that signs store client certificates (PEM)")
    serve.add_argument("--tls-cert", help="server certificate (PEM)")
    serve.add_argument("--tls-key", help="server private key (PEM)")
    serve.add_argument("--demo", action="store_true", help="load demo data into a new database")
    serve.add_argument("--workers", type=_workers_arg, default=16,
                       help=f"worker threads, 1..{MAX_WORKERS} (default %(default)s)")
    serve.add_argument(
        "--grace", type=_grace_arg, default=5.0,
        help="seconds in-flight calls get on stop, 0..3600 (default %(default)s)",
    )
    serve.add_argument(
        "--points-activation-days",
        type=_days_arg,
        metavar="DAYS",
        help="accrued points become spendable after DAYS (0: at once); stored",
    )
    serve.add_argument(
        "--points-validity-days",
        type=_days_arg,
        metavar="DAYS",
        help="accrued points expire DAYS after activation (0: never); stored",
    )
    serve.set_defaults(handler=_guarded(_as_db_owner(_serve)))

    load = sub.add_parser("import", help="load catalog/customers/promotions (.json/.jsonl) or CSV")
    _db(load)
    load.add_argument("files", nargs="+", metavar="FILE")
    load.set_defaults(handler=_guarded(_as_db_owner(_import)))

    adjust = sub.add_parser("adjust", help="manual balance adjustment (a ledger row)")
    _db(adjust)
    adjust.add_argument("customer_id", metavar="CUSTOMER_ID")
    adjust.add_argument("points", type=_points_arg, metavar="POINTS")
    adjust.add_argument("--reason", required=True)
    adjust.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_adjust))))

    receipts = sub.add_parser("receipts", help="list receipts")
    _db(receipts)
    receipts.add_argument("--json", action="store_true")
    receipts.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_receipts))))

    customer = sub.add_parser("customer", help="show a customer's balance and ledger")
    _db(customer)
    customer.add_argument("customer_id", metavar="ID")
    customer.add_argument("--json", action="store_true")
    customer.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_customer))))

    journal = sub.add_parser("journal", help="uploaded store journal entries")
    _db(journal)
    journal.add_argument("--rejected", action="store_true", help="only entries kept for review")
    journal.add_argument("--json", action="store_true")
    journal.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_journal))))

    status = sub.add_parser("statuses", help="status systems")
    status_sub = status.add_subparsers(dest="statuses_command", metavar="ACTION", required=True)
    recompute = status_sub.add_parser("recompute", help="apply the status rules")
    _db(recompute)
    recompute.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_statuses_recompute))))
    manual = status_sub.add_parser("set", help="set a status manually")
    _db(manual)
    manual.add_argument("customer_id", metavar="CUSTOMER_ID")
    manual.add_argument("system", metavar="SYSTEM", type=_name_arg)
    manual.add_argument("value", metavar="VALUE", type=_name_arg)
    manual.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_statuses_set))))

    fav = sub.add_parser("favorites", help="favorite products sets")
    fav_sub = fav.add_subparsers(dest="favorites_command", metavar="ACTION", required=True)
    refresh = fav_sub.add_parser("refresh", help="recompute candidates from last month")
    _db(refresh)
    refresh.add_argument(
        "--month", type=_month_arg, help="YYYY-MM to take purchases from (default: last month)"
    )
    refresh.add_argument("--fill", action="store_true", help="fill empty slots automatically")
    refresh.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_favorites_refresh))))

    settings = sub.add_parser("settings", help="show or change central settings")
    _db(settings)
    settings.add_argument("key", nargs="?", help=", ".join(KNOWN_SETTINGS))
    settings.add_argument("value", nargs="?", help="new value (days); empty to switch off")
    settings.set_defaults(handler=_guarded(_as_db_owner(_on_existing_db(_settings))))


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``central`` command with its subcommands to the tillgate command line."""
    central = subparsers.add_parser("central", help="central processing server and admin")
    sub = central.add_subparsers(dest="central_command", metavar="COMMAND", required=True)
    add_central_subcommands(sub)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m central`` (the central commands at top level)."""
    parser = argparse.ArgumentParser(prog="python -m central", description=__doc__)
    sub = parser.add_subparsers(dest="central_command", metavar="COMMAND", required=True)
    add_central_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one central command; returns its exit code."""
    args = parse_command_line(build_parser(), argv)
    handler: Handler = args.handler
    return handler(args)
