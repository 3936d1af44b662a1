"""
When a failed attempt is tried again, and after how long.

Reads (``GET``) are retried on connection failures, timeouts, 429, 502, 503
and 504. Creating a ticket and replying have no idempotency key in this API,
and a duplicate emails the reporter twice, so they are retried only when the
request certainly did not reach the server: the connection was never made,
the request never went out, or the server answered 429 or 503, which say it
was not processed. ``RetryPolicy(retry_unsafe=True)`` retries them on every
transient fault, accepting the risk of duplicates.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from ..exceptions import (
    APIError,
    RateLimitError,
    UnexpectedResponseError,
    VicketConnectionError,
    VicketError,
    VicketTimeoutError,
)
from .endpoints import Endpoint
from .responses import parse_retry_after

__all__ = ["Decision", "RetryPolicy", "decide"]

_GATEWAY = frozenset({502, 503, 504})
#: Statuses that say the server did not process the request.
_NOT_PROCESSED = frozenset({429, 503})


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """
    How failed attempts are retried.

    Args:
        attempts: attempts in all, the first included (1 turns retries off).
        total: seconds that all attempts and waits together may take.
        backoff: the first backoff in seconds; it doubles per attempt, with
            random jitter of up to half of it.
        max_backoff: the longest single backoff.
        retry_unsafe: also retry ``create_ticket`` and ``reply`` when they
            may have reached the server, at the risk of a duplicate.
    """

    attempts: int = 4
    total: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 10.0
    retry_unsafe: bool = False

    def delay(self, attempt: int, rand: Callable[[], float]) -> float:
        """Backoff after failed attempt number ``attempt`` (from 1)."""
        base = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base / 2 + base / 2 * rand()


@attrs.frozen
class Decision:
    """Retry after ``delay`` seconds, or give up (``delay`` is None)."""

    delay: float | None
    reason: str


def _status(error: VicketError) -> int | None:
    if isinstance(error, APIError | UnexpectedResponseError):
        return error.status
    return None


def describe(error: VicketError) -> str:
    """A short name for what failed, for logs and events."""
    status = _status(error)
    if status is not None:
        return str(status)
    if isinstance(error, VicketTimeoutError):
        return "timeout"
    if isinstance(error, VicketConnectionError):
        return "connection failed"
    return type(error).__name__


def decide(
    policy: RetryPolicy,
    endpoint: Endpoint,
    error: VicketError,
    *,
    attempt: int,
    elapsed: float,
    reached_server: bool,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """
    Whether to try again after ``error`` on attempt number ``attempt``.

    ``reached_server`` is False only when the request certainly never went
    out. A 429 or a 503 with ``Retry-After`` waits as long as the server
    asked; the caller checks that against its own deadline.
    """
    reason = describe(error)
    status = _status(error)
    transient = isinstance(error, VicketConnectionError | VicketTimeoutError)
    if status is not None:
        transient = status in _GATEWAY or status == 429
    if not transient:
        return Decision(None, reason)
    safe = (
        not endpoint.is_write
        or policy.retry_unsafe
        or not reached_server
        or status in _NOT_PROCESSED
    )
    if not safe:
        return Decision(None, f"{reason}; not retried, it may have arrived")
    if attempt >= policy.attempts:
        return Decision(None, f"{reason}; gave up after {attempt} attempts")

    delay: float | None = None
    if isinstance(error, RateLimitError):
        delay = error.retry_after
    elif status == 503 and isinstance(
        error, APIError | UnexpectedResponseError
    ):
        delay = parse_retry_after(error.headers)
    if delay is None:
        delay = policy.delay(attempt, rand)
    if elapsed + delay > policy.total:
        return Decision(None, f"{reason}; retrying would pass {policy.total}s")

    return Decision(delay, reason)
