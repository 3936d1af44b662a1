"""
What the rate-budget check costs when the budget is free.

Each call takes a slot and marks it sent, as a request does, on a budget so
large that it never waits: ours in this process (the sliding log), ours in
Redis when ``--redis-url`` is given or a ``redis-server`` can be started,
and ``aiolimiter.AsyncLimiter.acquire()`` for comparison. The figure is the
time per call in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiolimiter import AsyncLimiter

from vicket_async import RateLimit, RedisBudgetStore
from vicket_async._budgets import Budget, LocalLedger
from vicket_async._protocol.endpoints import Endpoint

from ._common import Column, Report, median, percentile, ratio, sized

__all__ = ["DESCRIPTION", "add_arguments", "redis_for_benchmark", "run"]

DESCRIPTION = "the cost of a free rate-budget check, beside aiolimiter"

#: The largest documented budget, on a window so short that the calls of
#: one benchmark never fill it: the check is always free, and the log keeps
#: the size it has in use.
FREE = RateLimit(30, 0.0001)
#: A budget that never fills because it is huge: its log grows to every
#: call of the run, the worst case for the log's bookkeeping.
HUGE = RateLimit(10**9, 60.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls",
        type=int,
        default=None,
        help="checks per case (default 20000; quick 500)",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="a Redis server to measure against (default: start one)",
    )


def run(args: argparse.Namespace) -> Report:
    calls = sized(args.calls, full=20_000, quick=500, is_quick=args.quick)
    with redis_for_benchmark(args.redis_url) as redis_url:
        rows = asyncio.run(_measure(calls, redis_url))
    reference = next(r for r in rows if r["case"].startswith("aiolimiter"))
    for row in rows:
        row["ratio"] = ratio(row["median_us"], reference["median_us"])

    report = Report(
        name="budget_check",
        title=DESCRIPTION,
        params={"calls": calls},
        quick=args.quick,
        columns=[
            Column("case", "case"),
            Column("median_us", "median", lambda v: f"{v:.2f} µs"),
            Column("p99_us", "p99", lambda v: f"{v:.2f} µs"),
            Column("ratio", "vs aiolimiter", lambda v: f"{v:.2f}x"),
        ],
        rows=rows,
    )
    local = rows[0]
    report.summary = {
        # A cost to know, with no target to meet.
        "target_met": None,
        "verdicts": [
            f"a free in-process budget check costs {local['median_us']:.1f}"
            f" µs, {local['ratio']:.2f}x aiolimiter's acquire()"
        ],
    }
    if redis_url is None:
        report.notes.append("no redis-server found: the Redis row is left out")

    return report


async def _measure(calls: int, redis_url: str | None) -> list[dict[str, Any]]:
    local = Budget("reply", LocalLedger(FREE))

    async def ours_local() -> None:
        slot = await local.acquire()
        await slot.mark_sent()

    huge = Budget("reply", LocalLedger(HUGE))

    async def ours_huge() -> None:
        slot = await huge.acquire()
        await slot.mark_sent()

    limiter = AsyncLimiter(10**9, 60.0)

    async def aiolimiter() -> None:
        await limiter.acquire()

    cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("ours, in-process budget of 30", ours_local),
        ("ours, in-process budget of 10**9", ours_huge),
        ("aiolimiter AsyncLimiter.acquire()", aiolimiter),
    ]
    store = None
    if redis_url is not None:
        store = RedisBudgetStore(redis_url, prefix="bench:check")
        shared = Budget("reply", store.ledger("bench", Endpoint.REPLY, HUGE))

        async def ours_redis() -> None:
            slot = await shared.acquire()
            await slot.mark_sent()

        cases.append(("ours, Redis budget", ours_redis))
    rows = []
    for name, case in cases:
        count = calls if "Redis" not in name else max(100, calls // 10)
        for _ in range(min(200, count)):
            await case()
        timings = []
        for _ in range(count):
            started = time.perf_counter_ns()
            await case()
            timings.append((time.perf_counter_ns() - started) / 1000)
        rows.append(
            {
                "case": name,
                "calls": count,
                "median_us": median(timings),
                "p99_us": percentile(timings, 0.99),
            }
        )
    if store is not None:
        await store.aclose()

    return rows


@contextlib.contextmanager
def redis_for_benchmark(url: str | None) -> Iterator[str | None]:
    """The given Redis URL, or a throwaway redis-server, or None."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)
