"""The ``vicket`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._version import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicket",
        description="Tools for the Vicket public support API.",
    )
    parser.add_argument(
        "--version", action="version", version=f"vicket-async {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="walk through every endpoint against a local sandbox",
        description=(
            "Start a sandbox server in this process and call every "
            "endpoint against it, printing what each returns."
        ),
    )

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vicket`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        asyncio.run(run_demo())
        return 0
    parser.print_help(sys.stderr)

    return 2
