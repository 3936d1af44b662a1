"""``python -m benchmarks``: run all benchmarks, or the one named."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from . import BENCHMARKS
from ._common import (
    RESULTS_DIR,
    Report,
    add_common_arguments,
    machine,
    print_header,
    write_json,
)


def main(argv: Sequence[str] | None = None) -> int:
    modules = {
        name: importlib.import_module(f"benchmarks.{name}")
        for name in BENCHMARKS
    }
    parser, commands = _parser(modules)
    args = parser.parse_args(argv)
    if args.benchmark is None:
        # No name: every benchmark with its defaults, quick if asked.
        extra = ["--quick"] if args.quick else []
        runs = [(name, commands[name].parse_args(extra)) for name in modules]
    else:
        runs = [(args.benchmark, args)]
    verdicts = []
    for name, options in runs:
        report = _run(name, modules[name], options)
        verdicts.extend(report.summary.get("verdicts", []))
    if len(runs) > 1 and verdicts:
        print("\n== All verdicts ==")
        for verdict in verdicts:
            print(verdict)

    return 0


def _parser(
    modules: dict[str, ModuleType],
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmarks of vicket-async. Without a name, runs them all "
            "with their default sizes."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run every benchmark in its quick mode (seconds, for CI)",
    )
    commands = parser.add_subparsers(
        dest="benchmark", metavar="BENCHMARK", title="benchmarks"
    )
    subparsers = {}
    for name, module in modules.items():
        command = commands.add_parser(
            name,
            help=module.DESCRIPTION,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_common_arguments(command)
        module.add_arguments(command)
        subparsers[name] = command

    return parser, subparsers


def _run(name: str, module: ModuleType, args: argparse.Namespace) -> Report:
    info = machine()
    print_header(module.DESCRIPTION, info)
    report: Report = module.run(args)
    report.print()
    path = args.json or RESULTS_DIR / f"{name}.json"
    write_json(path, report.to_json(info))
    print(f"\nResults written to {path}", flush=True)

    return report


if __name__ == "__main__":
    sys.exit(main())
