"""
Events a client reports as they happen, for metrics and alerts.

Pass ``on_event=callback`` to `VicketClient`; the callback receives each
event object synchronously and should return quickly. An exception raised by
the callback is logged and otherwise ignored, so that monitoring can never
break a request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeAlias

import attrs

from ._protocol.budget import Mode

__all__ = [
    "BudgetWaited",
    "Event",
    "EventHook",
    "ModeChanged",
    "RateLimited",
    "RetryScheduled",
    "emit",
]

log = logging.getLogger("vicket_async")


@attrs.frozen(kw_only=True)
class BudgetWaited:
    """A call waited ``seconds`` for its endpoint's rate budget."""

    endpoint: str
    seconds: float


@attrs.frozen(kw_only=True)
class RetryScheduled:
    """
    A failed attempt will be tried again after ``delay`` seconds.

    ``reason`` says what failed, such as ``"503"`` or ``"connection lost"``;
    ``attempt`` is the number of the attempt that failed, from 1.
    """

    endpoint: str
    attempt: int
    delay: float
    reason: str


@attrs.frozen(kw_only=True)
class RateLimited:
    """The server answered 429; the endpoint pauses for ``retry_after``."""

    endpoint: str
    retry_after: float | None


@attrs.frozen(kw_only=True)
class ModeChanged:
    """A budget switched between bursting and pacing."""

    endpoint: str
    mode: Mode
    seconds: float


Event: TypeAlias = BudgetWaited | RetryScheduled | RateLimited | ModeChanged
EventHook: TypeAlias = Callable[[Event], object]


def emit(hook: EventHook | None, event: Event) -> None:
    """Hand ``event`` to ``hook``, never letting the hook's failure escape."""
    if hook is None:
        return
    try:
        hook(event)
    except Exception:
        log.warning(
            "the on_event callback failed on %s",
            type(event).__name__,
            exc_info=True,
        )
