"""
Rate limits per API key and endpoint, in four styles.

The vendor documents 30 requests a minute for ``/init`` and the thread,
10 for creating a ticket and replying, and states nothing for articles.
It does not say how it counts, so the sandbox offers the usual ways a
limit is enforced; a client that copes with all of them copes with the
real one:

- ``"rolling"``: an exact sliding log; a request is allowed if fewer than
  *limit* requests were allowed in the last *period*.
- ``"fixed"``: fixed windows aligned to the sandbox clock; a burst at the
  end of one window and the start of the next gets twice the limit.
- ``"token_bucket"``: a bucket of *limit* tokens refilled at *limit* per
  *period*; short bursts pass, the average is kept.
- ``"sliding_counter"``: the cheap approximation of the rolling log, the
  previous window's count weighted by how much of it still overlaps plus
  the current window's count.

Times are sandbox seconds, so the sandbox clock's ``time_scale`` and
``advance()`` apply.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Literal, Protocol

import attrs

from ._endpoints import check_endpoint

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "RATE_LIMIT_MODES",
    "FixedWindow",
    "RateDecision",
    "RateLimitMode",
    "RateLimiter",
    "RollingLog",
    "SlidingCounter",
    "TokenBucket",
]

RateLimitMode = Literal["rolling", "fixed", "token_bucket", "sliding_counter"]
RATE_LIMIT_MODES: tuple[RateLimitMode, ...] = (
    "rolling",
    "fixed",
    "token_bucket",
    "sliding_counter",
)
DEFAULT_RATE_LIMITS: Mapping[str, int | None] = {
    "init": 30,
    "get_ticket": 30,
    "create_ticket": 10,
    "reply": 10,
    "article": None,
}
# Float sums such as 6 * (10 / 60) land a hair below 1.0; this slack keeps
# a request that arrives exactly on time from being refused.
_EPSILON = 1e-9


@attrs.frozen
class RateDecision:
    """
    The verdict on one request.

    ``reset_after`` is how long until the window moves on (for a bucket:
    until it is full again) and ``retry_after`` how long until a refused
    request would be allowed; both in sandbox seconds.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float = 0.0


class Counter(Protocol):
    """What every rate-limit style implements."""

    def __init__(
        self, limit: int, period: float, *, count_rejected: bool = False
    ) -> None: ...

    def hit(self, now: float) -> RateDecision:
        """Count a request at *now* and say whether it may pass."""
        ...


class RollingLog:
    """The exact sliding log: remembers when each allowed request came."""

    def __init__(
        self, limit: int, period: float, *, count_rejected: bool = False
    ) -> None:
        self.limit = limit
        self.period = period
        self.count_rejected = count_rejected
        self.hits: deque[float] = deque()

    def __repr__(self) -> str:
        return f"<RollingLog {len(self.hits)}/{self.limit}>"

    def hit(self, now: float) -> RateDecision:
        """Count a request at *now* and say whether it may pass."""
        while self.hits and self.hits[0] <= now - self.period:
            self.hits.popleft()
        allowed = len(self.hits) < self.limit
        if allowed or self.count_rejected:
            self.hits.append(now)
        retry = 0.0
        if not allowed:
            # Enough of the oldest entries must age out for one slot.
            freeing = self.hits[len(self.hits) - self.limit]
            retry = freeing + self.period - now

        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - len(self.hits)),
            reset_after=self.hits[0] + self.period - now,
            retry_after=retry,
        )


class FixedWindow:
    """Fixed windows of *period*, aligned to multiples of it."""

    def __init__(
        self, limit: int, period: float, *, count_rejected: bool = False
    ) -> None:
        self.limit = limit
        self.period = period
        self.count_rejected = count_rejected
        self.start = -math.inf
        self.count = 0

    def __repr__(self) -> str:
        return f"<FixedWindow {self.count}/{self.limit}>"

    def hit(self, now: float) -> RateDecision:
        """Count a request at *now* and say whether it may pass."""
        start = math.floor(now / self.period) * self.period
        if start != self.start:
            self.start = start
            self.count = 0
        allowed = self.count < self.limit
        if allowed or self.count_rejected:
            self.count += 1
        reset = self.start + self.period - now

        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - self.count),
            reset_after=reset,
            retry_after=0.0 if allowed else reset,
        )


class TokenBucket:
    """A bucket of *limit* tokens, refilled at *limit* per *period*."""

    def __init__(
        self, limit: int, period: float, *, count_rejected: bool = False
    ) -> None:
        self.limit = limit
        self.period = period
        self.count_rejected = count_rejected
        self.rate = limit / period
        self.tokens = float(limit)
        self.last: float | None = None

    def __repr__(self) -> str:
        return f"<TokenBucket {self.tokens:.2f}/{self.limit}>"

    def hit(self, now: float) -> RateDecision:
        """Count a request at *now* and say whether it may pass."""
        if self.last is not None:
            refill = (now - self.last) * self.rate
            self.tokens = min(float(self.limit), self.tokens + refill)
        self.last = now
        allowed = self.tokens >= 1 - _EPSILON
        if allowed or self.count_rejected:
            self.tokens -= 1
        retry = 0.0 if allowed else (1 - self.tokens) / self.rate

        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, math.floor(self.tokens + _EPSILON)),
            reset_after=(self.limit - self.tokens) / self.rate,
            retry_after=retry,
        )


