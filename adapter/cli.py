"""The daemon's commands: ``run``, ``check-config``, ``status``, ``sync``, ``retry-rejected``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from adapter.config import Config, InvalidConfigError, load_config
from tillgate.errors import ConfigError, TillgateError


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
        help="only this entry (repeatable; `tillgate central journal --rejected` lists them)",
    )
    retry.set_defaults(handler=_retry_rejected)


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
    from offline.status import read_status  # noqa: PLC0415

    if not config.cache.db.exists():
        # Not "outbox depth 0": a mistyped --config must not pass for an empty outbox.
        print(
            f"tillgate status: no edge database at {config.cache.db}: no daemon has run with "
            f"this configuration ({config.source})",
            file=sys.stderr,
        )
        return 1
    try:
        status = read_status(config.cache.db)
    except TillgateError as exc:
        print(f"tillgate status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
    else:
        for key, value in _flat(status):
            print(f"{key}: {'-' if value is None else value}")
    return 0


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
    from adapter.preflight import check_data_files  # noqa: PLC0415
    from offline.db import EdgeDatabase  # noqa: PLC0415
    from offline.outbox import Outbox  # noqa: PLC0415

    if not config.cache.db.exists():
        print(f"tillgate retry-rejected: no edge database at {config.cache.db}", file=sys.stderr)
        return 1
    try:
        check_data_files(config, central=False)
        db = EdgeDatabase(config.cache.db)
        try:
            requeued = Outbox(db, store=config.store).requeue_rejected(args.seq)
        finally:
            db.close()
    except TillgateError as exc:
        print(f"tillgate retry-rejected: {exc}", file=sys.stderr)
        return 1
    missing = sorted(set(args.seq) - {seq for seq, _, _ in requeued})
    for seq, receipt_id, operation in requeued:
        print(f"seq {seq}: {operation} of receipt {receipt_id} waits for central again")
    if missing:
        print(f"tillgate retry-rejected: no rejected entry with seq {', '.join(map(str, missing))}",
              file=sys.stderr)
        return 1
    if not requeued:
        print("no rejected entries")
    return 0
