"""
One rate budget for four processes, kept in Redis.

Four processes with 50 callers each create tickets against a sandbox in its
own process that enforces 10 per window with a rolling window, on a clock
where a window lasts a second. In one case the processes share their budget
through Redis (`RedisBudgetStore`); in the other each keeps its own
in-process budget, as four workers of a web app would without it. The
table shows the 429s the server answered, the tickets created as a share of
what the limit allows, and what the Redis check adds to a request when the
budget is free (the median and 99th percentile of the difference).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from typing import Any

from ._common import (
    ROOT,
    Column,
    Report,
    child_command,
    child_env,
    sized,
)
from ._rated_sandbox import RatedSandbox
from .budget_check import _measure, redis_for_benchmark

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = "one budget for four processes: Redis beside per-process"

CALLS = 10
TARGET_SHARE = 0.95


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--windows",
        type=int,
        default=None,
        help="windows each case runs for (default 20; quick 2)",
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument(
        "--redis-url",
        default=None,
        help="a Redis server to use (default: start one)",
    )


def run(args: argparse.Namespace) -> Report:
    windows = sized(args.windows, full=20, quick=2, is_quick=args.quick)
    params: dict[str, Any] = {
        "processes": args.processes,
        "callers_each": args.callers,
        "limit": f"{CALLS} per window",
        "window_s": args.period,
        "windows": windows,
    }
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with redis_for_benchmark(args.redis_url) as redis_url:
        if redis_url is None:
            notes.append("no redis-server found: only the local case ran")
        with RatedSandbox(mode="rolling", time_scale=60 / args.period) as sb:
            for name, url in (
                ("Redis, shared", redis_url),
                ("per process", "-"),
            ):
                if url is None:
                    continue
                rows.append(_case(sb, name, url, args, windows))
        if redis_url is not None:
            checks = asyncio.run(
                _measure(1000 if not args.quick else 100, redis_url)
            )
            local = next(r for r in checks if r["case"].endswith("of 30"))
            remote = next(r for r in checks if "Redis" in r["case"])
            params["redis_check_added_median_us"] = round(
                remote["median_us"] - local["median_us"], 1
            )
            params["redis_check_added_p99_us"] = round(
                remote["p99_us"] - local["p99_us"], 1
            )

    report = Report(
        name="shared_budget",
        title=DESCRIPTION,
        params=params,
        quick=args.quick,
        columns=[
            Column("case", "budget"),
            Column("refused", "429s"),
            Column("created", "created"),
            Column("share", "of limit", lambda v: f"{v:.1%}"),
        ],
        rows=rows,
        notes=notes,
    )
    verdicts = []
    for row in rows:
        verdicts.append(
            f"{row['case']}: {row['refused']} 429s, {row['share']:.1%} of "
            f"the limit"
        )
    if "redis_check_added_median_us" in params:
        verdicts.append(
            f"the Redis check adds {params['redis_check_added_median_us']} µs"
            f" at the median and {params['redis_check_added_p99_us']} µs at "
            f"the 99th percentile to a request"
        )
    shared = next((r for r in rows if r["case"] == "Redis, shared"), None)
    ok = None
    if shared is not None:
        ok = shared["refused"] == 0 and shared["share"] >= TARGET_SHARE
        verdicts.append(
            f"target (0 429s, at least {TARGET_SHARE:.0%}): "
            f"{'met' if ok else 'missed'}"
        )
    report.summary = {
        "verdicts": verdicts,
        "target_met": None if args.quick else ok,
    }

    return report


def _case(
    sandbox: RatedSandbox,
    name: str,
    redis_url: str,
    args: Any,
    windows: int,
) -> dict[str, Any]:
    sandbox.control("POST", "reset")
    time.sleep(1.1)
    seconds = windows * args.period
    start_at = time.time() + 1.5
    workers = [
        subprocess.Popen(
            child_command(
                "benchmarks._budget_worker",
                sandbox.base_url,
                sandbox.api_key,
                redis_url,
                str(args.callers),
                str(seconds),
                str(args.period),
                str(start_at),
            ),
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        for _ in range(args.processes)
    ]
    results = [
        json.loads(worker.communicate(timeout=seconds + 120)[0])
        for worker in workers
    ]
    statuses = sandbox.statuses("create_ticket")
    created = sum(result["created"] for result in results)

    return {
        "case": name,
        "refused": statuses.count(429),
        "created": created,
        "share": created / (CALLS * windows),
    }
