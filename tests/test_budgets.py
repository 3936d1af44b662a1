"""Rate budgets: the sliding log's arithmetic and the line of callers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from typing import Any

import attrs
import pytest

from vicket_async import (
    BudgetStatus,
    BudgetWaited,
    Mode,
    RateLimit,
    RateLimitError,
    VicketClient,
)
from vicket_async._budgets import Budget, LocalLedger, Slot
from vicket_async._protocol.budget import DEFAULT_RATE_LIMITS, SlidingLog
from vicket_async._protocol.endpoints import Endpoint
from vicket_async.sandbox._ratelimit import (
    FixedWindow,
    RollingLog,
    SlidingCounter,
    TokenBucket,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def most_in_any_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)

    return best


class TestRateLimit:
    def test_defaults_follow_the_reference(self) -> None:
        assert DEFAULT_RATE_LIMITS["init"] == RateLimit(30, 60.0)
        assert DEFAULT_RATE_LIMITS["get_ticket"] == RateLimit(30, 60.0)
        assert DEFAULT_RATE_LIMITS["create_ticket"] == RateLimit(10, 60.0)
        assert DEFAULT_RATE_LIMITS["reply"] == RateLimit(10, 60.0)
        assert DEFAULT_RATE_LIMITS["get_article"] is None

    def test_margin(self) -> None:
        assert RateLimit(10, 60.0).window == 61.0
        assert RateLimit(10, 1.0).window == pytest.approx(1 + 1 / 60)
        assert RateLimit(10, 60.0, margin=0).window == 60.0
        assert RateLimit(10, 60.0, margin=2).interval == 60 / 9 + 2
        assert RateLimit(1, 60.0, margin=0).interval == 60.0

    @pytest.mark.parametrize(
        "args", [(0, 60.0), (10, 0.0), (10, -1.0), (2.5, 60.0)]
    )
    def test_impossible_limits(self, args: tuple[float, float]) -> None:
        with pytest.raises((ValueError, TypeError)):
            RateLimit(*args)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="margin"):
            RateLimit(1, 1.0, margin=-1)


class TestSlidingLog:
    def test_burst_then_wait_for_the_window(self) -> None:
        log = SlidingLog(RateLimit(3, 10.0, margin=0.5))
        for _ in range(3):
            assert log.wait(0.0) == 0
            log.take(0.0)

        assert log.wait(0.0) == 10.5
        assert log.wait(10.4) == pytest.approx(0.1)
        assert log.wait(10.5) == 0

    def test_window_slides(self) -> None:
        log = SlidingLog(RateLimit(2, 10.0, margin=0))
        log.take(0.0)
        log.take(6.0)

        assert log.wait(7.0) == 3.0
        log.take(10.0)
        assert log.wait(10.0) == 6.0

    def test_give_back_and_restamp(self) -> None:
        log = SlidingLog(RateLimit(1, 10.0, margin=0))
        slot = log.take(0.0)
        assert log.give_back(slot)
        assert not log.give_back(slot)
        assert log.wait(0.0) == 0

        slot = log.take(0.0)
        log.restamp(slot, 2.0)
        assert log.wait(3.0) == 9.0

    def test_pause(self) -> None:
        log = SlidingLog(RateLimit(5, 10.0))
        log.pause(4.0)

        assert log.wait(1.0) == 3.0
        assert log.status(1.0).paused_for == 3.0
        assert log.wait(4.0) == 0

    def test_pacing_spaces_calls(self) -> None:
        limit = RateLimit(4, 8.0, margin=0, pacing=True)
        log = SlidingLog(limit)
        log.take(0.0)

        assert log.mode(0.0) is Mode.PACE
        assert log.wait(0.0) == 8 / 3
        assert log.wait(0.0, pace=False) == 0

    def test_pacing_for_a_while(self) -> None:
        log = SlidingLog(RateLimit(4, 8.0, margin=0))
        log.pace(until=50.0)

        assert log.mode(49.0) is Mode.PACE
        assert log.mode(50.0) is Mode.BURST

    def test_status(self) -> None:
        log = SlidingLog(RateLimit(3, 10.0, margin=0))
        log.take(0.0)
        log.take(1.0)
        status = log.status(2.0)

        assert status == BudgetStatus(
            limit=RateLimit(3, 10.0, margin=0),
            remaining=1,
            next_free_in=0.0,
            paused_for=0.0,
            mode=Mode.BURST,
        )
        log.take(2.0)
        assert log.status(2.0).next_free_in == 8.0
        assert log.status(10.5).remaining == 1

    @pytest.mark.parametrize("seed", range(20))
    def test_never_more_than_n_in_any_window(self, seed: int) -> None:
        rng = random.Random(seed)
        limit = RateLimit(rng.randint(1, 30), 60.0)
        log = SlidingLog(limit)
        now, sent = 0.0, []
        while now < 600:
            wait = log.wait(now)
            if wait == 0:
                sent.append(now)
                log.take(now)
            now += rng.choice([0.0, 0.001, 0.5, wait, rng.uniform(0, 5)])

        assert most_in_any_window(sent, limit.window) == limit.calls
        # The whole budget is spent: close to N per window over the run.
        assert len(sent) >= limit.calls * (600 // limit.window)


def make_budget(limit: RateLimit, clock: FakeClock | None = None) -> Budget:
    return Budget("reply", LocalLedger(limit, clock))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class TestBudget:
    async def test_burst_goes_at_once_then_waits(self) -> None:
        budget = make_budget(RateLimit(5, 60.0))
        tasks = [asyncio.create_task(budget.acquire()) for _ in range(8)]
        await settle()

        assert sum(t.done() for t in tasks) == 5
        status = await budget.ledger.status()
        assert status.remaining == 0
        assert status.next_free_in > 59
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def test_first_come_first_served(self) -> None:
        clock = FakeClock()
        budget = make_budget(RateLimit(2, 60.0, margin=0), clock)
        order: list[int] = []

        async def caller(number: int) -> None:
            await budget.acquire()
            order.append(number)

        tasks = [asyncio.create_task(caller(n)) for n in range(6)]
        await settle()
        assert order == [0, 1]
        for expected in ([0, 1, 2, 3], [0, 1, 2, 3, 4, 5]):
            clock.now += 60
            budget.wake()
            await settle()
            assert order == expected
        await asyncio.gather(*tasks)

    async def test_cancelled_waiter_consumes_nothing(self) -> None:
        clock = FakeClock()
        budget = make_budget(RateLimit(1, 60.0, margin=0), clock)
        first = await budget.acquire()
        await first.mark_sent()
        waiting = asyncio.create_task(budget.acquire())
        behind = asyncio.create_task(budget.acquire())
        await settle()
        waiting.cancel()
        await settle()

        clock.now += 60
        budget.wake()
        await settle()
        assert behind.done()
        assert waiting.cancelled()
        assert (await budget.ledger.status()).remaining == 0

    async def test_unsent_slot_is_given_back(self) -> None:
        budget = make_budget(RateLimit(1, 60.0))
        slot = await budget.acquire()
        waiter = asyncio.create_task(budget.acquire())
        await settle()
        assert not waiter.done()

        await slot.release()
        await settle()
        assert waiter.done()

    async def test_sent_slot_stays_spent(self) -> None:
        budget = make_budget(RateLimit(1, 60.0))
        slot = await budget.acquire()
        await slot.mark_sent()
        await slot.release()

        assert (await budget.ledger.status()).remaining == 0

    async def test_deadline_fails_at_once_with_the_time(self) -> None:
        budget = make_budget(RateLimit(1, 60.0, margin=0))
        await budget.acquire()
        loop = asyncio.get_running_loop()

        with pytest.raises(RateLimitError) as info:
            await budget.acquire(deadline=loop.time() + 5)

        assert info.value.status is None
        assert info.value.error_code == "local-budget-exhausted"
        assert info.value.retry_after == pytest.approx(60, abs=1)
        assert "frees up in" in str(info.value)

    async def test_server_refusal_pauses_and_paces(self) -> None:
        clock = FakeClock()
        budget = make_budget(RateLimit(10, 60.0, margin=0), clock)

        pause = await budget.server_refused(7.0)
        status = await budget.ledger.status()

        assert pause == 7.0
        assert status.paused_for == 7.0
        assert status.mode is Mode.PACE
        clock.now += 601
        assert (await budget.ledger.status()).mode is Mode.BURST

    async def test_a_long_wait_is_logged_and_reported(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        events: list[object] = []
        budget = make_budget(RateLimit(1, 1.0, margin=0.05))
        first = await budget.acquire()
        await first.mark_sent()

        with caplog.at_level(logging.INFO, logger="vicket_async"):
            await budget.acquire(on_event=events.append)

        (waited,) = events
        assert isinstance(waited, BudgetWaited)
        assert waited.seconds >= 1.0
        assert "s for the reply budget" in caplog.text
        assert caplog.records[0].levelname == "INFO"

    async def test_repeated_refusals_pace_longer(self) -> None:
        clock = FakeClock()
        budget = make_budget(RateLimit(10, 1.0, margin=0), clock)
        spans = []
        for _ in range(3):
            await budget.server_refused(0.0)
            status = await budget.ledger.status()
            assert status.mode is Mode.PACE
            spans.append(budget._pacing_windows)

        assert spans == [10, 20, 40]

    async def test_pacing_uses_the_interval(self) -> None:
        budget = make_budget(RateLimit(4, 0.4, margin=0, pacing=True))
        loop = asyncio.get_running_loop()
        stamps = []
        for _ in range(3):
            slot: Slot = await budget.acquire()
            stamps.append(loop.time())
            await slot.mark_sent()

        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert all(gap >= 0.09 for gap in gaps)


class TestAgainstServerStyles:
    """The log's decisions fed to the sandbox's four ways of counting."""

    @staticmethod
    def refusals(
        style: type[Any], limit: RateLimit, *, pacing: bool, seed: int
    ) -> tuple[int, int]:
        rng = random.Random(seed)
        log = SlidingLog(attrs.evolve(limit, pacing=pacing))
        now, arrivals = 0.0, []
        while now < 40 * limit.period:
            wait = log.wait(now)
            if wait == 0:
                log.take(now)
                # Each request reaches the server a little later, by no
                # more than the margin.
                margin = limit.window - limit.period
                arrivals.append(now + rng.uniform(0, margin))
                now += rng.choice([0.0, 0.0, 0.001])
            else:
                # A real clock always moves on; float sums may not.
                now += max(wait, 1e-9)
        server = style(limit.calls, limit.period)
        refused = sum(not server.hit(t).allowed for t in sorted(arrivals))

        return len(arrivals), refused

    @pytest.mark.parametrize("seed", range(3))
    @pytest.mark.parametrize("style", [RollingLog, FixedWindow, TokenBucket])
    def test_bursting_is_safe_where_it_should_be(
        self, style: type[Any], seed: int
    ) -> None:
        limit = RateLimit(10, 60.0)
        sent, refused = self.refusals(style, limit, pacing=False, seed=seed)

        assert refused == 0
        assert sent >= 40 * limit.calls * 60 / 61

    @pytest.mark.parametrize("seed", range(3))
    @pytest.mark.parametrize(
        "style", [RollingLog, FixedWindow, TokenBucket, SlidingCounter]
    )
    def test_pacing_is_safe_everywhere(
        self, style: type[Any], seed: int
    ) -> None:
        limit = RateLimit(10, 60.0)
        sent, refused = self.refusals(style, limit, pacing=True, seed=seed)

        assert refused == 0
        assert sent >= 40 * limit.period / limit.interval - 1

    def test_bursting_meets_refusals_from_a_sliding_counter(self) -> None:
        _, refused = self.refusals(
            SlidingCounter, RateLimit(10, 60.0), pacing=False, seed=0
        )

        assert refused > 0


class TestSharing:
    async def test_one_key_one_budget(self) -> None:
        def client(key: str, url: str = "http://127.0.0.1:1") -> VicketClient:
            return VicketClient(api_key=key, base_url=url)

        a, b, c = client("k1"), client("k1"), client("k2")
        d = client("k1", "http://127.0.0.1:2")

        for endpoint in (Endpoint.INIT, Endpoint.REPLY):
            assert a._budget(endpoint) is b._budget(endpoint)
            assert a._budget(endpoint) is not c._budget(endpoint)
            assert a._budget(endpoint) is not d._budget(endpoint)
        assert a._budget(Endpoint.GET_ARTICLE) is None
        for vicket in (a, b, c, d):
            await vicket.aclose()

    async def test_overrides_and_status(self) -> None:
        async with VicketClient(
            api_key="k",
            base_url="http://127.0.0.1:1",
            rate_limits={"init": None, "get_article": RateLimit(5, 1.0)},
        ) as vicket:
            statuses = await vicket.budget_status()

        assert "init" not in statuses
        assert statuses["get_article"].remaining == 5
        assert statuses["create_ticket"].limit == RateLimit(10, 60.0)

    def test_unknown_endpoint_name(self) -> None:
        with pytest.raises(ValueError, match="unknown endpoint 'tickets'"):
            VicketClient(api_key="k", rate_limits={"tickets": None})
