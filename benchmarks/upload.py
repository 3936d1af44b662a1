"""
Peak memory and speed of a large upload, sent as a reply attachment.

Each case runs in a fresh process (``benchmarks._upload_client``) against a
sandbox in another one, so the memory figure is the client's own: the high
water mark of its resident set during the upload, minus what it held
before. The cases: our client given a path, bytes already in memory, or an
async generator; plain aiohttp given an open file in a ``FormData`` (what a
careful user writes), and given the file's ``bytes`` (the naive way). For
the two cases that start from bytes, the overhead is the increase above
the bytes themselves. The file is generated in a temporary folder and
deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ._common import (
    ROOT,
    Column,
    Report,
    child_command,
    child_env,
    format_ratio,
    median,
    ratio,
    sized,
)
from ._sandbox import SandboxProcess, open_ticket
from ._upload_client import CASES

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = "peak memory and speed of a large upload: ours and aiohttp"

LABELS = {
    "ours_path": "ours, from a path",
    "ours_bytes": "ours, from bytes in memory",
    "ours_stream": "ours, from an async generator",
    "aiohttp_file": "aiohttp, open file in FormData",
    "aiohttp_bytes": "aiohttp, bytes in FormData",
}
REFERENCE = "aiohttp_file"
#: Ours from a path may raise the peak memory by this much at most.
LIMIT_MIB = 32
MIB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size-mib",
        type=int,
        help="size of the uploaded file in MiB (1024 / quick 32)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="uploads per case, in a rotating order (3 / quick 1)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(LABELS),
        help=f"comma-separated, from {', '.join(LABELS)}",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        default=None,
        help="where to write the file (default: the system's temp folder)",
    )


def run(args: argparse.Namespace) -> Report:
    quick = args.quick
    size_mib = sized(args.size_mib, full=1024, quick=32, is_quick=quick)
    cases = [item.strip() for item in args.cases.split(",") if item.strip()]
    unknown = [case for case in cases if case not in CASES]
    if unknown or not cases:
        msg = f"unknown cases {unknown}; choose from {', '.join(LABELS)}"
        raise SystemExit(msg)
    rounds = sized(args.rounds, full=3, quick=1, is_quick=quick)
    params = {"size_mib": size_mib, "cases": len(cases), "rounds": rounds}

    results: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory(
        prefix="vicket-bench-", dir=args.tmp_dir
    ) as folder:
        path = Path(folder) / "upload.bin"
        _write_file(path, size_mib * MIB)
        with SandboxProcess(templates=1, articles=1, faqs=1) as sandbox:
            ticket = asyncio.run(
                open_ticket(sandbox, email="uploads@example.com")
            )
            for round_ in range(rounds):
                shift = round_ % len(cases)
                for case in cases[shift:] + cases[:shift]:
                    results[case].append(
                        _run_case(case, path, sandbox, ticket.token)
                    )
                    _check_received(sandbox, ticket.ticket_id, size_mib * MIB)

    return _report(results, params, quick=quick)


def _write_file(path: Path, size: int) -> None:
    # Random bytes, so that nothing on the way could compress them.
    block = random.Random(0).randbytes(MIB)
    with path.open("wb") as file:
        for _ in range(size // MIB):
            file.write(block)
        file.write(block[: size % MIB])


def _run_case(
    case: str, path: Path, sandbox: SandboxProcess, token: str
) -> dict[str, Any]:
    server_before = sandbox.cpu_seconds()
    completed = subprocess.run(
        child_command(
            "benchmarks._upload_client",
            case,
            f"--file={path}",
            f"--url={sandbox.base_url}",
            f"--api-key={sandbox.api_key}",
            f"--token={token}",
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=child_env(),
        check=False,
    )
    server_after = sandbox.cpu_seconds()
    if completed.returncode != 0:
        msg = f"the {case} upload failed:\n{completed.stderr}"
        raise RuntimeError(msg)
    result: dict[str, Any] = orjson.loads(completed.stdout.splitlines()[-1])
    if server_before is not None and server_after is not None:
        # The sandbox works only while the upload runs, so its CPU time
        # is divided by the upload's duration.
        result["sandbox_cpu_percent"] = (
            (server_after - server_before) / result["seconds"] * 100
        )

    return result


def _check_received(
    sandbox: SandboxProcess, ticket_id: str, size: int
) -> None:
    """Make sure the sandbox got the whole file with the last message."""

    async def last_attachment_size() -> int:
        url = f"{sandbox.base_url}/_sandbox/tickets/{ticket_id}"
        async with (
            aiohttp.ClientSession(raise_for_status=True) as session,
            session.get(url) as response,
        ):
            ticket = (await response.json())["data"]
        return int(ticket["messages"][-1]["attachments"][0]["size"])

    received = asyncio.run(last_attachment_size())
    if received != size:
        msg = f"the sandbox received {received} bytes, not {size}"
        raise AssertionError(msg)


def _report(
    results: dict[str, list[dict[str, Any]]],
    params: dict[str, Any],
    *,
    quick: bool,
) -> Report:
    size = params["size_mib"] * MIB
    report = Report(
        name="upload",
        title="a large upload as a reply attachment",
        params=params,
        quick=quick,
        columns=[
            Column("label", "case"),
            Column("increase_mib", "peak RSS +MiB", _mib),
            Column("held_mib", "data held MiB", _mib),
            Column("overhead_mib", "overhead MiB", _mib),
            Column("overhead_vs_aiohttp", "overhead vs aiohttp", format_ratio),
            Column("seconds", "seconds", lambda value: f"{value:.2f}"),
            Column("mib_per_s", "MiB/s", lambda value: f"{value:.0f}"),
            Column("speed_vs_aiohttp", "speed vs aiohttp", format_ratio),
            Column(
                "sandbox_cpu_percent",
                "sandbox CPU",
                lambda value: f"{value:.0f}%",
            ),
        ],
    )
    rows = {}
    for case, runs in results.items():
        # The worst peak, and the median time, over the rounds.
        increase = max(
            (run["peak_kib"] - run["baseline_kib"]) / 1024 for run in runs
        )
        held = runs[0]["held_bytes"] / MIB
        seconds = median([run["seconds"] for run in runs])
        busy = [
            run["sandbox_cpu_percent"]
            for run in runs
            if "sandbox_cpu_percent" in run
        ]
        rows[case] = {
            "case": case,
            "label": LABELS[case],
            "baseline_mib": median([run["baseline_kib"] for run in runs])
            / 1024,
            "peak_mib": max(run["peak_kib"] for run in runs) / 1024,
            "increase_mib": increase,
            "held_mib": held,
            "overhead_mib": increase - held,
            "seconds": seconds,
            "mib_per_s": size / MIB / seconds,
            "sandbox_cpu_percent": median(busy) if busy else None,
            "peak_reset": all(run["peak_reset"] for run in runs),
        }
    reference = rows.get(REFERENCE)
    for row in rows.values():
        if reference is not None:
            row["overhead_vs_aiohttp"] = ratio(
                max(row["overhead_mib"], 0.0),
                max(reference["overhead_mib"], 0.0),
            )
            row["speed_vs_aiohttp"] = ratio(
                row["mib_per_s"], reference["mib_per_s"]
            )
        report.rows.append(row)
    report.notes.extend(
        [
            "peak RSS +MiB is the client process's high water mark during "
            "the upload minus its resident memory before it; overhead is "
            "that increase less the data the case holds on purpose",
            f"'vs aiohttp' compares with {LABELS[REFERENCE]!r} (the "
            "alternative a careful user writes): memory overheads divided "
            "(lower is leaner), speeds divided (higher is faster)",
            "memory is the worst of the rounds, seconds their median; the "
            "seconds include creating the client and reading the answer, "
            "and the sandbox hashes every byte it receives",
        ]
    )
    path_row = rows.get("ours_path")
    verdicts = []
    met = None
    if path_row is not None:
        increase = path_row["increase_mib"]
        met = None if quick else increase <= LIMIT_MIB
        line = (
            f"ours from a path raised peak memory by {increase:.1f} MiB "
            f"for a {params['size_mib']} MiB file (limit: {LIMIT_MIB} MiB)"
        )
        if quick:
            line += ": not judged in quick mode"
        else:
            line += ": met" if met else ": NOT met"
        verdicts.append(line)
    report.summary = {
        "ours_path_increase_mib": path_row["increase_mib"]
        if path_row
        else None,
        "limit_mib": LIMIT_MIB,
        "target_met": met,
        "verdicts": verdicts,
    }

    return report


def _mib(value: float) -> str:
    return f"{value:.1f}"
