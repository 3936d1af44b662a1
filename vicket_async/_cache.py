"""
A small async cache with a time to live, for answers that rarely change.

`TTLCache` keeps the last good value per key for ``ttl`` seconds. Callers
that miss at the same moment share one fetch, which runs in a task of its
own: a caller that is cancelled or gives up leaves the line without
cancelling the fetch for the others, and the fetch is cancelled only when
nobody waits for it any more. When a refresh fails for a reason that may pass
(a timeout, a lost connection, a 5xx, a 429), the last good value is served
for up to ``stale_for`` seconds more; an answer that says the value itself
is gone (a 404, a 401) is raised and the entry is dropped.

The clock is a plain function returning seconds, so tests can drive time by
hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import attrs

from ._protocol.retries import describe
from .exceptions import (
    APIError,
    ConfigurationError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VicketError,
    VicketTimeoutError,
)

__all__ = ["FAILURE_BACKOFF", "TTLCache", "cache_for", "is_transient"]

log = logging.getLogger("vicket_async.cache")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Seconds a stale value stays in service after a failed refresh before the
#: next refresh is tried, when the server did not say how long to wait.
FAILURE_BACKOFF = 5.0


def is_transient(error: BaseException) -> bool:
    """Whether a failed fetch may be answered with the last good value."""
    if isinstance(error, RateLimitError | ServerError):
        return True
    if isinstance(error, APIError):
        # 400, 401, 404, 410: the server spoke about the value itself.
        return False

    return isinstance(
        error, TransportError | UnexpectedResponseError | TimeoutError
    )


@attrs.define
class _Entry(Generic[V]):
    value: V
    stored: float
    #: No refresh is tried before this moment; set after a failed one.
    hold_until: float = 0.0


@attrs.define(eq=False)
class _Flight(Generic[V]):
    task: asyncio.Task[V]
    waiters: int = 0


class TTLCache(Generic[K, V]):
    """
    Values by key for ``ttl`` seconds, fetched once however many ask.

    Args:
        ttl: seconds a value is served without asking again.
        stale_for: seconds past ``ttl`` that the last good value may still
            be served while refreshes fail for a transient reason.
        max_entries: how many keys are kept; the least recently used goes.
        name: what log lines call this cache.
        clock: a monotonic clock in seconds.
        transient: which errors allow serving a stale value.
    """

    def __init__(
        self,
        *,
        ttl: float,
        stale_for: float = 0.0,
        max_entries: int = 256,
        name: str = "cache",
        clock: Callable[[], float] = time.monotonic,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        if not ttl > 0:
            msg = f"ttl must be a positive number of seconds, got {ttl!r}"
            raise ConfigurationError(msg)
        if not stale_for >= 0:
            msg = f"stale_for must be zero or more seconds, got {stale_for!r}"
            raise ConfigurationError(msg)
        if max_entries < 1:
            msg = f"max_entries must be at least 1, got {max_entries!r}"
            raise ConfigurationError(msg)
        self.ttl = float(ttl)
        self.stale_for = float(stale_for)
        self.max_entries = max_entries
        self.name = name
        self.clock = clock
        self._transient = transient
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._flights: dict[K, _Flight[V]] = {}
        # Bumped by clear(), so a fetch that started before it does not
        # store its answer afterwards.
        self._generation = 0

    def __repr__(self) -> str:
        return (
            f"<TTLCache {self.name} ttl={self.ttl:g} entries="
            f"{len(self._entries)} fetching={len(self._flights)}>"
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def clear(self) -> None:
        """Forget every value; fetches under way no longer store theirs."""
        self._entries.clear()
        self._flights.clear()
        self._generation += 1

    def discard(self, key: K) -> None:
        """Forget the value for ``key``, if there is one."""
        self._entries.pop(key, None)

    async def get(
        self,
        key: K,
        fetch: Callable[[], Awaitable[V]],
        *,
        fresh: bool = False,
        deadline: float | None = None,
    ) -> V:
        """
        The value for ``key``, from the cache or from ``fetch()``.

        ``fresh`` skips the cached value and never falls back to a stale
        one. ``deadline`` (seconds) bounds this caller's wait only; the
        shared fetch goes on for the others.
        """
        if not fresh:
            entry = self._entries.get(key)
            if entry is not None and self._servable(entry, self.clock()):
                self._entries.move_to_end(key)
                return entry.value
        flight = self._flights.get(key)
        if flight is None:
            flight = self._start(key, fetch)
        flight.waiters += 1
        try:
            async with asyncio.timeout(deadline):
                return await asyncio.shield(flight.task)
        except TimeoutError as error:
            if flight.task.done():
                # The fetch itself timed out, not this caller's wait.
                return self._fallback(key, error, fresh=fresh)
            msg = f"no answer within {deadline:g} s"
            waited = VicketTimeoutError(msg)
            return self._fallback(key, waited, fresh=fresh, cause=error)
        except Exception as error:
            return self._fallback(key, error, fresh=fresh)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Nobody wants the answer any more. Forget the flight first
                # so that a caller arriving now starts a fetch of its own
                # rather than joining one that is being cancelled.
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.task.cancel()

    def _servable(self, entry: _Entry[V], now: float) -> bool:
        age = now - entry.stored
        if age < self.ttl:
            return True

        return now < entry.hold_until and age < self.ttl + self.stale_for

    def _start(self, key: K, fetch: Callable[[], Awaitable[V]]) -> _Flight[V]:
        task = asyncio.get_running_loop().create_task(
            self._fetch(key, fetch, self._generation),
            name=f"vicket-cache-{self.name}",
        )
        flight: _Flight[V] = _Flight(task)
        self._flights[key] = flight
        task.add_done_callback(lambda _: self._land(key, flight))

        return flight

    def _land(self, key: K, flight: _Flight[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            # Mark the error as seen: the waiters read it through shield(),
            # and a fetch that nobody waits for any more has no one to tell.
            flight.task.exception()

    async def _fetch(
        self, key: K, fetch: Callable[[], Awaitable[V]], generation: int
    ) -> V:
        try:
            value = await fetch()
        except Exception as error:
            if generation == self._generation:
                self._after_failure(key, error)
            raise
        if generation == self._generation:
            self._entries[key] = _Entry(value, self.clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

        return value

    def _after_failure(self, key: K, error: Exception) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        if not self._transient(error):
            del self._entries[key]
            return
        now = self.clock()
        age = now - entry.stored
        left = self.ttl + self.stale_for - age
        if left <= 0:
            return
        wait = FAILURE_BACKOFF
        if isinstance(error, RateLimitError) and error.retry_after:
            wait = error.retry_after
        entry.hold_until = now + min(wait, left)
        log.warning(
            "%s %r: refresh failed (%s); serving the value fetched %.0f s "
            "ago for up to %.0f s more",
            self.name,
            key,
            _reason(error),
            age,
            left,
        )

    def _fallback(
        self,
        key: K,
        error: Exception,
        *,
        fresh: bool,
        cause: BaseException | None = None,
    ) -> V:
        """The stale value to serve instead of ``error``, or raise it."""
        entry = None if fresh else self._entries.get(key)
        usable = (
            entry is not None
            and self._transient(error)
            and self.clock() - entry.stored < self.ttl + self.stale_for
        )
        if entry is None or not usable:
            if cause is None:
                raise error
            raise error from cause

        return entry.value


def cache_for(
    ttl: float | None,
    stale_for: float,
    *,
    max_entries: int,
    name: str,
) -> TTLCache[K, V] | None:
    """A cache for the client's options, or None when caching is off."""
    if ttl is None or ttl == 0:
        return None
    if not stale_for >= 0:
        msg = f"stale_for must be zero or more seconds, got {stale_for!r}"
        raise ConfigurationError(msg)

    return TTLCache(
        ttl=ttl, stale_for=stale_for, max_entries=max_entries, name=name
    )


def _reason(error: Exception) -> str:
    if isinstance(error, VicketError):
        return describe(error)

    return type(error).__name__
