"""The client against the sandbox, over real loopback HTTP."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from vicket_async import (
    AnswerValidationError,
    AuthenticationError,
    AuthorType,
    BadRequestError,
    FileUpload,
    NotFoundError,
    QuestionType,
    SupportPage,
    TicketLinkExpiredError,
    UnsafeRedirectError,
    UploadError,
    VicketClient,
)
from vicket_async.sandbox import Sandbox, SandboxProcess

REPORTER = "grace@example.com"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def vicket(sandbox: Sandbox) -> AsyncIterator[VicketClient]:
    async with VicketClient(
        api_key=sandbox.api_key, base_url=sandbox.base_url
    ) as client:
        yield client


def bug_answers(screenshot: Any) -> dict[str, Any]:
    return {
        "q_description": "Export does nothing",
        "q_browser": "firefox",
        "q_reproducible": True,
        "q_first_seen": dt.date(2026, 3, 1),
        "q_screenshot": screenshot,
    }


async def open_ticket(
    vicket: VicketClient, sandbox: Sandbox, screenshot: Any
) -> str:
    page = await vicket.init()
    await vicket.create_ticket(
        email=REPORTER,
        title="Export broken",
        template=page.template("tpl_bug"),
        answers=bug_answers(screenshot),
    )
    token = sandbox.state.latest_token(REPORTER)
    assert token is not None

    return token


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TestEndpoints:
    async def test_init_covers_every_question_type(
        self, vicket: VicketClient
    ) -> None:
        page = await vicket.init()

        kinds = {q.type for t in page.templates for q in t.questions}
        assert kinds == set(QuestionType)
        assert page.website.name == "Acme Support"
        assert page.articles
        assert page.faqs

    async def test_ticket_thread_and_reply(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        token = await open_ticket(vicket, sandbox, FileUpload(b"png"))

        ticket = await vicket.get_ticket(token)
        assert ticket.title == "Export broken"
        assert ticket.status == "Open"
        labels = {a.question_label: a for a in ticket.answers}
        assert labels["Browser"].answer == "firefox"
        assert labels["Screenshot"].attachments

        message = await vicket.reply(token, "Any news?")
        assert message.author_type is AuthorType.REPORTER
        assert message.content == "Any news?"
        assert message.created_at is not None

        sandbox.state.agent_reply(ticket.id, "Fixed in 2.1")
        thread = await vicket.get_ticket(token)
        assert [m.author_type for m in thread.messages] == [
            AuthorType.REPORTER,
            AuthorType.REPORTER,
            AuthorType.AGENT,
        ]

    async def test_article(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        page = await vicket.init()
        slug = page.articles[0].slug

        article = await vicket.get_article(slug)

        assert article.slug == slug
        assert article.content.startswith("<")

    async def test_integration_shapes(self) -> None:
        async with (
            Sandbox(shape="integration") as sandbox,
            VicketClient(
                api_key=sandbox.api_key, base_url=sandbox.base_url
            ) as vicket,
        ):
            token = await open_ticket(vicket, sandbox, FileUpload(b"x"))
            page = await vicket.init()
            ticket = await vicket.get_ticket(token)

        select = page.template("tpl_bug").question("q_browser")
        assert select.options[0].label != select.options[0].value
        assert ticket.title == "Export broken"
        assert ticket.token == token
        assert ticket.messages[0].author_name

    async def test_sparse_init(self) -> None:
        async with (
            Sandbox(shape="integration", sparse_init=True) as sandbox,
            VicketClient(
                api_key=sandbox.api_key, base_url=sandbox.base_url
            ) as vicket,
        ):
            page = await vicket.init()

        assert page.website.name is None
        assert page.articles == ()
        assert isinstance(page, SupportPage)


class TestErrors:
    async def test_unknown_key(self, sandbox: Sandbox) -> None:
        async with VicketClient(
            api_key="vk_wrong", base_url=sandbox.base_url
        ) as vicket:
            with pytest.raises(AuthenticationError) as info:
                await vicket.init()

        assert info.value.status == 401
        assert info.value.error_code == "invalid-api-key"
        assert "vk_wrong" not in str(info.value)

    async def test_server_side_validation(self, vicket: VicketClient) -> None:
        # Without init, the client does not know the template and cannot
        # check the answers: the server's 400 comes back as it is.
        with pytest.raises(BadRequestError) as info:
            await vicket.create_ticket(
                email=REPORTER,
                title="t",
                template="tpl_bug",
                answers={"q_browser": "lynx"},
            )

        assert info.value.status == 400
        assert info.value.error_code
        assert info.value.server_message

    async def test_unknown_article_and_token(
        self, vicket: VicketClient
    ) -> None:
        with pytest.raises(NotFoundError) as missing:
            await vicket.get_article("no-such-article")
        with pytest.raises(AuthenticationError) as bad_token:
            await vicket.get_ticket("not-a-real-token")

        assert missing.value.error_code == "article-not-found"
        assert bad_token.value.status == 401
        assert "not-a-real-token" not in str(bad_token.value)

    async def test_expired_link(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        token = await open_ticket(vicket, sandbox, FileUpload(b"x"))
        sandbox.state.expire_token(token)

        with pytest.raises(TicketLinkExpiredError) as info:
            await vicket.get_ticket(token)
        with pytest.raises(TicketLinkExpiredError):
            await vicket.reply(token, "hello?")

        assert info.value.status == 410
        assert "new link was emailed" in str(info.value)
        assert token not in str(info.value)
        fresh = sandbox.state.latest_token(REPORTER)
        assert fresh is not None
        assert fresh != token
        assert (await vicket.get_ticket(fresh)).title == "Export broken"

    async def test_local_check_sends_nothing(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        page = await vicket.init()
        sandbox.clear_requests()

        with pytest.raises(AnswerValidationError) as info:
            await vicket.create_ticket(
                email="nope",
                title="",
                template=page.template("tpl_bug"),
                answers={"q_browser": "lynx", "q_extra": "?"},
            )

        assert len(info.value.problems) == 5
        assert sandbox.requests == []


class TestUploads:
    @pytest.mark.parametrize("kind", ["path", "bytes", "file", "stream"])
    async def test_every_source(
        self,
        vicket: VicketClient,
        sandbox: Sandbox,
        tmp_path: Path,
        kind: str,
    ) -> None:
        content = bytes(range(256)) * 4096 + b"tail"
        path = tmp_path / "shot.png"
        path.write_bytes(content)

        async def stream() -> AsyncIterator[bytes]:
            for start in range(0, len(content), 100_000):
                yield content[start : start + 100_000]

        sources: dict[str, Any] = {
            "path": path,
            "bytes": FileUpload(content, filename="shot.png"),
            "file": FileUpload(io.BytesIO(content), filename="shot.png"),
            "stream": FileUpload(stream(), filename="shot.png"),
        }
        await open_ticket(vicket, sandbox, sources[kind])

        (ticket,) = sandbox.state.tickets_for(REPORTER)
        (answer,) = [a for a in ticket.answers if a.attachments]
        (stored,) = answer.attachments
        assert stored.original_filename == "shot.png"
        assert stored.mime_type == "image/png"
        assert stored.size == len(content)
        assert stored.sha256 == sha256(content)

    async def test_reply_attachments(
        self, vicket: VicketClient, sandbox: Sandbox, tmp_path: Path
    ) -> None:
        token = await open_ticket(vicket, sandbox, FileUpload(b"x"))
        log = tmp_path / "console.txt"
        log.write_text("line\n" * 1000)

        message = await vicket.reply(
            token,
            "logs attached",
            attachments=[log, FileUpload(b"{}", filename="state.json")],
        )

        names = sorted(a.original_filename or "" for a in message.attachments)
        thread = await vicket.get_ticket(token)
        stored = thread.messages[-1].attachments
        assert sorted(a.original_filename or "" for a in stored) == [
            "console.txt",
            "state.json",
        ]
        assert names in ([], ["console.txt", "state.json"])
        assert {a.mime_type for a in stored} == {
            "text/plain",
            "application/json",
        }

    async def test_callers_file_stays_open_and_rewinds(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        file = io.BytesIO(b"header" + b"payload")
        file.seek(6)
        upload = FileUpload(file, filename="p.bin")
        token = await open_ticket(vicket, sandbox, upload)

        await vicket.reply(token, "again", attachments=[upload])

        assert not file.closed
        (ticket,) = sandbox.state.tickets_for(REPORTER)
        stored = ticket.messages[-1].attachments[0]
        assert stored.sha256 == sha256(b"payload")

    async def test_a_stream_is_sent_once(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        async def stream() -> AsyncIterator[bytes]:
            yield b"once"

        upload = FileUpload(stream(), filename="once.txt")
        token = await open_ticket(vicket, sandbox, upload)
        sandbox.clear_requests()

        with pytest.raises(AnswerValidationError, match="cannot be rewound"):
            await vicket.reply(token, "again", attachments=[upload])
        assert sandbox.requests == []

    async def test_large_stream(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        chunk = b"v" * (1 << 20)
        digest = hashlib.sha256()

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(48):
                digest.update(chunk)
                yield chunk

        token = await open_ticket(vicket, sandbox, FileUpload(b"x"))
        await vicket.reply(
            token, "big", attachments=[FileUpload(stream(), filename="b")]
        )

        (ticket,) = sandbox.state.tickets_for(REPORTER)
        stored = ticket.messages[-1].attachments[0]
        assert stored.size == 48 << 20
        assert stored.sha256 == digest.hexdigest()

    async def test_unreadable_path(self, tmp_path: Path) -> None:
        upload = FileUpload(tmp_path / "gone.bin")

        with pytest.raises(UploadError, match="cannot read"):
            async for _ in upload.chunks():
                pass


class TestSecurity:
    async def test_slug_cannot_reach_another_path(
        self, vicket: VicketClient, sandbox: Sandbox
    ) -> None:
        for slug in ("../init", "..", "x?token=y", "%2E%2E"):
            with pytest.raises(NotFoundError):
                await vicket.get_article(slug)

        assert [r.endpoint for r in sandbox.requests] == ["article"] * 4

    async def test_key_and_token_stay_out_of_logs(
        self,
        vicket: VicketClient,
        sandbox: Sandbox,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="vicket_async")
        token = await open_ticket(vicket, sandbox, FileUpload(b"x"))
        await vicket.get_ticket(token)
        await vicket.reply(token, "hi")

        assert "GET" in caplog.text
        assert "token=[redacted]" in caplog.text
        assert token not in caplog.text
        assert sandbox.api_key not in caplog.text

    async def test_redirect_to_another_origin_keeps_the_key(
        self, unused_tcp_port_factory: Any
    ) -> None:
        seen: list[dict[str, str]] = []

        async def elsewhere(request: web.Request) -> web.Response:
            seen.append(dict(request.headers))
            return web.json_response({"success": True, "data": {}})

        other_port = unused_tcp_port_factory()
        target = f"http://127.0.0.2:{other_port}/api/v1/public/support/init"

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(target)

        async with (
            _serve(elsewhere, "127.0.0.2", other_port),
            _serve(redirect, "127.0.0.1", unused_tcp_port_factory()) as url,
            VicketClient(api_key="vk_secret_key", base_url=url) as vicket,
        ):
            with pytest.raises(UnsafeRedirectError) as info:
                await vicket.init()

        assert seen == []
        assert "another origin" in str(info.value)
        assert f"127.0.0.2:{other_port}" in str(info.value)

    async def test_same_origin_redirect_is_followed(
        self, unused_tcp_port_factory: Any
    ) -> None:
        keys: list[str | None] = []

        async def handler(request: web.Request) -> web.Response:
            keys.append(request.headers.get("X-Api-Key"))
            if request.path.endswith("/init"):
                raise web.HTTPFound(location="/api/v1/public/support/moved")
            return web.json_response({"success": True, "data": {}})

        port = unused_tcp_port_factory()
        async with (
            _serve(handler, "127.0.0.1", port) as url,
            VicketClient(api_key="vk_k", base_url=url) as vicket,
        ):
            page = await vicket.init()

        assert keys == ["vk_k", "vk_k"]
        assert page == SupportPage()

    async def test_cookies_are_not_sent_back(
        self, unused_tcp_port_factory: Any
    ) -> None:
        cookies: list[str | None] = []

        async def handler(request: web.Request) -> web.Response:
            cookies.append(request.headers.get("Cookie"))
            response = web.json_response({"success": True, "data": {}})
            response.set_cookie("visitor", "first-visitor")
            return response

        port = unused_tcp_port_factory()
        async with (
            _serve(handler, "localhost", port),
            # A host name: aiohttp's cookie jars never keep cookies of a
            # bare IP address, so such a test would prove nothing.
            VicketClient(
                api_key="vk_k",
                base_url=f"http://localhost:{port}",
                cache_ttl=None,
            ) as vicket,
        ):
            await vicket.init()
            await vicket.init()

        # One visitor's cookie never goes out with the next request.
        assert cookies == [None, None]


@contextlib.asynccontextmanager
async def _serve(handler: Any, host: str, port: int) -> AsyncIterator[str]:
    """Serve one handler for every path on ``host:port``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class TestSandboxProcess:
    async def test_a_sandbox_in_its_own_process(self) -> None:
        with SandboxProcess("--shape", "integration") as sandbox:
            async with VicketClient(
                api_key=sandbox.api_key, base_url=sandbox.base_url
            ) as vicket:
                page = await vicket.init()
            pid = sandbox.pid
        sandbox.stop()

        assert page.template("tpl_bug").icon
        assert pid is not None
        assert sandbox.pid is None
        assert "not running" in repr(sandbox)


def test_an_unusable_upload_source_is_our_error() -> None:
    with pytest.raises(UploadError, match="cannot upload a int"):
        FileUpload(12)  # type: ignore[arg-type]
