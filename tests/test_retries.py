"""Retries of transient faults and the handling of 429, over aioresponses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from vicket_async import (
    Event,
    ModeChanged,
    RateLimit,
    RateLimited,
    RateLimitError,
    RetryPolicy,
    RetryScheduled,
    ServerError,
    UnexpectedResponseError,
    VicketClient,
)
from vicket_async._protocol.endpoints import Endpoint
from vicket_async._protocol.retries import decide
from vicket_async.exceptions import VicketTimeoutError

from . import spec_examples
from .conftest import API, API_KEY, BASE_URL

TOKEN = "tok_retry_5e4d"
FAST = RetryPolicy(attempts=4, backoff=0.001, max_backoff=0.002)
ENVELOPE_503 = {"success": False, "error": "busy", "error_code": "down"}


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
async def vicket(events: list[Event]) -> AsyncIterator[VicketClient]:
    async with VicketClient(
        api_key=API_KEY, base_url=BASE_URL, retry=FAST, on_event=events.append
    ) as client:
        yield client


def calls(mock: aioresponses, method: str, url: str) -> int:
    return len(mock.requests.get((method, URL(url)), []))


def create(vicket: VicketClient, **extra: Any) -> Any:
    return vicket.create_ticket(
        email="a@example.com", title="t", template="tpl", **extra
    )


class TestReads:
    async def test_gateway_errors_are_retried(
        self, mock_api: aioresponses, vicket: VicketClient, events: list[Event]
    ) -> None:
        url = f"{API}/init"
        mock_api.get(url, status=503, payload=ENVELOPE_503)
        mock_api.get(url, status=502, body="<html>bad gateway</html>")
        mock_api.get(url, body=spec_examples.INIT)

        page = await vicket.init()

        assert page.website.name == "My App"
        assert calls(mock_api, "GET", url) == 3
        retries = [e for e in events if isinstance(e, RetryScheduled)]
        assert [(e.attempt, e.reason) for e in retries] == [
            (1, "503"),
            (2, "502"),
        ]

    async def test_connection_failures_are_retried(
        self, mock_api: aioresponses, vicket: VicketClient
    ) -> None:
        url = f"{API}/ticket?token={TOKEN}"
        mock_api.get(url, exception=aiohttp.ServerDisconnectedError())
        mock_api.get(url, exception=TimeoutError())
        mock_api.get(url, body=spec_examples.TICKET)

        ticket = await vicket.get_ticket(TOKEN)

        assert ticket.id == "tick_..."

    async def test_attempts_are_bounded(
        self, mock_api: aioresponses, vicket: VicketClient
    ) -> None:
        url = f"{API}/init"
        mock_api.get(url, status=504, payload=ENVELOPE_503, repeat=True)

        with pytest.raises(ServerError) as info:
            await vicket.init()

        assert calls(mock_api, "GET", url) == 4
        assert "gave up after 4 attempts" in "".join(info.value.__notes__)

    async def test_client_errors_are_not_retried(
        self, mock_api: aioresponses, vicket: VicketClient
    ) -> None:
        url = f"{API}/init"
        mock_api.get(url, status=500, payload=ENVELOPE_503, repeat=True)

        with pytest.raises(ServerError):
            await vicket.init()

        assert calls(mock_api, "GET", url) == 1

    async def test_retry_after_on_503(self) -> None:
        error = ServerError(
            "busy",
            endpoint=Endpoint.INIT,
            status=503,
            error_code="down",
            headers={"Retry-After": "3"},
        )
        decision = decide(
            RetryPolicy(),
            Endpoint.INIT,
            error,
            attempt=1,
            elapsed=0,
            reached_server=True,
        )

        assert decision.delay == 3.0

    def test_total_time_is_bounded(self) -> None:
        error = VicketTimeoutError("slow", endpoint=Endpoint.INIT)
        decision = decide(
            RetryPolicy(total=1.0, backoff=4.0),
            Endpoint.INIT,
            error,
            attempt=1,
            elapsed=0,
            reached_server=True,
        )

        assert decision.delay is None
        assert "would pass 1.0s" in decision.reason

    def test_backoff_grows_with_jitter(self) -> None:
        policy = RetryPolicy(backoff=1.0, max_backoff=5.0)

        assert policy.delay(1, lambda: 0.0) == 0.5
        assert policy.delay(1, lambda: 1.0) == 1.0
        assert policy.delay(3, lambda: 1.0) == 4.0
        assert policy.delay(9, lambda: 1.0) == 5.0


class TestWrites:
    async def test_not_retried_when_it_may_have_arrived(
        self, mock_api: aioresponses, vicket: VicketClient
    ) -> None:
        url = f"{API}/tickets"
        mock_api.post(url, status=502, body="bad gateway", repeat=True)

        with pytest.raises(UnexpectedResponseError) as info:
            await create(vicket)

        assert calls(mock_api, "POST", url) == 1
        assert "not retried, it may have arrived" in "".join(
            info.value.__notes__
        )

    async def test_retried_when_it_never_went_out(
        self, mock_api: aioresponses, vicket: VicketClient
    ) -> None:
        url = f"{API}/tickets"
        refused = aiohttp.ClientConnectorError(
            aiohttp.client_reqrep.ConnectionKey(
                "api.vicket.app", 443, True, True, None, None, None
            ),
            OSError(111, "Connection refused"),
        )
        mock_api.post(url, exception=refused)
        mock_api.post(url, status=503, payload=ENVELOPE_503)
        mock_api.post(url, status=201, body=spec_examples.TICKET_CREATED)

        created = await create(vicket)

        assert not created.email_limit_reached
        assert calls(mock_api, "POST", url) == 3

    async def test_opt_in_retries_unsafe_writes(
        self, mock_api: aioresponses
    ) -> None:
        url = f"{API}/ticket/messages?token={TOKEN}"
        mock_api.post(url, exception=aiohttp.ServerDisconnectedError())
        mock_api.post(url, status=201, body=spec_examples.MESSAGE)
        policy = RetryPolicy(backoff=0.001, retry_unsafe=True)

        async with VicketClient(
            api_key=API_KEY, base_url=BASE_URL, retry=policy
        ) as vicket:
            message = await vicket.reply(TOKEN, "hi")

        assert message.id == "msg_..."


class TestRateLimited:
    async def test_429_pauses_and_retries(
        self,
        mock_api: aioresponses,
        vicket: VicketClient,
        events: list[Event],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        url = f"{API}/init"
        mock_api.get(
            url,
            status=429,
            payload={"success": False, "error": "slow", "error_code": "rl"},
            headers={"Retry-After": "0.05"},
        )
        mock_api.get(url, body=spec_examples.INIT)

        with caplog.at_level(logging.WARNING, logger="vicket_async"):
            await vicket.init()

        assert "answered 429" in caplog.text
        kinds = [type(e) for e in events]
        assert RateLimited in kinds
        assert ModeChanged in kinds
        assert RetryScheduled in kinds
        status = (await vicket.budget_status())["init"]
        assert status.mode == "pace"

    async def test_long_retry_after_beyond_deadline_fails_at_once(
        self, mock_api: aioresponses, vicket: VicketClient
    ) -> None:
        url = f"{API}/init"
        mock_api.get(
            url,
            status=429,
            payload={"success": False, "error": "slow", "error_code": "rl"},
            headers={"Retry-After": "30"},
            repeat=True,
        )

        with pytest.raises(RateLimitError) as info:
            await vicket.init(deadline=2.0)

        assert info.value.retry_after == 30.0
        assert calls(mock_api, "GET", url) == 1

    async def test_429_without_budget_still_waits(
        self, mock_api: aioresponses
    ) -> None:
        url = f"{API}/articles/a"
        mock_api.get(
            url,
            status=429,
            payload={"success": False, "error": "slow", "error_code": "rl"},
        )
        mock_api.get(url, body=spec_examples.ARTICLE)

        async with VicketClient(
            api_key=API_KEY,
            base_url=BASE_URL,
            retry=FAST,
            rate_limits={"get_article": None},
        ) as vicket:
            article = await vicket.get_article("a")

        assert article.slug == "getting-started"
        assert calls(mock_api, "GET", url) == 2

    async def test_local_budget_deadline(self) -> None:
        async with VicketClient(
            api_key=API_KEY,
            base_url="http://127.0.0.1:9",
            rate_limits={"init": RateLimit(1, 60.0)},
        ) as vicket:
            budget = vicket._budget(Endpoint.INIT)
            assert budget is not None
            slot = await budget.acquire()
            await slot.mark_sent()

            with pytest.raises(RateLimitError) as info:
                await vicket.init(deadline=0.5)

        assert info.value.error_code == "local-budget-exhausted"
        assert info.value.retry_after is not None
        assert info.value.retry_after > 59
