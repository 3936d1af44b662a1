"""
What every benchmark shares: the machine header, tables, JSON, statistics.

A benchmark builds a `Report` (parameters, columns, rows, a summary) and
hands it back to the runner, which prints it and writes it as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "RESULTS_DIR",
    "ROOT",
    "Column",
    "Report",
    "add_common_arguments",
    "child_command",
    "child_env",
    "format_duration",
    "format_ratio",
    "machine",
    "median",
    "percentile",
    "print_header",
    "ratio",
    "sized",
    "write_json",
]

#: The checkout's root, which holds ``benchmarks`` and ``vicket_async``.
ROOT = Path(__file__).resolve().parent.parent
#: Where results go unless ``--json`` says otherwise; git ignores it.
RESULTS_DIR = ROOT / "benchmarks" / "results"

_PACKAGES = (
    "vicket-async",
    "aiohttp",
    "attrs",
    "cattrs",
    "orjson",
    "pydantic",
    "pydantic-core",
    "msgspec",
    "httpx",
)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--quick`` and ``--json``, which every benchmark takes."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            "small sizes and few repeats: proves the benchmark runs, in "
            "seconds; its figures mean little"
        ),
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="where to write the results (default: benchmarks/results/)",
    )


def machine() -> dict[str, Any]:
    """The machine and the versions that the figures depend on."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": (
            f"{platform.python_implementation()} {platform.python_version()}"
        ),
        "load_average": _load_average(),
        "versions": versions,
    }


def _cpu_model() -> str:
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass

    return platform.processor() or platform.machine() or "unknown"


def _load_average() -> list[float] | None:
    try:
        return [round(load, 2) for load in os.getloadavg()]
    except OSError:
        return None


def print_header(title: str, info: dict[str, Any]) -> None:
    """Print a benchmark's title and the machine it runs on."""
    versions = info["versions"]
    libraries = ", ".join(
        f"{name} {version}"
        for name, version in versions.items()
        if version is not None
    )
    load = info["load_average"]
    print()
    print(f"== {title} ==")
    print(
        f"CPU: {info['cpu']}, {info['cores']} cores "
        f"({info['usable_cores']} usable); {info['python']}; "
        f"{info['platform']}"
    )
    print(f"Libraries: {libraries}")
    if load is not None:
        print(f"Load average at start: {load[0]} {load[1]} {load[2]}")
    print(
        "Figures vary with machine load; compare the ratios, which are "
        "taken in the same run."
    )


@dataclass(frozen=True)
class Column:
    """A table column: the row key it shows, its title, how to format."""

    key: str
    title: str
    format: Callable[[Any], str] = str


@dataclass
class Report:
    """A benchmark's results, ready to print and to write as JSON."""

    name: str
    title: str
    params: dict[str, Any]
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quick: bool = False

    def table(self) -> str:
        """The rows as an aligned text table."""
        header = [column.title for column in self.columns]
        body = [
            [_cell(column, row.get(column.key)) for column in self.columns]
            for row in self.rows
        ]
        widths = [
            max(len(line[index]) for line in [header, *body])
            for index in range(len(header))
        ]
        lines = []
        for line in [header, *body]:
            cells = [
                # The first column names the case; the rest are figures.
                cell.ljust(width) if index == 0 else cell.rjust(width)
                for index, (cell, width) in enumerate(
                    zip(line, widths, strict=True)
                )
            ]
            lines.append("  ".join(cells).rstrip())
        lines.insert(1, "  ".join("-" * width for width in widths))

        return "\n".join(lines)

    def print(self) -> None:
        """Print the parameters, the table, the notes and the summary."""
        params = ", ".join(
            f"{key}={value}" for key, value in self.params.items()
        )
        print(
            f"Parameters: {params}" + ("  [quick mode]" if self.quick else "")
        )
        print()
        print(self.table())
        if self.notes:
            print()
            for note in self.notes:
                print(
                    textwrap.fill(
                        note, 79, initial_indent="- ", subsequent_indent="  "
                    )
                )
        verdicts = self.summary.get("verdicts", [])
        if verdicts:
            print()
            for verdict in verdicts:
                print(verdict)

    def to_json(self, info: dict[str, Any]) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "title": self.title,
            "quick": self.quick,
            "finished": dt.datetime.now(dt.UTC).isoformat(),
            "machine": info,
            "params": self.params,
            "rows": self.rows,
            "summary": self.summary,
            "notes": self.notes,
        }


def _cell(column: Column, value: Any) -> str:
    if value is None:
        return "-"

    return column.format(value)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write a report's JSON, creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Iterable[float], fraction: float) -> float:
    """The value below which *fraction* of the values lie (interpolated)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    weight = position - low

    return ordered[low] * (1 - weight) + ordered[high] * weight


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``, or None when the reference is not usable."""
    if not reference or math.isnan(reference) or math.isnan(value):
        return None

    return value / reference


def format_duration(seconds: float) -> str:
    """Seconds in the unit that reads best: s, ms or µs."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"

    return f"{seconds * 1e6:.1f} µs"


def format_ratio(value: float) -> str:
    return f"{value:.2f}x"


def child_command(module: str, *args: str) -> list[str]:
    """The command that runs ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env() -> dict[str, str]:
    """An environment in which a child process imports this checkout."""
    env = dict(os.environ)
    paths = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)

    return env


def sized(value: Any, *, full: Any, quick: Any, is_quick: bool) -> Any:
    """An argument's value: as given, else the full or the quick default."""
    if value is not None:
        return value

    return quick if is_quick else full
