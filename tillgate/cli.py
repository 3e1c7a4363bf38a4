"""The ``tillgate`` command: parses the command line and dispatches to the rooms.

Each room contributes its commands through an ``add_commands(subparsers)`` function; every
subcommand sets ``handler``, a callable taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from tillgate._version import __version__

#: Modules that contribute commands, in the order ``--help`` lists them.
COMMAND_MODULES = ("adapter.cli", "adapter.simulate", "central.cli", "drivers.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tillgate",
        description="Connects cash registers to central loyalty processing, online or offline.",
    )
    parser.add_argument("--version", action="version", version=f"tillgate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a room that ships no commands in this build
        if name == "drivers.cli":
            # sniff finds the daemon's trace socket in the data directory the config names
            module.add_commands(subparsers, data_dir_for_config=_data_dir_for_config)
        else:
            module.add_commands(subparsers)
    return parser


def _data_dir_for_config(path: Path | None) -> Path:
    from adapter.config import load_config  # noqa: PLC0415 - only sniff needs the config

    return load_config(path).data_dir


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    code = handler(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
