"""
The browser-facing proxy, through its aiohttp and its ASGI front ends.

Every route test runs twice: once through the aiohttp sub-application on a
loopback port, once through the ASGI application driven by a small ASGI
client in this file, mounted under a prefix the way Starlette mounts it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import tracemalloc
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    MutableMapping,
)
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from vicket_async import (
    ConfigurationError,
    RateLimit,
    RetryPolicy,
    VicketClient,
)
from vicket_async.proxy import (
    ASGIProxy,
    make_aiohttp_app,
    make_asgi_app,
)
from vicket_async.proxy._aiohttp import PROXY_KEY
from vicket_async.proxy._core import Proxy
from vicket_async.proxy._multipart import (
    MalformedBodyError,
    MultipartReader,
    boundary_of,
)
from vicket_async.proxy._visitors import (
    VisitorLimiter,
    trusted_networks,
    visitor_of,
)
from vicket_async.sandbox import Question, Sandbox, Template

PREFIX = "/support-api"
BOUNDARY = "vicketTestBoundary7MA4YWxkTrZu0gW"
EMAIL = "reporter@example.com"
MIB = 1024 * 1024

Body = bytes | AsyncIterator[bytes] | None


class Answer:
    """What a front end answered."""

    def __init__(
        self, status: int, headers: CIMultiDict[str], body: bytes
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:200]!r}>"

    def json(self) -> Any:
        return orjson.loads(self.body)


class Front(Protocol):
    """One way in to the proxy."""

    proxy: Proxy

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body = None,
        peer: str = "127.0.0.1",
    ) -> Answer: ...


class AiohttpFront:
    """The aiohttp sub-application, mounted under the prefix and served."""

    def __init__(self, proxy: Proxy, base: str) -> None:
        self.proxy = proxy
        self.base = base
        self.session = aiohttp.ClientSession(auto_decompress=False)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body = None,
        peer: str = "127.0.0.1",
    ) -> Answer:
        # The peer is always loopback here; tests of other peers use ASGI.
        url = self.base + PREFIX + path
        if query:
            url = f"{url}?{urlencode(query)}"
        async with self.session.request(
            method, url, headers=headers, data=body
        ) as response:
            return Answer(
                response.status,
                CIMultiDict(response.headers),
                await response.read(),
            )


class ASGIFront:
    """The ASGI application, called the way a server and a mount call it."""

    def __init__(self, app: ASGIProxy) -> None:
        self.app = app
        self.proxy = app.proxy

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body = None,
        peer: str = "127.0.0.1",
    ) -> Answer:
        return await asgi_call(
            self.app,
            method,
            path,
            query=query,
            headers=headers,
            body=body,
            peer=peer,
        )


async def asgi_call(
    app: Callable[..., Awaitable[None]],
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: Body = None,
    peer: str = "127.0.0.1",
) -> Answer:
    """One request through an ASGI app, mounted at PREFIX."""
    chunks = _chunks(body)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": PREFIX + path,
        "raw_path": (PREFIX + path).encode(),
        "root_path": PREFIX,
        "query_string": urlencode(query or {}).encode(),
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ],
        "client": (peer, 50123),
        "server": ("testserver", 80),
    }
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        chunk = await anext(chunks, None)
        if chunk is None:
            if done.is_set():
                await asyncio.Event().wait()
            done.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    answer_headers: CIMultiDict[str] = CIMultiDict(
        (name.decode(), value.decode()) for name, value in start["headers"]
    )
    content = b"".join(m.get("body", b"") for m in sent[1:])

    return Answer(start["status"], answer_headers, content)


async def _chunks(body: Body) -> AsyncIterator[bytes]:
    if body is None:
        return
    if isinstance(body, bytes):
        yield body
        return
    async for chunk in body:
        yield chunk


FrontFactory = Callable[..., Awaitable[Front]]


@pytest.fixture
async def client(vicket_sandbox: Sandbox) -> AsyncIterator[VicketClient]:
    async with VicketClient(
        api_key=vicket_sandbox.api_key,
        base_url=vicket_sandbox.base_url,
        retry=RetryPolicy(attempts=1),
    ) as vicket:
        yield vicket


@pytest.fixture(params=["aiohttp", "asgi"])
async def make_front(
    request: pytest.FixtureRequest, client: VicketClient
) -> AsyncIterator[FrontFactory]:
    runners: list[web.AppRunner] = []
    fronts: list[AiohttpFront] = []

    async def make(**options: Any) -> Front:
        if request.param == "asgi":
            return ASGIFront(make_asgi_app(client, **options))
        sub = make_aiohttp_app(client, **options)
        app = web.Application()
        app.add_subapp(PREFIX, sub)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        front = AiohttpFront(sub[PROXY_KEY], f"http://127.0.0.1:{port}")
        fronts.append(front)
        return front

    yield make
    for front in fronts:
        await front.session.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def front(make_front: FrontFactory) -> Front:
    return await make_front()


def ticket_json(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "email": EMAIL,
        "title": "An idea",
        "templateId": "tpl_feature",
        "answers": {"q_idea": "Dark mode", "q_contact_ok": True},
    }
    payload.update(changes)

    return payload


def bug_payload() -> dict[str, Any]:
    return {
        "email": EMAIL,
        "title": "The page is blank",
        "templateId": "tpl_bug",
        "answers": {
            "q_description": "Nothing shows after sign-in",
            "q_browser": "firefox",
            "q_reproducible": True,
            "q_first_seen": "2026-03-01",
            "q_screenshot": "__isFile:true",
        },
    }


def json_body(payload: object) -> dict[str, Any]:
    return {
        "headers": {"Content-Type": "application/json"},
        "body": orjson.dumps(payload),
    }


FileSpec = tuple[str, str, str, Iterable[bytes]]


def form(data: object, files: Iterable[FileSpec] = ()) -> dict[str, Any]:
    """A streamed multipart form: ``data`` first, then the files."""

    async def stream() -> AsyncIterator[bytes]:
        yield (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="data"\r\n\r\n'
        ).encode()
        yield orjson.dumps(data)
        for field, filename, kind, chunks in files:
            yield (
                f"\r\n--{BOUNDARY}\r\n"
                f'Content-Disposition: form-data; name="{field}"; '
                f'filename="{filename}"\r\n'
                f"Content-Type: {kind}\r\n\r\n"
            ).encode()
            for chunk in chunks:
                yield chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    return {
        "headers": {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"
        },
        "body": stream(),
    }


def repeated(chunk: bytes, count: int) -> Iterable[bytes]:
    for _ in range(count):
        yield chunk


def sha256_of(chunk: bytes, count: int) -> str:
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(chunk)

    return digest.hexdigest()


async def create_ticket(sandbox: Sandbox, client: VicketClient) -> str:
    """A ticket made directly through the client; returns its token."""
    await client.create_ticket(
        email=EMAIL,
        title="Help",
        template="tpl_feature",
        answers={"q_idea": "x", "q_contact_ok": False},
    )
    token = sandbox.state.latest_token(EMAIL)
    assert token is not None

    return token


class TestReads:
    async def test_init_is_served_from_the_cache(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        answers = [await front.request("GET", "/init") for _ in range(3)]

        for answer in answers:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith(
                "application/json"
            )
        data = answers[0].json()
        assert data["success"] is True
        assert [t["id"] for t in data["data"]["templates"]] == [
            "tpl_bug",
            "tpl_billing",
            "tpl_feature",
        ]
        assert len(vicket_sandbox.state.requests_for("init")) == 1

    async def test_article_by_slug(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        answer = await front.request("GET", "/articles/getting-started")
        again = await front.request("GET", "/articles/getting-started")

        assert answer.status == 200
        assert answer.json()["data"]["slug"] == "getting-started"
        assert again.body == answer.body
        assert len(vicket_sandbox.state.requests_for("article")) == 1

    async def test_missing_article_keeps_the_api_error(
        self, front: Front
    ) -> None:
        answer = await front.request("GET", "/articles/no-such-thing")

        assert answer.status == 404
        assert answer.json()["success"] is False
        assert answer.json()["error_code"] == "article-not-found"

    async def test_thread_without_the_token_in_it(
        self, front: Front, vicket_sandbox: Sandbox, client: VicketClient
    ) -> None:
        vicket_sandbox.state.shape = "integration"
        token = await create_ticket(vicket_sandbox, client)

        answer = await front.request("GET", "/ticket", query={"token": token})

        assert answer.status == 200
        data = answer.json()["data"]
        assert data["title"] == "Help"
        assert "token" not in data
        assert token.encode() not in answer.body

    async def test_unknown_token_is_refused(self, front: Front) -> None:
        answer = await front.request(
            "GET", "/ticket", query={"token": "not-a-real-token"}
        )

        assert answer.status == 401
        assert answer.json()["error_code"] == "invalid-token"
        assert b"not-a-real-token" not in answer.body

    async def test_missing_token_is_a_validation_error(
        self, front: Front
    ) -> None:
        answer = await front.request("GET", "/ticket")

        assert answer.status == 400
        assert answer.json()["problems"][0]["field"] == "token"

    async def test_expired_link_answers_410(
        self, front: Front, vicket_sandbox: Sandbox, client: VicketClient
    ) -> None:
        token = await create_ticket(vicket_sandbox, client)
        vicket_sandbox.state.expire_token(token)

        answer = await front.request("GET", "/ticket", query={"token": token})

        assert answer.status == 410
        assert answer.json()["error_code"] == "ticket-link-expired"


class TestWrites:
    async def test_ticket_as_json(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        answer = await front.request(
            "POST", "/tickets", **json_body(ticket_json())
        )

        assert answer.status == 201
        assert answer.json() == {
            "success": True,
            "data": {"email_limit_reached": False, "warning": None},
        }
        [ticket] = vicket_sandbox.state.tickets_for(EMAIL)
        assert ticket.template_id == "tpl_feature"

    async def test_ticket_with_a_file_streams_it_through(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        chunk = bytes(range(256)) * 256
        files = [("files[q_screenshot]", "shot.png", "image/png", [chunk] * 5)]

        answer = await front.request(
            "POST", "/tickets", **form(bug_payload(), files)
        )

        assert answer.status == 201, answer
        [ticket] = vicket_sandbox.state.tickets_for(EMAIL)
        [file] = next(
            a.attachments
            for a in ticket.answers
            if a.question_id == "q_screenshot"
        )
        assert file.original_filename == "shot.png"
        assert file.mime_type == "image/png"
        assert file.size == len(chunk) * 5
        assert file.sha256 == sha256_of(chunk, 5)

    async def test_ticket_with_two_files_spools_the_first(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        website = vicket_sandbox.state.website_for_key(vicket_sandbox.api_key)
        assert website is not None
        website.add_template(
            Template(
                id="tpl_two",
                name="Two files",
                description="",
                questions=(
                    Question(id="q_a", label="A", type="FILE", required=True),
                    Question(id="q_b", label="B", type="FILE", required=True),
                ),
            )
        )
        payload = ticket_json(
            templateId="tpl_two",
            answers={"q_a": "__isFile:true", "q_b": "__isFile:true"},
        )
        files = [
            ("files[q_b]", "b.txt", "text/plain", [b"b" * 70_000]),
            ("files[q_a]", "C:\\Users\\me\\a.txt", "text/plain", [b"a" * 10]),
        ]

        answer = await front.request(
            "POST", "/tickets", **form(payload, files)
        )

        assert answer.status == 201, answer
        [ticket] = vicket_sandbox.state.tickets_for(EMAIL)
        stored = {
            a.question_id: (
                a.attachments[0].original_filename,
                a.attachments[0].size,
            )
            for a in ticket.answers
        }
        assert stored == {"q_a": ("a.txt", 10), "q_b": ("b.txt", 70_000)}

    async def test_answers_are_checked_before_anything_is_sent(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        payload = ticket_json(
            email="not-an-address",
            answers={"q_idea": "", "q_unknown": "x"},
        )

        answer = await front.request("POST", "/tickets", **json_body(payload))

        assert answer.status == 400
        data = answer.json()
        assert data["error_code"] == "validation-error"
        fields = {p["field"] for p in data["problems"]}
        assert {"email", "q_unknown", "q_contact_ok"} <= fields
        assert vicket_sandbox.state.requests_for("create_ticket") == []

    async def test_malformed_ticket_json(self, front: Front) -> None:
        bad = await front.request(
            "POST",
            "/tickets",
            headers={"Content-Type": "application/json"},
            body=b"{not json",
        )
        shape = await front.request("POST", "/tickets", **json_body([1, 2]))
        fields = await front.request(
            "POST", "/tickets", **json_body({"email": 3, "answers": []})
        )

        assert bad.status == 400
        assert bad.json()["error_code"] == "invalid-json"
        assert shape.status == 400
        assert fields.status == 400
        assert {p["field"] for p in fields.json()["problems"]} == {
            "email",
            "title",
            "templateId",
            "answers",
        }

    async def test_form_must_start_with_data(self, front: Front) -> None:
        async def stream() -> AsyncIterator[bytes]:
            yield (
                f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
                f'name="files[q_screenshot]"; filename="a.png"\r\n\r\n'
                f"xx\r\n--{BOUNDARY}--\r\n"
            ).encode()

        answer = await front.request(
            "POST",
            "/tickets",
            headers={
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"
            },
            body=stream(),
        )

        assert answer.status == 400
        assert answer.json()["error_code"] == "invalid-multipart"

    async def test_unexpected_part_after_the_last_file(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        files = [
            ("files[q_screenshot]", "a.png", "image/png", [b"x" * 100]),
            ("files[q_extra]", "b.png", "image/png", [b"y" * 100]),
        ]

        answer = await front.request(
            "POST", "/tickets", **form(bug_payload(), files)
        )

        assert answer.status == 400
        assert answer.json()["error_code"] == "invalid-multipart"
        assert vicket_sandbox.state.tickets_for(EMAIL) == []

    async def test_reply_as_json_and_with_files(
        self, front: Front, vicket_sandbox: Sandbox, client: VicketClient
    ) -> None:
        token = await create_ticket(vicket_sandbox, client)
        query = {"token": token}

        plain = await front.request(
            "POST",
            "/ticket/messages",
            query=query,
            **json_body({"content": "Still broken"}),
        )
        files = [
            ("files", "one.txt", "text/plain", [b"1" * 1000]),
            ("files", "two.log", "application/octet-stream", [b"2" * 2000]),
        ]
        with_files = await front.request(
            "POST",
            "/ticket/messages",
            query=query,
            **form({"content": "Logs attached"}, files),
        )

        assert plain.status == 201
        assert plain.json()["data"]["content"] == "Still broken"
        assert with_files.status == 201, with_files
        assert token.encode() not in plain.body + with_files.body
        [ticket] = vicket_sandbox.state.tickets_for(EMAIL)
        last = ticket.messages[-1]
        assert last.content == "Logs attached"
        assert [(a.original_filename, a.size) for a in last.attachments] == [
            ("one.txt", 1000),
            ("two.log", 2000),
        ]

    async def test_empty_reply_is_refused(
        self, front: Front, vicket_sandbox: Sandbox, client: VicketClient
    ) -> None:
        token = await create_ticket(vicket_sandbox, client)

        answer = await front.request(
            "POST",
            "/ticket/messages",
            query={"token": token},
            **json_body({"content": "  "}),
        )
        wrong = await front.request(
            "POST",
            "/ticket/messages",
            query={"token": token},
            **json_body({"text": "hi"}),
        )

        assert answer.status == 400
        assert answer.json()["problems"][0]["field"] == "content"
        assert wrong.status == 400


class TestRefusals:
    @pytest.mark.parametrize(
        "path",
        ["/", "/nope", "/articles/", "/articles/a/b", "/init/", "/_sandbox"],
    )
    async def test_unknown_routes_are_404(
        self, front: Front, path: str
    ) -> None:
        answer = await front.request("GET", path)

        assert answer.status == 404
        assert answer.json() == {
            "success": False,
            "error": "Nothing is served at this address",
            "error_code": "not-found",
        }

    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("POST", "/init", "GET"),
            ("GET", "/tickets", "POST"),
            ("DELETE", "/ticket", "GET"),
            ("PUT", "/ticket/messages", "POST"),
            ("PATCH", "/articles/x", "GET"),
            ("OPTIONS", "/init", "GET"),
        ],
    )
    async def test_wrong_methods_are_405(
        self, front: Front, method: str, path: str, allowed: str
    ) -> None:
        answer = await front.request(method, path)

        assert answer.status == 405
        assert answer.headers["Allow"] == allowed
        assert answer.json()["error_code"] == "method-not-allowed"

    @pytest.mark.parametrize(
        "kind",
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "",
        ],
    )
    async def test_other_content_types_are_415(
        self, front: Front, kind: str
    ) -> None:
        headers = {"Content-Type": kind} if kind else {}

        answer = await front.request(
            "POST", "/tickets", headers=headers, body=b"email=a"
        )

        assert answer.status == 415
        assert answer.json()["error_code"] == "unsupported-media-type"

    async def test_declared_size_over_the_limit_is_413(
        self, make_front: FrontFactory, vicket_sandbox: Sandbox
    ) -> None:
        front = await make_front(max_body_size=1000)

        answer = await front.request(
            "POST", "/tickets", **json_body(ticket_json(title="x" * 2000))
        )

        assert answer.status == 413
        assert answer.json()["error_code"] == "payload-too-large"
        assert vicket_sandbox.state.requests_for("create_ticket") == []

    async def test_streamed_size_over_the_limit_is_413(
        self, make_front: FrontFactory, vicket_sandbox: Sandbox
    ) -> None:
        front = await make_front(max_body_size=256 * 1024)
        files = [("files[q_screenshot]", "big.png", "image/png", [b"z" * MIB])]

        answer = await front.request(
            "POST", "/tickets", **form(bug_payload(), files)
        )

        assert answer.status == 413
        assert answer.json()["error_code"] == "payload-too-large"
        assert vicket_sandbox.state.tickets_for(EMAIL) == []

    async def test_cross_site_form_posts_are_refused(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        body = json_body(ticket_json())
        body["headers"].update(
            {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
        )

        answer = await front.request("POST", "/tickets", **body)

        assert answer.status == 403
        assert answer.json()["error_code"] == "cross-site-request"
        assert vicket_sandbox.state.tickets_for(EMAIL) == []


class TestVisitorLimits:
    async def test_one_visitor_cannot_spend_the_website_budget(
        self, make_front: FrontFactory
    ) -> None:
        front = await make_front(
            visitor_limits={"create_ticket": RateLimit(2, 60.0)}
        )
        statuses = []
        for _ in range(3):
            answer = await front.request(
                "POST", "/tickets", **json_body(ticket_json())
            )
            statuses.append(answer.status)

        assert statuses == [201, 201, 429]
        assert answer.json()["error_code"] == "rate-limit-exceeded"
        assert 1 <= int(answer.headers["Retry-After"]) <= 60

    async def test_limit_window_moves_on(
        self, make_front: FrontFactory
    ) -> None:
        front = await make_front(visitor_limits={"init": RateLimit(1, 60.0)})
        now = [0.0]
        front.proxy.visitors.clock = lambda: now[0]

        first = await front.request("GET", "/init")
        second = await front.request("GET", "/init")
        now[0] = 60.0
        third = await front.request("GET", "/init")

        assert [first.status, second.status, third.status] == [200, 429, 200]
        assert second.headers["Retry-After"] == "60"

    async def test_limits_can_be_turned_off(
        self, make_front: FrontFactory
    ) -> None:
        front = await make_front(visitor_limits={"init": None})

        for _ in range(40):
            assert (await front.request("GET", "/init")).status == 200

    async def test_forwarded_for_is_ignored_unless_trusted(
        self, make_front: FrontFactory
    ) -> None:
        front = await make_front(visitor_limits={"init": RateLimit(1, 60.0)})

        first = await front.request(
            "GET", "/init", headers={"X-Forwarded-For": "198.51.100.1"}
        )
        spoofed = await front.request(
            "GET", "/init", headers={"X-Forwarded-For": "198.51.100.2"}
        )

        assert (first.status, spoofed.status) == (200, 429)

    async def test_trusted_proxy_names_the_visitor(
        self, make_front: FrontFactory
    ) -> None:
        front = await make_front(
            visitor_limits={"init": RateLimit(1, 60.0)},
            trusted_proxies=["127.0.0.0/8"],
        )

        def via(address: str) -> dict[str, Any]:
            return {"headers": {"X-Forwarded-For": f"10.9.9.9, {address}"}}

        one = await front.request("GET", "/init", **via("198.51.100.1"))
        other = await front.request("GET", "/init", **via("198.51.100.2"))
        again = await front.request("GET", "/init", **via("198.51.100.1"))

        assert (one.status, other.status, again.status) == (200, 200, 429)

    async def test_peer_address_tells_visitors_apart(
        self, client: VicketClient
    ) -> None:
        app = make_asgi_app(
            client, visitor_limits={"init": RateLimit(1, 60.0)}
        )

        one = await asgi_call(app, "GET", "/init", peer="203.0.113.1")
        two = await asgi_call(app, "GET", "/init", peer="203.0.113.2")
        same = await asgi_call(app, "GET", "/init", peer="203.0.113.1")

        assert (one.status, two.status, same.status) == (200, 200, 429)

    async def test_website_budget_refusal_becomes_429(
        self, vicket_sandbox: Sandbox
    ) -> None:
        async with VicketClient(
            api_key=vicket_sandbox.api_key,
            base_url=vicket_sandbox.base_url,
            rate_limits={"create_ticket": RateLimit(1, 60.0)},
        ) as vicket:
            app = make_asgi_app(vicket, budget_wait=0)
            request = json_body(ticket_json())
            first = await asgi_call(app, "POST", "/tickets", **request)
            request = json_body(ticket_json())
            second = await asgi_call(
                app, "POST", "/tickets", peer="203.0.113.9", **request
            )

        assert first.status == 201
        assert second.status == 429
        assert 1 <= int(second.headers["Retry-After"]) <= 61
        assert second.json()["error"].startswith("The support service is busy")


class TestUpstreamFailures:
    async def test_server_error_keeps_its_status(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        vicket_sandbox.faults.error("article", 503)

        answer = await front.request("GET", "/articles/getting-started")

        assert answer.status == 503
        assert answer.json()["success"] is False

    async def test_lost_connection_is_502(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        vicket_sandbox.faults.drop_connection("article", times=None)

        answer = await front.request("GET", "/articles/getting-started")

        assert answer.status == 502
        assert answer.json() == {
            "success": False,
            "error": "The support service could not be reached",
            "error_code": "bad-gateway",
        }

    async def test_html_error_page_is_502(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        vicket_sandbox.faults.html_error("article", status=502)

        answer = await front.request("GET", "/articles/getting-started")

        assert answer.status == 502
        assert answer.json()["error_code"] == "bad-gateway"

    async def test_upstream_timeout_is_504(
        self, vicket_sandbox: Sandbox
    ) -> None:
        vicket_sandbox.faults.delay("article", 2.0)
        async with VicketClient(
            api_key=vicket_sandbox.api_key,
            base_url=vicket_sandbox.base_url,
            timeout=0.2,
            retry=RetryPolicy(attempts=1),
        ) as vicket:
            answer = await asgi_call(
                make_asgi_app(vicket), "GET", "/articles/getting-started"
            )

        assert answer.status == 504
        assert answer.json()["error_code"] == "gateway-timeout"

    async def test_upstream_429_keeps_retry_after(
        self, front: Front, vicket_sandbox: Sandbox
    ) -> None:
        vicket_sandbox.faults.rate_limited("article", retry_after=7)

        answer = await front.request("GET", "/articles/getting-started")

        assert answer.status == 429
        assert answer.headers["Retry-After"] == "7"
        assert answer.json()["error_code"] == "rate-limit-exceeded"

    async def test_stale_page_is_served_during_an_outage(
        self, front: Front, vicket_sandbox: Sandbox, client: VicketClient
    ) -> None:
        first = await front.request("GET", "/init")
        assert client._init_cache is not None
        client._init_cache.clock = lambda: time.monotonic() + 120
        vicket_sandbox.faults.error("init", 500)

        second = await front.request("GET", "/init")

        assert second.status == 200
        assert second.body == first.body
        assert len(vicket_sandbox.state.requests_for("init")) == 2


class TestSecrets:
    async def test_key_and_token_stay_out_of_answers_and_logs(
        self,
        front: Front,
        vicket_sandbox: Sandbox,
        client: VicketClient,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        token = await create_ticket(vicket_sandbox, client)
        query = {"token": token}
        vicket_sandbox.faults.error("reply", 500)
        answers = [
            await front.request("GET", "/init"),
            await front.request("GET", "/ticket", query=query),
            await front.request(
                "POST",
                "/ticket/messages",
                query=query,
                **json_body({"content": "hello"}),
            ),
            await front.request(
                "POST",
                "/ticket/messages",
                query=query,
                **json_body({"content": "hello again"}),
            ),
            await front.request(
                "GET", "/ticket", query={"token": token + "x"}
            ),
        ]

        assert [a.status for a in answers] == [200, 200, 500, 201, 401]
        key = vicket_sandbox.api_key
        for answer in answers:
            assert key.encode() not in answer.body
            assert token.encode() not in answer.body
            assert all(
                key not in v and token not in v
                for v in answer.headers.values()
            )
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "proxy: GET /ticket -> 200" in logged
        assert key not in logged
        assert token not in logged


class TestCors:
    async def test_off_by_default(self, front: Front) -> None:
        answer = await front.request(
            "GET", "/init", headers={"Origin": "https://shop.example"}
        )

        assert answer.status == 200
        assert "Access-Control-Allow-Origin" not in answer.headers

    async def test_exact_origins_only(self, make_front: FrontFactory) -> None:
        front = await make_front(cors_origins=["https://shop.example"])

        allowed = await front.request(
            "GET", "/init", headers={"Origin": "https://shop.example"}
        )
        other = await front.request(
            "GET", "/init", headers={"Origin": "https://shop.example.evil"}
        )

        assert (
            allowed.headers["Access-Control-Allow-Origin"]
            == "https://shop.example"
        )
        assert allowed.headers["Vary"] == "Origin"
        assert "Access-Control-Allow-Origin" not in other.headers

    async def test_preflight(self, make_front: FrontFactory) -> None:
        front = await make_front(cors_origins=["https://shop.example"])

        def preflight(origin: str, method: str) -> dict[str, Any]:
            return {
                "headers": {
                    "Origin": origin,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "content-type",
                }
            }

        ok = await front.request(
            "OPTIONS", "/tickets", **preflight("https://shop.example", "POST")
        )
        wrong_method = await front.request(
            "OPTIONS", "/tickets", **preflight("https://shop.example", "PUT")
        )
        stranger = await front.request(
            "OPTIONS", "/tickets", **preflight("https://evil.example", "POST")
        )

        assert ok.status == 204
        assert ok.headers["Access-Control-Allow-Origin"] == (
            "https://shop.example"
        )
        assert ok.headers["Access-Control-Allow-Methods"] == "POST"
        assert "Content-Type" in ok.headers["Access-Control-Allow-Headers"]
        assert wrong_method.status == 405
        assert stranger.status == 403
        assert "Access-Control-Allow-Origin" not in stranger.headers

    async def test_allowed_origin_may_post_cross_site(
        self, make_front: FrontFactory
    ) -> None:
        front = await make_front(cors_origins=["https://shop.example"])
        request = json_body(ticket_json())
        request["headers"].update(
            {"Origin": "https://shop.example", "Sec-Fetch-Site": "cross-site"}
        )

        answer = await front.request("POST", "/tickets", **request)

        assert answer.status == 201


class TestStreamingMemory:
    async def test_large_upload_is_never_held_whole(
        self, make_front: FrontFactory, vicket_sandbox: Sandbox
    ) -> None:
        size = 48 * MIB
        front = await make_front(max_body_size=size + MIB)
        chunk = b"\xab" * (256 * 1024)
        count = size // len(chunk)
        files = [
            (
                "files[q_screenshot]",
                "big.bin",
                "application/octet-stream",
                repeated(chunk, count),
            )
        ]
        tracemalloc.start()
        try:
            answer = await front.request(
                "POST", "/tickets", **form(bug_payload(), files)
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert answer.status == 201, answer
        # Everything here shares one process: the test's sender, the proxy
        # and the sandbox. Together they stay far below the file's size.
        assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"
        [ticket] = vicket_sandbox.state.tickets_for(EMAIL)
        [file] = next(
            a.attachments
            for a in ticket.answers
            if a.question_id == "q_screenshot"
        )
        assert file.size == size
        assert file.sha256 == sha256_of(chunk, count)


class TestOptions:
    @pytest.mark.parametrize(
        "options",
        [
            {"cors_origins": ["*"]},
            {"cors_origins": ["https://shop.example/"]},
            {"cors_origins": "https://shop.example"},
            {"trusted_proxies": -1},
            {"trusted_proxies": ["not a network"]},
            {"visitor_limits": {"tickets": RateLimit(1, 60.0)}},
            {"max_body_size": 0},
            {"budget_wait": -1},
        ],
    )
    def test_bad_options_are_refused(
        self, options: dict[str, Any], client: VicketClient
    ) -> None:
        with pytest.raises(ConfigurationError):
            make_asgi_app(client, **options)
        with pytest.raises(ConfigurationError):
            make_aiohttp_app(client, **options)

    async def test_asgi_lifespan_and_other_scopes(
        self, client: VicketClient
    ) -> None:
        app = make_asgi_app(client)
        messages = iter(
            [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        )
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        with pytest.raises(RuntimeError, match="HTTP only"):
            await app({"type": "websocket"}, receive, send)


class TestVisitors:
    @pytest.mark.parametrize(
        ("peer", "forwarded", "trusted", "visitor"),
        [
            ("10.0.0.1", [], 0, "10.0.0.1"),
            ("10.0.0.1", ["1.2.3.4"], 0, "10.0.0.1"),
            ("10.0.0.1", ["1.2.3.4"], 1, "1.2.3.4"),
            ("10.0.0.1", ["9.9.9.9, 1.2.3.4"], 1, "1.2.3.4"),
            ("10.0.0.1", ["9.9.9.9, 1.2.3.4", "10.0.0.2"], 2, "1.2.3.4"),
            ("10.0.0.1", [], 3, "10.0.0.1"),
            ("10.0.0.1", ["1.2.3.4, 10.0.0.7"], ["10.0.0.0/8"], "1.2.3.4"),
            ("192.0.2.1", ["1.2.3.4"], ["10.0.0.0/8"], "192.0.2.1"),
            ("10.0.0.1", ["10.0.0.3"], ["10.0.0.0/8"], "10.0.0.3"),
            ("2001:db8::1:2", [], 0, "2001:db8::/64"),
            ("::ffff:1.2.3.4", [], 0, "1.2.3.4"),
            (None, [], 0, "unknown"),
        ],
    )
    def test_visitor_address(
        self,
        peer: str | None,
        forwarded: list[str],
        trusted: int | list[str],
        visitor: str,
    ) -> None:
        assert visitor_of(peer, forwarded, trusted_networks(trusted)) == (
            visitor
        )

    def test_limiter_forgets_the_oldest_visitors(self) -> None:
        limiter = VisitorLimiter(
            {"init": RateLimit(1, 60.0)}, clock=lambda: 0.0, max_visitors=2
        )

        assert limiter.hit("a", "init") is None
        assert limiter.hit("b", "init") is None
        assert limiter.hit("c", "init") is None
        assert limiter.hit("a", "init") is None
        assert limiter.hit("c", "init") == 60.0
        assert limiter.hit("x", "reply") is None


class TestMultipartReader:
    BODY = (
        b"preamble\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="data"\r\n\r\n'
        b'{"content": "hi"}\r\n'
        b"--XyZ  \r\n"
        b'Content-Disposition: form-data; name="files"; '
        b'filename="r\xc3\xa9sum\xc3\xa9.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"line one\r\n--XyX not the end\r\n--Xy\r\n"
        b"--XyZ--\r\n"
        b"epilogue"
    )

    async def read_all(
        self, chunks: list[bytes]
    ) -> list[tuple[str, str | None, str, bytes]]:
        async def source() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        reader = MultipartReader(source(), b"XyZ")
        parts = []
        while (part := await reader.next_part()) is not None:
            content = b"".join([c async for c in part.chunks()])
            parts.append(
                (part.name, part.filename, part.content_type, content)
            )

        return parts

    @pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
    async def test_parts_survive_any_chunking(self, size: int) -> None:
        body = self.BODY
        chunks = [body[i : i + size] for i in range(0, len(body), size)]

        assert await self.read_all(chunks) == [
            ("data", None, "application/octet-stream", b'{"content": "hi"}'),
            (
                "files",
                "résumé.txt",
                "text/plain",
                b"line one\r\n--XyX not the end\r\n--Xy",
            ),
        ]

    async def test_unread_parts_are_skipped(self) -> None:
        async def source() -> AsyncIterator[bytes]:
            yield self.BODY

        reader = MultipartReader(source(), b"XyZ")
        names = []
        while (part := await reader.next_part()) is not None:
            names.append(part.name)

        assert names == ["data", "files"]

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"no boundary at all",
            b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nab',
            b"--XyZ\r\nContent-Disposition: attachment\r\n\r\nab\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nab\r\n--XyZ--",
            b"--XyZ\r\n\r\nab\r\n--XyZ--",
            b"--XyZ\r\nbroken header line\r\n\r\nab\r\n--XyZ--",
            b"--XyZjunk\r\n",
        ],
    )
    async def test_malformed_bodies(self, body: bytes) -> None:
        with pytest.raises(MalformedBodyError):
            await self.read_all([body])

    @pytest.mark.parametrize(
        ("content_type", "boundary"),
        [
            ("multipart/form-data; boundary=abc", b"abc"),
            ('multipart/form-data; boundary="a b"', b"a b"),
            ("Multipart/Form-Data; charset=utf-8; boundary=x", b"x"),
            ("multipart/form-data", None),
            ("multipart/mixed; boundary=abc", None),
            ("application/json", None),
        ],
    )
    def test_boundary(self, content_type: str, boundary: bytes | None) -> None:
        assert boundary_of(content_type) == boundary


def test_public_names() -> None:
    import vicket_async.proxy

    assert vicket_async.proxy.__all__ == [
        "DEFAULT_MAX_BODY_SIZE",
        "DEFAULT_VISITOR_LIMITS",
        "ASGIProxy",
        "make_aiohttp_app",
        "make_asgi_app",
    ]
    assert ASGIProxy.__module__ == "vicket_async.proxy"
