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


def parse_command_line(parser: argparse.ArgumentParser,
                       argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that an unknown option is refused by the parser of
    the (sub)command it was given to: argparse leaves it to the top parser, whose usage does
    not show the options of the command that was meant (``probe printer URL --widht 42``)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        given = sys.argv[1:] if argv is None else argv
        _given_to(parser, args, given, unknown[0]).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _given_to(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str],
              word: str) -> argparse.ArgumentParser:
    """The parser of the innermost (sub)command named on the command line before ``word``."""
    stop = argv.index(word) if word in argv else len(argv)
    position = -1
    while True:
        commands = next((action for action in parser._actions
                         if isinstance(action, argparse._SubParsersAction)), None)
        name = getattr(args, commands.dest, None) if commands is not None else None
        if commands is None or name not in commands.choices:
            return parser
        position = argv.index(name, position + 1) if name in argv[position + 1:] else len(argv)
        if position > stop:
            return parser
        parser = commands.choices[name]


def _data_dir_for_config(path: Path | None) -> Path:
    from adapter.config import load_config  # noqa: PLC0415 - only sniff needs the config

    return load_config(path).data_dir


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_command_line(parser, argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    code = handler(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
