"""
Rate budgets in front of the transport: waiting in line for a slot.

A `Budget` serves its callers first come, first served. Only the caller at
the head of the line asks the ledger for a slot; the others wait for their
turn, so a caller cancelled while it waits simply leaves the line, consumes
nothing and delays no one. A slot is stamped when it is granted and stamped
again when the request's headers actually go out; a slot whose request never
went out is given back.

The ledger decides. `LocalLedger` keeps the sliding log in this process and
paces with ``aiolimiter.AsyncLimiter(1, interval)``; a shared ledger (such as
the Redis one) makes the same decisions for many processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

import attrs
from aiolimiter import AsyncLimiter

from ._events import BudgetWaited, EventHook, ModeChanged, emit
from ._protocol.budget import BudgetStatus, Mode, RateLimit, SlidingLog
from ._protocol.endpoints import Endpoint
from .exceptions import RateLimitError

__all__ = [
    "Budget",
    "BudgetStore",
    "Grant",
    "Ledger",
    "LocalLedger",
    "Slot",
    "budget_key",
    "shared_budget",
]

log = logging.getLogger("vicket_async.budget")

#: A caller that waited longer than this is logged at INFO.
SLOW_WAIT = 1.0
#: How many windows a budget paces after a server 429; a 429 soon after
#: pacing ended doubles it, up to `MAX_PACING_WINDOWS`.
PACING_WINDOWS = 10
MAX_PACING_WINDOWS = 160


@attrs.frozen
class Grant:
    """A ledger's answer: a slot id, or how long to wait before asking."""

    slot: int | None
    wait: float = 0.0


class Ledger(Protocol):
    """Where a budget's decisions are made and remembered."""

    limit: RateLimit

    async def try_take(self, max_wait: float | None) -> Grant: ...

    async def give_back(self, slot: int) -> None: ...

    async def mark_sent(self, slot: int) -> None: ...

    async def pause(self, seconds: float) -> None: ...

    async def pace(self, seconds: float) -> None: ...

    async def status(self) -> BudgetStatus: ...


class LocalLedger:
    """The sliding log of this process, on the event loop's clock."""

    def __init__(
        self, limit: RateLimit, clock: Callable[[], float] | None = None
    ) -> None:
        self.limit = limit
        self._log = SlidingLog(limit)
        self._clock = clock or asyncio.get_running_loop().time
        # Pacing is exactly one call per interval, which is what a leaky
        # bucket of capacity one does.
        self._pacer = AsyncLimiter(1, limit.interval)

    async def try_take(self, max_wait: float | None) -> Grant:
        now = self._clock()
        wait = self._log.wait(now, pace=False)
        if wait > 0:
            return Grant(None, wait)
        if self._log.mode(now) is Mode.PACE:
            if max_wait is not None and not self._pacer.has_capacity():
                try:
                    async with asyncio.timeout(max_wait):
                        await self._pacer.acquire()
                except TimeoutError:
                    return Grant(None, self.limit.interval)
            else:
                await self._pacer.acquire()
            # Only the head of the line takes slots, so the window still
            # has room after the pacer's wait.
            now = self._clock()

        return Grant(self._log.take(now))

    async def give_back(self, slot: int) -> None:
        self._log.give_back(slot)

    async def mark_sent(self, slot: int) -> None:
        self._log.restamp(slot, self._clock())

    async def pause(self, seconds: float) -> None:
        self._log.pause(self._clock() + seconds)

    async def pace(self, seconds: float) -> None:
        self._log.pace(self._clock() + seconds)

    async def status(self) -> BudgetStatus:
        return self._log.status(self._clock())


class Slot:
    """
    Permission for one request to go out.

    The transport calls `mark_sent` when the request's headers are written;
    `release` gives the slot back if that never happened.
    """

    __slots__ = ("_budget", "_id", "sent")

    def __init__(self, budget: Budget, slot_id: int) -> None:
        self._budget = budget
        self._id = slot_id
        self.sent = False

    async def mark_sent(self) -> None:
        if not self.sent:
            self.sent = True
            await self._budget.ledger.mark_sent(self._id)

    async def release(self) -> None:
        """Give the slot back unless its request went out."""
        if not self.sent:
            self.sent = True  # never give back twice
            await self._budget.ledger.give_back(self._id)
            self._budget.wake()


