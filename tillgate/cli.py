"""The ``tillgate`` command: parses the command line and dispatches to the rooms."""

from __future__ import annotations

import argparse
import sys

from tillgate._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tillgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tillgate {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
