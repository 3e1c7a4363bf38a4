"""The daemon's commands: ``run``, ``check-config``, ``status``, ``sync``, ``retry-rejected``,
``dismiss-rejected``, ``forget-central``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapter.config import Config, InvalidConfigError, load_config
from tillgate.errors import ConfigError, TillgateError

if TYPE_CHECKING:
    from offline.outbox import Outbox, RejectedEntry


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the daemon's TOML configuration (default: the embedded single-store default)",
    )


def add_commands(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run the store daemon")
    _config_arg(run)
    run.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    run.set_defaults(handler=_run)

    check = subparsers.add_parser(
        "check-config", help="validate a configuration, reporting every problem"
    )
    _config_arg(check)
    check.set_defaults(handler=_check_config)

    status = subparsers.add_parser(
        "status", help="mode, breaker, cache and outbox, daemon running or not"
    )
    _config_arg(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    sync = subparsers.add_parser("sync", help="pull the edge cache from central now")
    _config_arg(sync)
    sync.set_defaults(handler=_sync)

    retry = subparsers.add_parser(
        "retry-rejected",
        help="send journal entries central rejected once more (after fixing the cause there)",
    )
    _config_arg(retry)
    retry.add_argument(
        "--seq", type=int, action="append", default=[], metavar="N",
        help="only this entry (repeatable; --list shows them)",
    )
    retry.add_argument("--list", action="store_true", help="list the rejected entries, send none")
    retry.set_defaults(handler=_retry_rejected)

    dismiss = subparsers.add_parser(
        "dismiss-rejected",
        help="close rejected journal entries whose receipts were settled by hand at central",
    )
    _config_arg(dismiss)
    dismiss.add_argument(
        "--seq", type=int, action="append", required=True, metavar="N",
        help="the entry to close (repeatable; `retry-rejected --list` shows them)",
    )
    dismiss.set_defaults(handler=_dismiss_rejected)

    forget = subparsers.add_parser(
        "forget-central",
        help="let kept entries go to the central reached now (the old central's database is gone)",
    )
    _config_arg(forget)
    forget.add_argument(
        "--old-central-is-gone", action="store_true",
        help="required: the central the entries were made against no longer exists",
    )
    forget.set_defaults(handler=_forget_central)


def _load(args: argparse.Namespace) -> Config | None:
    try:
        return load_config(args.config)
    except InvalidConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    from adapter.daemon import run_daemon  # noqa: PLC0415 - grpc loads only for commands that need it
    from adapter.logs import configure_logging  # noqa: PLC0415

    config = _load(args)
    if config is None:
        return 2
    configure_logging(json_lines={"auto": None, "json": True, "console": False}[args.log_format])
    try:
        asyncio.run(run_daemon(config))
    except TillgateError as exc:
        print(f"tillgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 2
    listeners, lanes = len(config.listeners), len(config.lanes)
    print(f"{config.source}: ok (store {config.store}, {listeners} listener(s), {lanes} lane(s))")
    return 0


def _status(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 2
    from adapter.preflight import data_file_exists  # noqa: PLC0415
    from offline.status import read_status  # noqa: PLC0415

    try:
        if not data_file_exists("cache.db", config.cache.db):
            # Not "outbox depth 0": a mistyped --config must not pass for an empty outbox.
            print(
                f"tillgate status: no edge database at {config.cache.db}: no daemon has run "
                f"with this configuration ({config.source})",
                file=sys.stderr,
            )
            return 1
        status = read_status(config.cache.db)
    except TillgateError as exc:
        print(f"tillgate status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
    else:
        for key, value in _flat(status):
            print(f"{key}: {_text(value)}")
    return 0


def _text(value: object) -> str:
    """A status value as ``--json`` spells it (``true``, not Python's ``True``); ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def _flat(status: dict[str, Any], prefix: str = "") -> list[tuple[str, object]]:
    """``cache: {"version": 3}`` as ``("cache.version", 3)``: one ``key: value`` line each."""
    lines: list[tuple[str, object]] = []
    for key, value in status.items():
        if isinstance(value, dict):
            lines.extend(_flat(value, f"{prefix}{key}."))
        else:
            lines.append((f"{prefix}{key}", value))
    return lines


def _sync(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 2
    from adapter.edge import sync_now  # noqa: PLC0415
    from adapter.preflight import check_data_files  # noqa: PLC0415

    try:
        check_data_files(config, central=True)
        summary = asyncio.run(sync_now(config))
    except TillgateError as exc:
        print(f"tillgate sync: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _retry_rejected(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 2

    def act(outbox: Outbox) -> int:
        if args.list:
            rejected = outbox.rejected()
            for entry in rejected:
                print(f"seq {entry.seq}: {entry.operation} of receipt {entry.receipt_id}: "
                      f"{entry.message}")
            if not rejected:
                print("no rejected entries")
            return 0
        requeued, foreign = outbox.requeue_rejected(args.seq)
        for entry in requeued:
            print(f"seq {entry.seq}: {entry.operation} of receipt {entry.receipt_id} waits for "
                  "central again")
        for entry in foreign:
            print(f"tillgate retry-rejected: seq {entry.seq} was journaled against central "
                  f"{entry.central}, not the one this store syncs from now: it can only be sent "
                  "there (see `tillgate forget-central`)", file=sys.stderr)
        missing = _missing_seqs("retry-rejected", args.seq, [*requeued, *foreign])
        if not requeued and not foreign and not missing:
            print("no rejected entries")
        return 1 if foreign or missing else 0

    return _on_outbox(config, "retry-rejected", act)


def _dismiss_rejected(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 2

    def act(outbox: Outbox) -> int:
        dismissed = outbox.dismiss_rejected(args.seq)
        for entry in dismissed:
            print(f"seq {entry.seq}: {entry.operation} of receipt {entry.receipt_id} closed, "
                  "never to be sent (settled at central)")
        return 1 if _missing_seqs("dismiss-rejected", args.seq, dismissed) else 0

    return _on_outbox(config, "dismiss-rejected", act)


def _missing_seqs(command: str, asked: list[int], found: list[RejectedEntry]) -> list[int]:
    """The seqs asked for that name no rejected entry, said on stderr."""
    missing = sorted(set(asked) - {entry.seq for entry in found})
    if missing:
        print(f"tillgate {command}: no rejected entry with seq "
              f"{', '.join(map(str, missing))}", file=sys.stderr)
    return missing


def _forget_central(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 2

    if not args.old_central_is_gone:
        # An entry central applied but whose acknowledgement was lost would be applied again
        # by the next central: only safe when the old one's database is gone for good.
        print("tillgate forget-central: the kept entries will go to whichever central the "
              "store reaches next. If the central they were made against still exists (only "
              "down, or reachable under another address), entries it applied without the store "
              "hearing so are counted twice: point the store back at it instead. Run again with "
              "--old-central-is-gone when its database is gone for good.", file=sys.stderr)
        return 2

    def act(outbox: Outbox) -> int:
        bound = outbox.forget_central()
        print(f"{bound} kept entries will go to the central this store reaches next, and the "
              "cache will be pulled from it from scratch")
        return 0

    return _on_outbox(config, "forget-central", act)


def _on_outbox(config: Config, command: str, act: Callable[[Outbox], int]) -> int:
    """``act`` on the store's outbox, as the user the data files belong to."""
    from adapter.preflight import check_data_files, data_file_exists  # noqa: PLC0415
    from offline.db import EdgeDatabase  # noqa: PLC0415
    from offline.outbox import Outbox  # noqa: PLC0415

    try:
        if not data_file_exists("cache.db", config.cache.db):
            print(f"tillgate {command}: no edge database at {config.cache.db}", file=sys.stderr)
            return 1
        check_data_files(config, central=False)
        db = EdgeDatabase(config.cache.db)
        try:
            return act(Outbox(db, store=config.store))
        finally:
            db.close()
    except TillgateError as exc:
        print(f"tillgate {command}: {exc}", file=sys.stderr)
        return 1