class Budget:
    """One endpoint's budget for one website, with its line of callers."""

    def __init__(self, name: str, ledger: Ledger) -> None:
        self.name = name
        self.ledger = ledger
        self._line: deque[asyncio.Future[None]] = deque()
        self._changed = asyncio.Event()
        self._pacing_windows = PACING_WINDOWS
        self._refused_at = float("-inf")

    def __repr__(self) -> str:
        limit = self.ledger.limit
        return (
            f"<Budget {self.name} {limit.calls}/{limit.period:g}s "
            f"waiting={len(self._line)}>"
        )

    @property
    def limit(self) -> RateLimit:
        return self.ledger.limit

    def wake(self) -> None:
        """Let the head of the line look again: a slot came free."""
        self._changed.set()

    async def acquire(
        self,
        *,
        deadline: float | None = None,
        on_event: EventHook | None = None,
    ) -> Slot:
        """
        Wait in line for a slot.

        ``deadline`` is a time on the event loop's clock. When the slot
        cannot come free before it, `RateLimitError` is raised at once with
        ``retry_after`` set to when it will.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        turn: asyncio.Future[None] = loop.create_future()
        self._line.append(turn)
        if self._line[0] is turn:
            turn.set_result(None)
        try:
            await turn
            slot = await self._take(loop, deadline)
        finally:
            self._leave(turn)
        waited = loop.time() - started
        if waited >= SLOW_WAIT:
            log.info("waited %.1f s for the %s budget", waited, self.name)
        if waited > 0.001:
            emit(on_event, BudgetWaited(endpoint=self.name, seconds=waited))

        return slot

    async def _take(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> Slot:
        while True:
            left = None if deadline is None else deadline - loop.time()
            grant = await self.ledger.try_take(left)
            if grant.slot is not None:
                return Slot(self, grant.slot)
            if left is not None and grant.wait > left:
                raise self._too_long(grant.wait)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grant.wait):
                    await self._changed.wait()

    def _leave(self, turn: asyncio.Future[None]) -> None:
        was_head = bool(self._line) and self._line[0] is turn
        with contextlib.suppress(ValueError):
            self._line.remove(turn)
        if was_head and self._line and not self._line[0].done():
            self._line[0].set_result(None)

    def _too_long(self, wait: float) -> RateLimitError:
        limit = self.limit
        message = (
            f"the client-side budget of {limit.calls} calls per "
            f"{limit.period:g} s frees up in {wait:.3g} s, after this call's "
            f"deadline"
        )
        return RateLimitError(
            message,
            endpoint=Endpoint(self.name),
            status=None,
            error_code="local-budget-exhausted",
            retry_after=wait,
        )

    async def server_refused(
        self, retry_after: float | None, *, on_event: EventHook | None = None
    ) -> float:
        """
        React to a 429: pause the whole line and pace for a while.

        Returns the pause in seconds.
        """
        limit = self.limit
        pause = retry_after if retry_after is not None else limit.interval
        await self.ledger.pause(pause)
        if not limit.pacing:
            # A server that refused again soon after pacing ended counts in
            # a way bursts do not suit: pace twice as long this time.
            now = asyncio.get_running_loop().time()
            recent = 2 * self._pacing_windows * limit.period
            if now - self._refused_at < recent:
                self._pacing_windows = min(
                    2 * self._pacing_windows, MAX_PACING_WINDOWS
                )
            else:
                self._pacing_windows = PACING_WINDOWS
            self._refused_at = now
            pacing_for = self._pacing_windows * limit.period
            await self.ledger.pace(pacing_for)
            emit(
                on_event,
                ModeChanged(
                    endpoint=self.name, mode=Mode.PACE, seconds=pacing_for
                ),
            )
        self.wake()

        return pause


_BUDGETS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[object, ...], Budget]
] = weakref.WeakKeyDictionary()


def budget_key(api_key: str) -> str:
    """A short, one-way name for an API key, safe to keep and to show."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


class BudgetStore(Protocol):
    """Where budgets live when they are shared beyond this process."""

    def ledger(
        self, owner: str, endpoint: Endpoint, limit: RateLimit
    ) -> Ledger: ...

    async def aclose(self) -> None: ...


def shared_budget(
    owner: str,
    endpoint: Endpoint,
    limit: RateLimit,
    *,
    store: BudgetStore | None = None,
    make_ledger: Callable[[], Ledger] | None = None,
) -> Budget:
    """
    The budget every client of this event loop shares for one owner.

    ``owner`` names the website: a hash of the origin and the API key.
    Budgets are per event loop, because their waiters belong to one; clients
    in other threads or loops keep lines of their own (and, without a shared
    store, logs of their own).
    """
    loop = asyncio.get_running_loop()
    budgets = _BUDGETS.setdefault(loop, {})
    key = (owner, endpoint.value, limit, id(store) if store else None)
    budget = budgets.get(key)
    if budget is None:
        ledger = make_ledger() if make_ledger else LocalLedger(limit)
        budget = budgets[key] = Budget(endpoint.value, ledger)

    return budget
