"""
Run the sandbox on its own: ``python -m vicket_async.sandbox``.

The first line printed is machine-readable,
``VICKET_SANDBOX_URL=http://127.0.0.1:PORT``, and the second gives the
API key, so a test can start the sandbox as a subprocess with
``--port 0`` and find it.  Each email the sandbox would send is printed
with its link, so a person can follow it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ._ratelimit import RATE_LIMIT_MODES
from ._records import Email
from ._seed import DEMO_API_KEY
from ._server import Sandbox

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT or SIGTERM; returns the exit status."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))

    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vicket_async.sandbox",
        description="Run a local in-memory Vicket server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8080, help="0 picks a free port"
    )
    parser.add_argument("--api-key", default=DEMO_API_KEY)
    parser.add_argument(
        "--shape", choices=("vendor", "integration"), default="vendor"
    )
    parser.add_argument(
        "--sparse-init",
        action="store_true",
        help="leave website.name, articles and faqs out of /init",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="sandbox seconds per real second",
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=None,
        help="seconds of sandbox time a ticket link works",
    )
    parser.add_argument(
        "--rate-limit-mode",
        choices=(*RATE_LIMIT_MODES, "off"),
        default="rolling",
        help="how rate limits are counted; 'off' disables them",
    )
    parser.add_argument(
        "--no-retry-after",
        action="store_true",
        help="leave the Retry-After header out of 429 answers",
    )
    parser.add_argument(
        "--email-limit",
        type=int,
        default=20,
        help="emails per reporter per hour of sandbox time",
    )

    return parser


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows event loops have no signal handlers; Ctrl+C still
        # arrives there as KeyboardInterrupt, which main() absorbs.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        shape=args.shape,
        sparse_init=args.sparse_init,
        time_scale=args.time_scale,
        token_ttl=args.token_ttl,
        email_limit=args.email_limit,
        rate_limit_mode=(
            None if args.rate_limit_mode == "off" else args.rate_limit_mode
        ),
        retry_after_header=not args.no_retry_after,
    )
    async with sandbox:
        sandbox.state.email_listeners.append(_print_email)
        _say(f"VICKET_SANDBOX_URL={sandbox.base_url}")
        _say(f"VICKET_SANDBOX_API_KEY={sandbox.api_key}")
        _say(f"Vicket sandbox listening on {sandbox.base_url}")
        _say(f"API base: {sandbox.api_url}")
        _say(f"Control endpoints: {sandbox.base_url}/_sandbox/...")
        _say("Press Ctrl+C to stop.")
        await stop.wait()
    _say("Vicket sandbox stopped.")


def _print_email(mail: Email) -> None:
    _say(
        f"EMAIL kind={mail.kind} to={mail.to} token={mail.token}\n"
        f"  subject: {mail.subject}\n"
        f"  link: {mail.link}"
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
