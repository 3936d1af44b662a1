"""
The arithmetic of rate budgets, with the clock passed in.

The rule: never more than ``calls`` requests in any rolling window of
``period + margin`` seconds, counted at the moment each request goes out.
Holding to that is safe against a server that counts with fixed windows, a
rolling window or a token bucket, because each of them admits everything a
stricter rolling window admits. The margin covers the time a request spends
in flight: if the server sees each request at most ``margin`` seconds after
we stamped it, no ``period``-long window on the server holds more than
``calls`` of them.

A server that estimates with a sliding-window counter (the previous window's
count, weighted by how much of it overlaps, plus the current count) can
refuse a burst that the rule allows. Against such a server only an even pace
is safe, and not quite N per window: when the previous window held N calls,
the estimate at the start of the next one is already N, so the first call of
each window would be refused. Pacing therefore spaces calls by
``period / (calls - 1) + margin``: N - 1 per window leaves the estimate the
room it needs, and the margin on every gap keeps two calls from arriving
closer than that, however their time in flight varies. The log has two modes,
bursting (the default) and pacing, and a server 429 switches a budget to
pacing for a while.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections.abc import Mapping

import attrs

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "BudgetStatus",
    "Mode",
    "RateLimit",
    "SlidingLog",
]


class Mode(enum.StrEnum):
    """How a budget spends its calls."""

    BURST = "burst"
    PACE = "pace"


@attrs.frozen
class RateLimit:
    """
    At most ``calls`` requests per ``period`` seconds.

    Args:
        calls: how many requests a window allows.
        period: the window's length in seconds.
        margin: extra seconds added to the window to cover the time a
            request spends in flight; defaults to a sixtieth of the period
            (one second on a minute).
        pacing: spend the budget evenly instead of in bursts, one call
            every ``period / (calls - 1) + margin`` seconds (a budget of
            one call: every ``period + margin``).
    """

    calls: int = attrs.field(
        validator=[attrs.validators.instance_of(int), attrs.validators.gt(0)]
    )
    period: float = attrs.field(validator=attrs.validators.gt(0.0))
    margin: float | None = attrs.field(
        default=None,
        kw_only=True,
        validator=attrs.validators.optional(attrs.validators.ge(0.0)),
    )
    pacing: bool = attrs.field(default=False, kw_only=True)

    @property
    def slack(self) -> float:
        """The margin in seconds: given, or a sixtieth of the period."""
        return self.period / 60 if self.margin is None else self.margin

    @property
    def window(self) -> float:
        """The period plus the margin: the window the log enforces."""
        return self.period + self.slack

    @property
    def interval(self) -> float:
        """The spacing between calls when pacing: N - 1 per window."""
        return self.period / max(1, self.calls - 1) + self.slack


#: The documented limits, per website, by client method name.
DEFAULT_RATE_LIMITS: Mapping[str, RateLimit | None] = {
    "init": RateLimit(30, 60.0),
    "get_ticket": RateLimit(30, 60.0),
    "create_ticket": RateLimit(10, 60.0),
    "reply": RateLimit(10, 60.0),
    "get_article": None,
}


@attrs.frozen(kw_only=True)
class BudgetStatus:
    """
    A budget's state at one moment.

    ``remaining`` is how many calls may go out now, ``next_free_in`` the
    seconds until the next call may go out (0 when one may go now),
    ``paused_for`` the seconds left of a pause a 429 imposed, and ``mode``
    whether the budget bursts or paces.
    """

    limit: RateLimit
    remaining: int
    next_free_in: float
    paused_for: float
    mode: Mode


class SlidingLog:
    """
    The exact log of when requests went out, for one budget.

    Every method takes ``now`` from the caller, so the log can be driven by
    any clock, including a fake one in tests.
    """

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        # Sorted (stamp, slot) pairs, and each slot's stamp to find it.
        self._stamps: list[tuple[float, int]] = []
        self._where: dict[int, float] = {}
        self._ids = itertools.count()
        self._paused_until = float("-inf")
        self._pacing_until = float("-inf")
        self._last = float("-inf")

    def __repr__(self) -> str:
        return (
            f"<SlidingLog {self.limit.calls}/{self.limit.period}s "
            f"entries={len(self._stamps)}>"
        )

    def mode(self, now: float) -> Mode:
        pacing = self.limit.pacing or now < self._pacing_until
        return Mode.PACE if pacing else Mode.BURST

    def _forget(self, now: float) -> None:
        # Compare ages, never sums: `now - stamp >= window` is the one test
        # used everywhere, so float rounding cannot make two answers differ.
        window = self.limit.window
        drop = 0
        for stamp, slot in self._stamps:
            if now - stamp < window:
                break
            del self._where[slot]
            drop += 1
        if drop:
            del self._stamps[:drop]

    def wait(self, now: float, *, pace: bool = True) -> float:
        """
        Seconds until a call may go out; 0 when one may go now.

        With ``pace`` false the pacing spacing is left out, for callers that
        pace with a limiter of their own.
        """
        self._forget(now)
        wait = self._paused_until - now
        calls = self.limit.calls
        if len(self._stamps) >= calls:
            # The oldest of the newest `calls` stamps must leave the window.
            age = now - self._stamps[-calls][0]
            wait = max(wait, self.limit.window - age)
        if pace and self.mode(now) is Mode.PACE:
            wait = max(wait, self.limit.interval - (now - self._last))

        return max(0.0, wait)

    def take(self, now: float) -> int:
        """
        Record a call going out now and return its slot id.

        The caller must have seen `wait` return 0 at this ``now``.
        """
        slot = next(self._ids)
        bisect.insort(self._stamps, (now, slot))
        self._where[slot] = now
        self._last = max(self._last, now)

        return slot

    def _remove(self, slot: int) -> bool:
        stamp = self._where.pop(slot, None)
        if stamp is None:
            return False
        index = bisect.bisect_left(self._stamps, (stamp, slot))
        del self._stamps[index]

        return True

    def give_back(self, slot: int) -> bool:
        """Forget a slot whose request never went out."""
        return self._remove(slot)

    def restamp(self, slot: int, now: float) -> None:
        """
        Move a slot to ``now``, when its request really went out.

        Moving a stamp later only makes the log stricter.
        """
        stamp = self._where.get(slot)
        if stamp is None or now <= stamp:
            return
        self._remove(slot)
        bisect.insort(self._stamps, (now, slot))
        self._where[slot] = now
        self._last = max(self._last, now)

    def pause(self, until: float) -> None:
        """Let no call out before ``until``."""
        self._paused_until = max(self._paused_until, until)

    def pace(self, until: float) -> None:
        """Pace calls evenly until ``until``, then burst again."""
        self._pacing_until = max(self._pacing_until, until)

    def status(self, now: float) -> BudgetStatus:
        self._forget(now)
        wait = self.wait(now)
        remaining = self.limit.calls - len(self._stamps)
        if now < self._paused_until or self.mode(now) is Mode.PACE:
            remaining = min(remaining, 0 if wait > 0 else 1)

        return BudgetStatus(
            limit=self.limit,
            remaining=max(0, remaining),
            next_free_in=wait,
            paused_for=max(0.0, self._paused_until - now),
            mode=self.mode(now),
        )