class SlidingCounter:
    """Two fixed windows blended into an estimate of the rolling count."""

    def __init__(
        self, limit: int, period: float, *, count_rejected: bool = False
    ) -> None:
        self.limit = limit
        self.period = period
        self.count_rejected = count_rejected
        self.start: float | None = None
        self.previous = 0
        self.current = 0

    def __repr__(self) -> str:
        return (
            f"<SlidingCounter previous={self.previous} "
            f"current={self.current}/{self.limit}>"
        )

    def hit(self, now: float) -> RateDecision:
        """Count a request at *now* and say whether it may pass."""
        start = math.floor(now / self.period) * self.period
        if self.start is None or start != self.start:
            follows = self.start is not None and (
                math.isclose(start - self.start, self.period)
            )
            self.previous = self.current if follows else 0
            self.current = 0
            self.start = start
        overlap = 1 - (now - start) / self.period
        estimate = self.previous * overlap + self.current
        allowed = estimate + 1 <= self.limit + _EPSILON
        if allowed or self.count_rejected:
            self.current += 1
        estimate = self.previous * overlap + self.current

        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, math.floor(self.limit - estimate + _EPSILON)),
            reset_after=start + self.period - now,
            retry_after=0.0 if allowed else self._wait(now, start),
        )

    def _wait(self, now: float, start: float) -> float:
        """How long until the estimate leaves room for one request."""
        room = self.limit - 1 - self.current
        if room >= 0 and self.previous > 0:
            # The previous window's weight shrinks until it fits the room.
            moment = start + (1 - room / self.previous) * self.period
            return max(0.0, moment - now)
        # Next window: this window's count becomes the weighted one.
        fraction = max(0.0, 1 - (self.limit - 1) / max(self.current, 1))
        moment = start + self.period + fraction * self.period

        return moment - now


_STYLES: dict[RateLimitMode, type[Counter]] = {
    "rolling": RollingLog,
    "fixed": FixedWindow,
    "token_bucket": TokenBucket,
    "sliding_counter": SlidingCounter,
}


class RateLimiter:
    """
    The sandbox's rate limits: a counter per API key and endpoint.

    Args:
        mode: One of ``"rolling"``, ``"fixed"``, ``"token_bucket"``,
            ``"sliding_counter"``, or ``None`` to switch limits off.
        limits: Requests per *period* for endpoints whose documented
            limit should change; ``None`` for an endpoint means no limit.
        period: The length of a window in sandbox seconds.
        retry_after_header: Whether a 429 carries ``Retry-After``.
        count_rejected: Whether refused requests count against the
            limit too (by default they do not).
    """

    def __init__(
        self,
        *,
        mode: RateLimitMode | None = "rolling",
        limits: Mapping[str, int | None] | None = None,
        period: float = 60.0,
        retry_after_header: bool = True,
        count_rejected: bool = False,
    ) -> None:
        self._mode: RateLimitMode | None = _check_mode(mode)
        self._limits = dict(DEFAULT_RATE_LIMITS)
        self._period = _check_period(period)
        self.retry_after_header = retry_after_header
        self._count_rejected = count_rejected
        self._counters: dict[tuple[str, str], Counter] = {}
        if limits:
            for endpoint, limit in limits.items():
                self.set_limit(endpoint, limit)

    def __repr__(self) -> str:
        return (
            f"<RateLimiter mode={self._mode!r} period={self._period} "
            f"limits={self._limits!r}>"
        )

    @property
    def mode(self) -> RateLimitMode | None:
        """The counting style, or ``None`` when limits are off."""
        return self._mode

    @mode.setter
    def mode(self, mode: RateLimitMode | None) -> None:
        self._mode = _check_mode(mode)
        self.reset()

    @property
    def period(self) -> float:
        """The length of a window in sandbox seconds."""
        return self._period

    @period.setter
    def period(self, period: float) -> None:
        self._period = _check_period(period)
        self.reset()

    @property
    def count_rejected(self) -> bool:
        """Whether refused requests count against the limit."""
        return self._count_rejected

    @count_rejected.setter
    def count_rejected(self, value: bool) -> None:
        self._count_rejected = value
        self.reset()

    @property
    def limits(self) -> dict[str, int | None]:
        """Requests allowed per period, by endpoint (a copy)."""
        return dict(self._limits)

    def set_limit(self, endpoint: str, limit: int | None) -> None:
        """Allow *limit* requests per period to *endpoint* (None: no limit)."""
        check_endpoint(endpoint)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            msg = f"a rate limit must be a positive integer, not {limit!r}"
            raise ValueError(msg)
        self._limits[endpoint] = limit
        self.reset()

    def reset(self) -> None:
        """Forget every count, as if no request had been made."""
        self._counters.clear()

    def hit(
        self, api_key: str, endpoint: str, now: float
    ) -> RateDecision | None:
        """
        Count a request and decide on it.

        Returns ``None`` when the endpoint is not limited at all.
        """
        limit = self._limits.get(endpoint)
        if self._mode is None or limit is None:
            return None
        counter = self._counters.get((api_key, endpoint))
        if counter is None:
            style = _STYLES[self._mode]
            counter = style(
                limit, self._period, count_rejected=self._count_rejected
            )
            self._counters[api_key, endpoint] = counter

        return counter.hit(now)

    def describe(self) -> dict[str, object]:
        """The configuration as JSON-ready data."""
        return {
            "mode": self._mode,
            "limits": dict(self._limits),
            "period": self._period,
            "retry_after_header": self.retry_after_header,
            "count_rejected": self._count_rejected,
        }


def _check_mode(mode: object) -> RateLimitMode | None:
    if mode is None:
        return None
    for known in RATE_LIMIT_MODES:
        if mode == known:
            return known
    names = ", ".join(repr(name) for name in RATE_LIMIT_MODES)
    msg = f"rate_limit_mode must be one of {names} or None, not {mode!r}"
    raise ValueError(msg)


def _check_period(period: float) -> float:
    if not period > 0:
        msg = f"the rate-limit period must be positive, not {period!r}"
        raise ValueError(msg)

    return float(period)
