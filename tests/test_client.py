"""The client and its transport, against aioresponses (no network)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import vicket_async
from vicket_async import (
    AnswerValidationError,
    AuthenticationError,
    ClientStateError,
    ConfigurationError,
    QuestionType,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TicketLinkExpiredError,
    Timeouts,
    UnexpectedResponseError,
    VicketClient,
    VicketConnectionError,
    VicketError,
    VicketTimeoutError,
)
from vicket_async._protocol.endpoints import Endpoint
from vicket_async._transport import Transport
from vicket_async.exceptions import UnsafeRedirectError

from . import spec_examples
from .conftest import API, API_KEY, BASE_URL

TOKEN = "tok_9f8e7d6c5b4a"


def body(text: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(text)
    return document


@pytest.fixture
async def client() -> Any:
    # One attempt: these tests map single answers; retries have their own.
    async with VicketClient(
        api_key=API_KEY, base_url=BASE_URL, retry=RetryPolicy(attempts=1)
    ) as vicket:
        yield vicket


class TestConstruction:
    def test_missing_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("VICKET_API_KEY", raising=False)
        with pytest.raises(ConfigurationError, match="VICKET_API_KEY"):
            VicketClient()

    def test_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("VICKET_API_KEY", API_KEY)
        monkeypatch.setenv("VICKET_BASE_URL", "http://127.0.0.1:9/")

        assert VicketClient().base_url == "http://127.0.0.1:9"
        monkeypatch.delenv("VICKET_BASE_URL")
        assert VicketClient().base_url == "https://api.vicket.app"

    def test_plain_http_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="allow_insecure_http"):
            VicketClient(api_key=API_KEY, base_url="http://api.example.com")

        opted_in = VicketClient(
            api_key=API_KEY,
            base_url="http://api.example.com",
            allow_insecure_http=True,
        )
        assert opted_in.base_url == "http://api.example.com"

    def test_key_is_not_in_repr(self) -> None:
        vicket = VicketClient(api_key=API_KEY, base_url=BASE_URL)

        assert API_KEY not in repr(vicket)
        assert API_KEY not in repr(vars(vicket))
        assert "api.vicket.app" in repr(vicket)

    def test_public_names(self) -> None:
        assert "VicketClient" in vicket_async.__all__
        for name in vicket_async.__all__:
            assert hasattr(vicket_async, name)
        assert VicketClient.__module__ == "vicket_async"
        assert QuestionType.__module__ == "vicket_async"
        assert VicketError.__module__ == "vicket_async.exceptions"


class TestEndpoints:
    async def test_init(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(f"{API}/init", body=spec_examples.INIT)

        page = await client.init()

        assert page.templates[0].name == "Bug Report"
        (call,) = mock_api.requests[("GET", _url(f"{API}/init"))]
        assert call.kwargs["headers"]["X-Api-Key"] == API_KEY
        assert call.kwargs["headers"]["Accept"] == "application/json"

    async def test_create_ticket_json(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.post(
            f"{API}/tickets", status=201, body=spec_examples.TICKET_CREATED
        )

        created = await client.create_ticket(
            email="ada@example.com",
            title="Cannot log in",
            template="tpl_1",
            answers={
                "q_1": "I see a blank page",
                "q_when": dt.date(2026, 3, 8),
            },
        )

        assert created == vicket_async.TicketCreated()
        (call,) = mock_api.requests[("POST", _url(f"{API}/tickets"))]
        assert json.loads(call.kwargs["data"]) == {
            "email": "ada@example.com",
            "title": "Cannot log in",
            "templateId": "tpl_1",
            "answers": {"q_1": "I see a blank page", "q_when": "2026-03-08"},
        }
        assert call.kwargs["headers"]["Content-Type"] == "application/json"

    async def test_template_from_init_is_used_to_check(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(f"{API}/init", body=spec_examples.INIT)
        await client.init()

        with pytest.raises(AnswerValidationError) as info:
            await client.create_ticket(
                email="ada@example.com",
                title="t",
                template="tpl_...",
                answers={},
            )

        assert "q_... (Describe the issue): is required" in str(info.value)
        assert ("POST", _url(f"{API}/tickets")) not in mock_api.requests

    async def test_get_ticket(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(f"{API}/ticket?token={TOKEN}", body=spec_examples.TICKET)

        ticket = await client.get_ticket(TOKEN)

        assert ticket.id == "tick_..."
        assert ticket.messages[0].content == "<p>I see a blank page</p>"

    async def test_reply(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.post(
            f"{API}/ticket/messages?token={TOKEN}",
            status=201,
            body=spec_examples.MESSAGE,
        )

        message = await client.reply(TOKEN, "Thanks")

        assert message.content == "Thanks, I will try clearing my cache."
        url = _url(f"{API}/ticket/messages?token={TOKEN}")
        (call,) = mock_api.requests[("POST", url)]
        assert json.loads(call.kwargs["data"]) == {"content": "Thanks"}

    async def test_article(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(
            f"{API}/articles/getting-started", body=spec_examples.ARTICLE
        )

        article = await client.get_article("getting-started")

        assert article.title == "Getting Started"

    async def test_with_response(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(
            f"{API}/init",
            body=spec_examples.INIT,
            headers={"X-RateLimit-Remaining": "29"},
        )

        response = await client.with_response.init()

        assert response.status == 200
        assert response.headers["X-RateLimit-Remaining"] == "29"
        assert response.data.website.name == "My App"
        assert response.elapsed >= 0

    async def test_local_checks(self, client: VicketClient) -> None:
        with pytest.raises(AnswerValidationError, match="token is empty"):
            await client.get_ticket("")
        with pytest.raises(AnswerValidationError, match="slug is empty"):
            await client.get_article(" ")
        with pytest.raises(AnswerValidationError) as info:
            await client.reply("", "")

        assert len(info.value.problems) == 2


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "code", "cls"),
        [
            (401, "invalid-api-key", AuthenticationError),
            (410, "ticket-link-expired", TicketLinkExpiredError),
            (429, "rate-limit-exceeded", RateLimitError),
            (500, "internal", ServerError),
        ],
    )
    async def test_envelope(
        self,
        mock_api: aioresponses,
        client: VicketClient,
        status: int,
        code: str,
        cls: type[Exception],
    ) -> None:
        mock_api.get(
            f"{API}/ticket?token={TOKEN}",
            status=status,
            payload={"success": False, "error": "No.", "error_code": code},
        )

        with pytest.raises(cls) as info:
            await client.get_ticket(TOKEN)

        assert isinstance(info.value, vicket_async.APIError)
        assert info.value.status == status
        assert info.value.error_code == code
        assert str(info.value).startswith(f"GET /ticket: {status} {code}")
        assert TOKEN not in str(info.value)

    async def test_html_error_page(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(
            f"{API}/init",
            status=502,
            body="<html><title>502 Bad Gateway</title></html>",
            content_type="text/html",
        )

        with pytest.raises(UnexpectedResponseError) as info:
            await client.init()

        assert info.value.status == 502
        assert "a text/html body" in str(info.value)
        assert "502 Bad Gateway" in info.value.body_excerpt

    async def test_wrong_shape(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(
            f"{API}/ticket?token={TOKEN}",
            payload={"success": True, "data": {"title": "no id"}},
        )

        with pytest.raises(UnexpectedResponseError) as info:
            await client.get_ticket(TOKEN)

        assert "does not fit Ticket" in str(info.value)
        assert "$.id" in str(info.value)
        assert info.value.__cause__ is None

    async def test_strict_mode(self, mock_api: aioresponses) -> None:
        mock_api.get(
            f"{API}/init",
            payload={"success": True, "data": {"new_field": 1}},
        )
        async with VicketClient(
            api_key=API_KEY, base_url=BASE_URL, strict=True
        ) as vicket:
            with pytest.raises(UnexpectedResponseError, match="new_field"):
                await vicket.init()

    async def test_connection_error(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        cause = aiohttp.ClientConnectorError(
            aiohttp.client_reqrep.ConnectionKey(
                "api.vicket.app", 443, True, True, None, None, None
            ),
            OSError(111, "Connection refused"),
        )
        mock_api.get(f"{API}/init", exception=cause)

        with pytest.raises(VicketConnectionError) as info:
            await client.init()

        assert info.value.__cause__ is cause
        assert "could not connect to api.vicket.app:443" in str(info.value)

    async def test_timeout(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(f"{API}/init", exception=TimeoutError())

        with pytest.raises(VicketTimeoutError) as info:
            await client.init()

        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value.__cause__, TimeoutError)

    async def test_dropped_connection(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(
            f"{API}/ticket?token={TOKEN}",
            exception=aiohttp.ServerDisconnectedError(),
        )

        with pytest.raises(VicketConnectionError, match="connection was lost"):
            await client.get_ticket(TOKEN)

    async def test_everything_is_a_vicket_error(
        self, mock_api: aioresponses, client: VicketClient
    ) -> None:
        mock_api.get(f"{API}/init", exception=aiohttp.ClientError("odd"))

        with pytest.raises(VicketError, match="odd"):
            await client.init()


class TestLifecycle:
    async def test_aclose_twice_and_use_after_close(self) -> None:
        vicket = VicketClient(api_key=API_KEY, base_url=BASE_URL)
        await vicket.aclose()
        await vicket.aclose()

        with pytest.raises(ClientStateError, match="closed"):
            await vicket.init()

    async def test_lent_session_is_not_closed(
        self, mock_api: aioresponses
    ) -> None:
        mock_api.get(f"{API}/init", body=spec_examples.INIT)
        async with aiohttp.ClientSession() as session:
            async with VicketClient(
                api_key=API_KEY, base_url=BASE_URL, session=session
            ) as vicket:
                await vicket.init()

            assert not session.closed

    async def test_second_event_loop_is_refused(
        self, mock_api: aioresponses
    ) -> None:
        mock_api.get(f"{API}/init", body=spec_examples.INIT, repeat=True)
        vicket = VicketClient(api_key=API_KEY, base_url=BASE_URL)
        await vicket.init()
        errors: list[BaseException] = []

        def other_loop() -> None:
            try:
                asyncio.run(vicket.init())
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=other_loop)
        thread.start()
        thread.join()
        await vicket.aclose()

        assert len(errors) == 1
        assert isinstance(errors[0], ClientStateError)
        assert "one client per event loop" in str(errors[0])

    def test_timeouts(self) -> None:
        timeout = Timeouts(connect=1, read=2).to_aiohttp()

        assert (timeout.connect, timeout.sock_read, timeout.total) == (
            1,
            2,
            None,
        )
        assert VicketClient(api_key=API_KEY, timeout=5)._transport


class TestSecrets:
    async def test_key_and_token_stay_out_of_logs(
        self,
        mock_api: aioresponses,
        client: VicketClient,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="vicket_async")
        mock_api.get(
            f"{API}/ticket?token={TOKEN}",
            status=401,
            payload={
                "success": False,
                "error": f"bad token {TOKEN}",
                "error_code": "invalid-token",
            },
        )

        with pytest.raises(AuthenticationError) as info:
            await client.get_ticket(TOKEN)

        assert TOKEN not in str(info.value)
        assert "[redacted]" in str(info.value)
        assert API_KEY not in caplog.text
        assert TOKEN not in caplog.text


def _url(text: str) -> URL:
    return URL(text)


class TestRedirectRule:
    """The transport's rule for redirects, without a TLS server."""

    def follow(self, base: str, location: str) -> tuple[str, str]:
        transport = Transport(
            base_url=base,
            api_key=API_KEY,
            session=None,
            timeouts=Timeouts(),
            user_agent="test",
        )
        return transport._follow(
            Endpoint.INIT, "GET", 302, URL(f"{base}/a"), location
        )

    def test_https_to_http_is_refused(self) -> None:
        with pytest.raises(UnsafeRedirectError, match="https to plain http"):
            self.follow("https://api.vicket.app", "http://api.vicket.app/b")

    def test_another_origin_is_refused(self) -> None:
        with pytest.raises(UnsafeRedirectError, match="another origin"):
            self.follow("https://api.vicket.app", "https://evil.example/b")
        with pytest.raises(UnsafeRedirectError, match="another origin"):
            self.follow(
                "https://api.vicket.app", "https://api.vicket.app:8443"
            )

    def test_same_origin_is_followed(self) -> None:
        url, method = self.follow("https://api.vicket.app", "/moved")

        assert url == "https://api.vicket.app/moved"
        assert method == "GET"
