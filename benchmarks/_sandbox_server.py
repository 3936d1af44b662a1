"""
The sandbox as the benchmarks run it, in a process of its own.

``python -m benchmarks._sandbox_server`` serves a generated website with
rate limits and the per-reporter email limit off, prints
``VICKET_SANDBOX_URL=...`` and ``VICKET_SANDBOX_API_KEY=...``, and runs
until its standard input closes (the benchmark ended, or died) or it gets
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from vicket_async.sandbox import Sandbox, large_website

__all__ = ["main"]

API_KEY = "vk_bench_sandbox_key"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))

    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._sandbox_server"
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument(
        "--shape", choices=("vendor", "integration"), default="vendor"
    )
    parser.add_argument("--templates", type=int, default=10)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--articles", type=int, default=20)
    parser.add_argument("--article-bytes", type=int, default=2000)
    parser.add_argument("--faqs", type=int, default=10)

    return parser


def sandbox_options(api_key: str, shape: str) -> dict[str, Any]:
    """The `Sandbox` arguments for a throughput run: no limits at all."""
    options: dict[str, Any] = {
        "api_key": api_key,
        "shape": shape,
        "email_limit": None,
        "seed": False,
    }
    if "rate_limit_mode" in inspect.signature(Sandbox).parameters:
        options["rate_limit_mode"] = None

    return options


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)

    def wait_for_eof() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    sandbox = Sandbox(
        port=args.port, **sandbox_options(args.api_key, args.shape)
    )
    sandbox.state.add_website(
        large_website(
            args.api_key,
            name="Benchmark Support",
            templates=args.templates,
            questions=args.questions,
            articles=args.articles,
            article_bytes=args.article_bytes,
            faqs=args.faqs,
        )
    )
    async with sandbox:
        print(f"VICKET_SANDBOX_URL={sandbox.base_url}", flush=True)
        print(f"VICKET_SANDBOX_API_KEY={sandbox.api_key}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    sys.exit(main())
