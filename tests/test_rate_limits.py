"""Budgets and retries against the sandbox's rate limits and faults."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from vicket_async import (
    Event,
    FileUpload,
    RateLimit,
    RateLimited,
    RateLimitError,
    RetryPolicy,
    ServerError,
    VicketClient,
    VicketConnectionError,
)
from vicket_async.sandbox import Sandbox

from .redis_server import free_port

# A sandbox "minute" lasts one second; the client's budget matches it.
SCALE = 60.0
PER_SECOND = {
    "create_ticket": RateLimit(10, 1.0),
    "init": RateLimit(30, 1.0),
    "get_ticket": RateLimit(30, 1.0),
    "reply": RateLimit(10, 1.0),
}
FAST = RetryPolicy(backoff=0.01, max_backoff=0.05)


def client_for(sandbox: Sandbox, **options: Any) -> VicketClient:
    options.setdefault("retry", FAST)
    return VicketClient(
        api_key=sandbox.api_key, base_url=sandbox.base_url, **options
    )


async def create(vicket: VicketClient, number: int, **answers: Any) -> Any:
    return await vicket.create_ticket(
        email=f"reporter{number}@example.com",
        title=f"ticket {number}",
        template="tpl_bug",
        answers={"q_description": "broken", "q_browser": "chrome", **answers},
    )


def statuses(sandbox: Sandbox, endpoint: str) -> list[int | None]:
    return [r.status for r in sandbox.requests if r.endpoint == endpoint]


class TestBursts:
    @pytest.mark.parametrize("mode", ["rolling", "fixed", "token_bucket"])
    async def test_no_429_while_spending_the_budget(self, mode: Any) -> None:
        events: list[Event] = []
        async with (
            Sandbox(time_scale=SCALE, rate_limit_mode=mode) as sandbox,
            client_for(
                sandbox, rate_limits=PER_SECOND, on_event=events.append
            ) as vicket,
        ):
            await asyncio.gather(*(create(vicket, n) for n in range(25)))

            assert statuses(sandbox, "create_ticket") == [201] * 25
            assert len(sandbox.state.all_tickets()) == 25
        assert not [e for e in events if isinstance(e, RateLimited)]

    async def test_burst_goes_out_at_once(self) -> None:
        async with (
            Sandbox(time_scale=SCALE) as sandbox,
            client_for(
                sandbox, rate_limits={"create_ticket": RateLimit(5, 60.0)}
            ) as vicket,
        ):
            tasks = [asyncio.create_task(create(vicket, n)) for n in range(8)]
            done, pending = await asyncio.wait(tasks, timeout=2.0)

            assert len(done) == 5
            assert len(pending) == 3
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            status = (await vicket.budget_status())["create_ticket"]

        assert status.remaining == 0
        assert len(sandbox.state.all_tickets()) == 5

    async def test_sliding_counter_server_switches_to_pacing(self) -> None:
        events: list[Event] = []
        async with (
            Sandbox(time_scale=SCALE, rate_limit_mode="sliding_counter") as sb,
            client_for(
                sb, rate_limits=PER_SECOND, on_event=events.append
            ) as vicket,
        ):
            await asyncio.gather(*(create(vicket, n) for n in range(30)))
            refused = statuses(sb, "create_ticket").count(429)
            status = (await vicket.budget_status())["create_ticket"]

        # Every ticket was created exactly once despite any 429.
        assert len(sb.state.all_tickets()) == 30
        assert refused == len(
            [e for e in events if isinstance(e, RateLimited)]
        )
        if refused:
            assert status.mode == "pace"

    async def test_server_429_pauses_the_whole_line(self) -> None:
        refused = asyncio.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, RateLimited):
                refused.set()

        async with (
            Sandbox(time_scale=SCALE) as sandbox,
            client_for(
                sandbox,
                rate_limits=PER_SECOND,
                cache_ttl=None,
                on_event=on_event,
            ) as vicket,
        ):
            sandbox.faults.rate_limited("init", retry_after=1)
            first = asyncio.create_task(vicket.init())
            await refused.wait()
            # Callers that arrive during the pause wait for it too.
            await asyncio.gather(first, *(vicket.init() for _ in range(3)))

        records = [r for r in sandbox.requests if r.endpoint == "init"]
        (limited,) = [r for r in records if r.status == 429]
        later = [r for r in records if r.time > limited.time]
        # Retry-After is one real second, a sandbox minute.
        assert len(later) == 4
        assert all(r.time - limited.time >= 0.9 * SCALE for r in later)

    async def test_retry_after_beyond_deadline_fails_at_once(self) -> None:
        async with (
            Sandbox() as sandbox,
            client_for(sandbox) as vicket,
        ):
            sandbox.faults.rate_limited("init", retry_after=30, times=None)
            with pytest.raises(RateLimitError) as info:
                await vicket.init(deadline=5)

        assert info.value.retry_after == 30
        assert len(sandbox.requests) == 1


class TestWhatCounts:
    """Which failed attempts spend a slot of the budget."""

    async def test_a_request_cancelled_in_flight_counts(self) -> None:
        async with (
            Sandbox(time_scale=SCALE) as sandbox,
            client_for(
                sandbox, rate_limits={"create_ticket": RateLimit(3, 60.0)}
            ) as vicket,
        ):
            sandbox.faults.delay("create_ticket", 5.0)
            task = asyncio.create_task(create(vicket, 1))
            # The answer is held back for 5 s; the ticket exists long before.
            await asyncio.sleep(0.5)
            assert len(sandbox.state.all_tickets()) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            status = (await vicket.budget_status())["create_ticket"]

        # The server created the ticket, so the slot stays spent.
        assert status.remaining == 2

    async def test_no_connection_gives_the_slot_back(self) -> None:
        vicket = VicketClient(
            api_key="vk_test_unreachable",
            base_url=f"http://127.0.0.1:{free_port()}",
            rate_limits={"create_ticket": RateLimit(3, 60.0)},
            retry=FAST,
        )
        async with vicket:
            with pytest.raises(VicketConnectionError) as info:
                await create(vicket, 1)
            status = (await vicket.budget_status())["create_ticket"]

        assert status.remaining == 3
        # Nothing reached a server, so the write was tried again.
        assert "gave up after 4 attempts" in "".join(info.value.__notes__)


class TestFaults:
    async def test_dropped_read_is_retried(self) -> None:
        async with Sandbox() as sandbox, client_for(sandbox) as vicket:
            # aiohttp itself retries a GET once on a dropped connection.
            sandbox.faults.drop_connection("init", times=2)
            page = await vicket.init()

        assert page.templates
        assert len(sandbox.requests) == 3

    async def test_dropped_write_is_not_sent_twice(self) -> None:
        async with Sandbox() as sandbox, client_for(sandbox) as vicket:
            sandbox.faults.drop_connection("create_ticket")
            with pytest.raises(VicketConnectionError) as info:
                await create(vicket, 1)

        assert len(sandbox.requests) == 1
        assert "may have arrived" in "".join(info.value.__notes__)

    async def test_unprocessed_write_is_retried(self) -> None:
        async with Sandbox() as sandbox, client_for(sandbox) as vicket:
            sandbox.faults.error("create_ticket", status=503, times=2)
            await create(vicket, 1)

        assert statuses(sandbox, "create_ticket") == [503, 503, 201]
        assert len(sandbox.state.all_tickets()) == 1

    async def test_gateway_error_on_write_is_not_retried(self) -> None:
        async with Sandbox() as sandbox, client_for(sandbox) as vicket:
            sandbox.faults.html_error("create_ticket", status=502)
            with pytest.raises(Exception, match="502"):
                await create(vicket, 1)

        assert statuses(sandbox, "create_ticket") == [502]

    async def test_upload_is_resent_whole(self, tmp_path: Path) -> None:
        content = bytes(range(256)) * 8192
        path = tmp_path / "shot.png"
        path.write_bytes(content)
        async with Sandbox() as sandbox, client_for(sandbox) as vicket:
            sandbox.faults.error("create_ticket", status=503, times=1)
            await create(vicket, 1, q_screenshot=path)

        (ticket,) = sandbox.state.all_tickets()
        (stored,) = [a for x in ticket.answers for a in x.attachments]
        assert stored.size == len(content)
        assert stored.sha256 == hashlib.sha256(content).hexdigest()

    async def test_spent_stream_is_not_resent(self) -> None:
        async def stream() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"x" * 65536

        upload = FileUpload(stream(), filename="s.bin")
        async with Sandbox() as sandbox, client_for(sandbox) as vicket:
            sandbox.faults.error("create_ticket", status=503, times=1)
            with pytest.raises(ServerError) as info:
                await create(vicket, 1, q_screenshot=upload)

        assert statuses(sandbox, "create_ticket") == [503]
        assert "cannot be read again" in "".join(info.value.__notes__)
