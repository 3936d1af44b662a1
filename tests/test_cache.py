"""The TTL cache, on its own with a hand-driven clock and inside the client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from vicket_async import (
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    VicketClient,
    VicketConnectionError,
    VicketTimeoutError,
)
from vicket_async._cache import FAILURE_BACKOFF, TTLCache, is_transient
from vicket_async.exceptions import AuthenticationError
from vicket_async.sandbox import Sandbox


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Source:
    """A fetch function that counts its calls and answers as scripted."""

    def __init__(self) -> None:
        self.calls = 0
        self.value = "v1"
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.cancelled = 0

    def __call__(self) -> Awaitable[str]:
        return self._fetch()

    async def _fetch(self) -> str:
        self.calls += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return self.value


def server_error() -> ServerError:
    return ServerError(
        "down", endpoint=None, status=503, error_code="service-unavailable"
    )


def not_found() -> NotFoundError:
    return NotFoundError(
        "gone", endpoint=None, status=404, error_code="article-not-found"
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source() -> Source:
    return Source()


def make_cache(
    clock: Clock, *, ttl: float = 60.0, stale_for: float = 300.0, size: int = 8
) -> TTLCache[str, str]:
    return TTLCache(
        ttl=ttl, stale_for=stale_for, max_entries=size, clock=clock
    )


async def settle() -> None:
    """Let every ready task run until the loop has nothing left to do."""
    for _ in range(5):
        await asyncio.sleep(0)


class TestHitsAndExpiry:
    async def test_second_read_is_served_from_the_cache(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)

        assert await cache.get("k", source) == "v1"
        source.value = "v2"
        assert await cache.get("k", source) == "v1"
        assert source.calls == 1

    async def test_value_expires_after_the_ttl(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock, ttl=60)
        await cache.get("k", source)
        source.value = "v2"

        clock.advance(59.9)
        assert await cache.get("k", source) == "v1"
        clock.advance(0.1)
        assert await cache.get("k", source) == "v2"
        assert source.calls == 2

    async def test_keys_are_cached_apart(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await cache.get("a", source)
        source.value = "v2"

        assert await cache.get("b", source) == "v2"
        assert await cache.get("a", source) == "v1"

    async def test_least_recently_used_key_goes_first(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock, size=2)
        await cache.get("a", source)
        await cache.get("b", source)
        await cache.get("a", source)
        await cache.get("c", source)

        assert "a" in cache
        assert "b" not in cache
        assert len(cache) == 2

    async def test_fresh_skips_the_cached_value(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await cache.get("k", source)
        source.value = "v2"

        assert await cache.get("k", source, fresh=True) == "v2"
        assert await cache.get("k", source) == "v2"
        assert source.calls == 2

    async def test_clear_forgets_everything(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await cache.get("k", source)
        cache.clear()
        source.value = "v2"

        assert await cache.get("k", source) == "v2"
        assert source.calls == 2

    async def test_fetch_under_way_during_clear_does_not_store(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.gate = asyncio.Event()
        waiter = asyncio.create_task(cache.get("k", source))
        await settle()
        cache.clear()
        source.gate.set()

        assert await waiter == "v1"
        assert "k" not in cache

    @pytest.mark.parametrize(
        ("ttl", "stale_for", "size"), [(0, 0, 1), (-1, 0, 1), (1, -1, 1)]
    )
    def test_bad_settings_are_refused(
        self, ttl: float, stale_for: float, size: int
    ) -> None:
        with pytest.raises(ConfigurationError):
            TTLCache[str, str](ttl=ttl, stale_for=stale_for, max_entries=size)

    def test_size_must_be_positive(self) -> None:
        with pytest.raises(ConfigurationError, match="max_entries"):
            TTLCache[str, str](ttl=1, max_entries=0)


class TestCoalescing:
    async def test_concurrent_misses_share_one_fetch(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.gate = asyncio.Event()
        waiters = [
            asyncio.create_task(cache.get("k", source)) for _ in range(100)
        ]
        await settle()
        source.gate.set()

        assert await asyncio.gather(*waiters) == ["v1"] * 100
        assert source.calls == 1

    async def test_shared_failure_reaches_every_caller(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.gate = asyncio.Event()
        source.error = server_error()
        waiters = [
            asyncio.create_task(cache.get("k", source)) for _ in range(3)
        ]
        await settle()
        source.gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)

        assert all(isinstance(r, ServerError) for r in results)
        assert source.calls == 1

    async def test_errors_are_not_cached(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.error = server_error()
        with pytest.raises(ServerError):
            await cache.get("k", source)
        source.error = None

        assert await cache.get("k", source) == "v1"
        assert source.calls == 2


class TestCancellation:
    async def test_one_cancelled_caller_leaves_the_fetch_running(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.gate = asyncio.Event()
        first = asyncio.create_task(cache.get("k", source))
        second = asyncio.create_task(cache.get("k", source))
        await settle()
        first.cancel()
        await settle()
        source.gate.set()

        assert await second == "v1"
        assert first.cancelled()
        assert source.cancelled == 0
        assert source.calls == 1
        assert "k" in cache

    async def test_fetch_is_cancelled_when_nobody_waits(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.gate = asyncio.Event()
        waiter = asyncio.create_task(cache.get("k", source))
        await settle()
        waiter.cancel()
        await settle()

        assert source.cancelled == 1
        source.gate.set()
        source.value = "v2"
        assert await cache.get("k", source) == "v2"

    async def test_caller_arriving_after_abandon_starts_anew(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.gate = asyncio.Event()
        waiter = asyncio.create_task(cache.get("k", source))
        await settle()
        waiter.cancel()
        # No settle here: the abandoned fetch is still being cancelled.
        newcomer = asyncio.create_task(cache.get("k", source))
        await settle()
        source.gate.set()

        assert await newcomer == "v1"
        assert source.calls == 2

    async def test_deadline_bounds_one_caller_only(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        source.gate = asyncio.Event()
        patient = asyncio.create_task(cache.get("k", source))
        await settle()

        with pytest.raises(VicketTimeoutError, match="no answer within"):
            await cache.get("k", source, deadline=0.001)
        source.gate.set()
        assert await patient == "v1"
        assert source.cancelled == 0


class TestStale:
    async def prime(self, cache: TTLCache[str, str], source: Source) -> None:
        await cache.get("k", source)
        source.value = "v2"

    async def test_failed_refresh_serves_the_last_good_value(
        self,
        clock: Clock,
        source: Source,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        cache = make_cache(clock, ttl=60, stale_for=300)
        await self.prime(cache, source)
        clock.advance(61)
        source.error = server_error()

        with caplog.at_level(logging.WARNING, logger="vicket_async.cache"):
            assert await cache.get("k", source) == "v1"
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        assert "refresh failed (503)" in record.getMessage()

    async def test_stale_value_is_held_before_the_next_try(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await self.prime(cache, source)
        clock.advance(61)
        source.error = server_error()
        await cache.get("k", source)

        clock.advance(FAILURE_BACKOFF - 0.1)
        assert await cache.get("k", source) == "v1"
        assert source.calls == 2
        clock.advance(0.1)
        source.error = None
        assert await cache.get("k", source) == "v2"
        assert source.calls == 3

    async def test_rate_limit_holds_for_its_retry_after(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await self.prime(cache, source)
        clock.advance(61)
        source.error = RateLimitError(
            "slow down",
            endpoint=None,
            status=429,
            error_code="rate-limit-exceeded",
            retry_after=20,
        )

        assert await cache.get("k", source) == "v1"
        clock.advance(19)
        assert await cache.get("k", source) == "v1"
        assert source.calls == 2

    async def test_connection_failure_serves_stale(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await self.prime(cache, source)
        clock.advance(61)
        source.error = VicketConnectionError("refused")

        assert await cache.get("k", source) == "v1"

    async def test_nothing_stale_after_the_stale_window(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock, ttl=60, stale_for=300)
        await self.prime(cache, source)
        clock.advance(360)
        source.error = server_error()

        with pytest.raises(ServerError):
            await cache.get("k", source)

    async def test_zero_stale_window_serves_nothing_stale(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock, ttl=60, stale_for=0)
        await self.prime(cache, source)
        clock.advance(61)
        source.error = server_error()

        with pytest.raises(ServerError):
            await cache.get("k", source)

    @pytest.mark.parametrize(
        "error",
        [
            not_found(),
            AuthenticationError(
                "bad key",
                endpoint=None,
                status=401,
                error_code="invalid-api-key",
            ),
        ],
    )
    async def test_lasting_errors_are_raised_and_drop_the_value(
        self, clock: Clock, source: Source, error: Exception
    ) -> None:
        cache = make_cache(clock)
        await self.prime(cache, source)
        clock.advance(61)
        source.error = error

        with pytest.raises(type(error)):
            await cache.get("k", source)
        assert "k" not in cache

    async def test_fresh_read_does_not_fall_back(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await self.prime(cache, source)
        source.error = server_error()

        with pytest.raises(ServerError):
            await cache.get("k", source, fresh=True)
        assert await cache.get("k", source) == "v1"

    async def test_waiting_past_the_deadline_serves_stale(
        self, clock: Clock, source: Source
    ) -> None:
        cache = make_cache(clock)
        await self.prime(cache, source)
        clock.advance(61)
        source.gate = asyncio.Event()

        assert await cache.get("k", source, deadline=0.001) == "v1"
        source.gate.set()
        await settle()

    def test_which_errors_are_transient(self) -> None:
        assert is_transient(server_error())
        assert is_transient(VicketTimeoutError("slow"))
        assert is_transient(VicketConnectionError("refused"))
        assert not is_transient(not_found())
        assert not is_transient(ValueError("a bug"))


# The cache inside the client, against the sandbox.

Factory = Callable[..., VicketClient]


@pytest.fixture
def make_client(vicket_sandbox: Sandbox) -> Factory:
    def make(**options: object) -> VicketClient:
        return VicketClient(
            api_key=vicket_sandbox.api_key,
            base_url=vicket_sandbox.base_url,
            retry=RetryPolicy(attempts=1),
            **options,  # type: ignore[arg-type]
        )

    return make


def upstream(sandbox: Sandbox, endpoint: str) -> int:
    return len(sandbox.state.requests_for(endpoint))


class TestClientCache:
    async def test_init_is_fetched_once_per_ttl(
        self, vicket_sandbox: Sandbox, make_client: Factory
    ) -> None:
        async with make_client() as vicket:
            pages = await asyncio.gather(*(vicket.init() for _ in range(50)))
            again = await vicket.init()

        assert upstream(vicket_sandbox, "init") == 1
        assert all(page is pages[0] for page in pages)
        assert again is pages[0]

    async def test_with_response_shares_the_cache(
        self, vicket_sandbox: Sandbox, make_client: Factory
    ) -> None:
        async with make_client() as vicket:
            page = await vicket.init()
            response = await vicket.with_response.init()

        assert response.data is page
        assert response.status == 200
        assert upstream(vicket_sandbox, "init") == 1

    async def test_fresh_and_clear_ask_again(
        self, vicket_sandbox: Sandbox, make_client: Factory
    ) -> None:
        async with make_client() as vicket:
            await vicket.init()
            await vicket.init(fresh=True)
            vicket.clear_cache()
            await vicket.init()
            await vicket.get_article("getting-started")
            await vicket.get_article("getting-started", fresh=True)

        assert upstream(vicket_sandbox, "init") == 3
        assert upstream(vicket_sandbox, "article") == 2

    @pytest.mark.parametrize("ttl", [None, 0])
    async def test_cache_can_be_turned_off(
        self, vicket_sandbox: Sandbox, make_client: Factory, ttl: float | None
    ) -> None:
        async with make_client(cache_ttl=ttl) as vicket:
            await vicket.init()
            await vicket.init()
            await vicket.get_article("getting-started")
            await vicket.get_article("getting-started")
            vicket.clear_cache()

        assert upstream(vicket_sandbox, "init") == 2
        assert upstream(vicket_sandbox, "article") == 2

    async def test_articles_are_cached_by_slug(
        self, vicket_sandbox: Sandbox, make_client: Factory
    ) -> None:
        async with make_client() as vicket:
            first = await vicket.get_article("getting-started")
            await vicket.get_article("reset-password")
            again = await vicket.get_article("getting-started")

        assert again is first
        assert upstream(vicket_sandbox, "article") == 2

    async def test_missing_article_is_not_cached(
        self, vicket_sandbox: Sandbox, make_client: Factory
    ) -> None:
        async with make_client() as vicket:
            for _ in range(2):
                with pytest.raises(NotFoundError):
                    await vicket.get_article("no-such-article")

        assert upstream(vicket_sandbox, "article") == 2

    async def test_outage_serves_the_last_page(
        self,
        vicket_sandbox: Sandbox,
        make_client: Factory,
        clock: Clock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        async with make_client(cache_ttl=60, stale_for=600) as vicket:
            # The client's cache reads this clock from now on.
            assert vicket._init_cache is not None
            vicket._init_cache.clock = clock
            page = await vicket.init()
            clock.advance(120)
            vicket_sandbox.faults.error("init", 503)
            with caplog.at_level(logging.WARNING):
                assert await vicket.init() is page

        assert upstream(vicket_sandbox, "init") == 2
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert "serving the value fetched 120 s ago" in messages
        assert vicket_sandbox.api_key not in messages

    def test_negative_stale_window_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="stale_for"):
            VicketClient(api_key="k", stale_for=-1)
