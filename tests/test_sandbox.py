"""
Tests of the sandbox server, over real loopback HTTP with plain aiohttp.

The SDK's client is deliberately not used here: these tests pin down what
the sandbox puts on the wire, so that the client's own tests can trust
it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import vicket_async.sandbox as sandbox_module
from vicket_async.sandbox import (
    API_PREFIX,
    DEFAULT_RATE_LIMITS,
    DEMO_API_KEY,
    FILE_MARKER,
    FaultInjector,
    RateLimiter,
    RateLimitMode,
    Sandbox,
    SandboxState,
    Website,
    demo_website,
    large_website,
)
from vicket_async.sandbox._ratelimit import (
    FixedWindow,
    RollingLog,
    SlidingCounter,
    TokenBucket,
)

REPO_ROOT = Path(sandbox_module.__file__).resolve().parents[2]
REPORTER = "ada@example.com"
MIB = 1024 * 1024

Json = dict[str, Any]
Part = tuple[str, Any, str | None, str | None]


# Fixtures and helpers.


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    """Small conveniences for calling a sandbox with a plain session."""

    def __init__(
        self, session: aiohttp.ClientSession, sandbox: Sandbox
    ) -> None:
        self.session = session
        self.sandbox = sandbox
        self.key = sandbox.api_key

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        admin: bool = False,
        **kwargs: Any,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """Send a request; returns status, decoded JSON, response."""
        base = self.sandbox.base_url if admin else self.sandbox.api_url
        headers = dict(kwargs.pop("headers", {}))
        if not admin:
            headers.setdefault("X-Api-Key", key or self.key)
        async with self.session.request(
            method, base + path, headers=headers, **kwargs
        ) as response:
            raw = await response.read()
            body = json.loads(raw) if raw else None

        return response.status, body, response

    async def create(self, payload: Json, **kwargs: Any) -> tuple[int, Any]:
        status, body, _ = await self.call(
            "POST", "/tickets", json=payload, **kwargs
        )

        return status, body

    async def create_multipart(self, parts: Iterable[Part]) -> tuple[int, Any]:
        status, body, _ = await self.call(
            "POST", "/tickets", data=multipart(parts)
        )

        return status, body

    async def thread(self, token: str, **kwargs: Any) -> tuple[int, Any]:
        status, body, _ = await self.call(
            "GET", "/ticket", params={"token": token}, **kwargs
        )

        return status, body

    async def new_ticket(self, email: str = REPORTER) -> str:
        """Create a bug report; returns the token emailed for it."""
        status, body = await self.create(bug_report(email=email))
        assert status == 201, body
        token = self.sandbox.state.latest_token(email)
        assert token is not None

        return token


@pytest.fixture
def api(http: aiohttp.ClientSession, sandbox: Sandbox) -> Api:
    return Api(http, sandbox)


def bug_report(**changes: Any) -> Json:
    payload: Json = {
        "email": REPORTER,
        "title": "Cannot log in",
        "templateId": "tpl_bug",
        "answers": {
            "q_description": "I see a blank page",
            "q_browser": "chrome",
            "q_reproducible": True,
            "q_first_seen": "2026-03-01",
        },
    }
    payload.update(changes)

    return payload


def billing_answers(**changes: Any) -> Json:
    answers: Json = {
        "q_account": "acct_42",
        "q_topic": "refund",
        "q_invoice_date": "2026-02-01",
        "q_invoice": FILE_MARKER,
    }
    answers.update(changes)

    return {k: v for k, v in answers.items() if v is not None}


def billing_data(**changes: Any) -> str:
    return json.dumps(
        {
            "email": REPORTER,
            "title": "Refund please",
            "templateId": "tpl_billing",
            "answers": billing_answers(**changes),
        }
    )


def multipart(parts: Iterable[Part]) -> aiohttp.MultipartWriter:
    """A form-data body; each part is (name, value, filename, type)."""
    writer = aiohttp.MultipartWriter("form-data")
    for name, value, filename, content_type in parts:
        headers = {"Content-Type": content_type} if content_type else None
        payload = writer.append(value, headers)
        if filename is None:
            payload.set_content_disposition("form-data", name=name)
        else:
            payload.set_content_disposition(
                "form-data", name=name, filename=filename
            )

    return writer


PDF = b"%PDF-1.4\n% a tiny invoice\n"


def invoice_part(name: str = "files[q_invoice]") -> Part:
    return (name, PDF, "invoice.pdf", "application/pdf")


def data_part(data: str) -> Part:
    return ("data", data, None, "application/json")


def assert_error(body: Any, code: str, *words: str) -> None:
    assert set(body) == {"success", "error", "error_code"}
    assert body["success"] is False
    assert body["error_code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    for word in words:
        assert word in body["error"]


# /init


class TestInit:
    async def test_vendor_shape(self, api: Api) -> None:
        status, body, _ = await api.call("GET", "/init")

        assert status == 200
        assert body["success"] is True
        data = body["data"]
        assert set(data) == {"website", "templates", "articles", "faqs"}
        assert data["website"] == {"name": "Acme Support"}
        template = data["templates"][0]
        assert set(template) == {"id", "name", "description", "questions"}
        assert template["id"] == "tpl_bug"
        question = template["questions"][1]
        assert set(question) == {
            "id",
            "label",
            "type",
            "required",
            "order",
            "options",
        }
        assert question["type"] == "SELECT"
        assert "chrome" in question["options"]
        assert all(isinstance(o, str) for o in question["options"])
        assert set(data["articles"][0]) == {"id", "title", "slug", "content"}
        assert set(data["faqs"][0]) == {"id", "question", "answer"}

    async def test_demo_content(self, api: Api) -> None:
        _, body, _ = await api.call("GET", "/init")
        data = body["data"]
        questions = [q for t in data["templates"] for q in t["questions"]]

        assert {q["type"] for q in questions} == {
            "TEXT",
            "TEXTAREA",
            "SELECT",
            "CHECKBOX",
            "DATE",
            "FILE",
        }
        assert {q["required"] for q in questions} == {True, False}
        assert len(data["templates"]) >= 2
        assert len(data["articles"]) >= 3
        assert len(data["faqs"]) >= 3
        for template in data["templates"]:
            orders = [q["order"] for q in template["questions"]]
            assert orders == sorted(orders)
        assert all("<" in a["content"] for a in data["articles"])

    async def test_integration_shape(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with Sandbox(shape="integration") as sandbox:
            status, body, _ = await Api(http, sandbox).call("GET", "/init")

        assert status == 200
        data = body["data"]
        template = data["templates"][0]
        assert template["icon"] == "bug"
        options = template["questions"][1]["options"]
        assert {"value": "chrome", "label": "Google Chrome"} in options
        article = data["articles"][0]
        assert article["type"] == "article"
        assert article["category"] == "Basics"
        assert all("id" not in faq for faq in data["faqs"])

    async def test_sparse_init(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(shape="integration", sparse_init=True) as sandbox:
            status, body, _ = await Api(http, sandbox).call("GET", "/init")

        assert status == 200
        assert body["data"]["website"] == {}
        assert "articles" not in body["data"]
        assert "faqs" not in body["data"]
        assert body["data"]["templates"]

    @pytest.mark.parametrize(
        "headers",
        [{}, {"X-Api-Key": ""}, {"X-Api-Key": "vk_live_wrong"}],
        ids=["missing", "empty", "unknown"],
    )
    async def test_bad_key(
        self, sandbox: Sandbox, http: aiohttp.ClientSession, headers: Json
    ) -> None:
        url = sandbox.api_url + "/init"
        async with http.get(url, headers=headers) as response:
            body = await response.json()

        assert response.status == 401
        assert_error(body, "invalid-api-key", "X-Api-Key")

    async def test_second_website_is_isolated(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        other = Website(api_key="vk_other", name="Other Co")
        sandbox.state.add_website(other)
        token = await api.new_ticket()

        status, body, _ = await api.call("GET", "/init", key="vk_other")
        assert status == 200
        assert body["data"]["website"] == {"name": "Other Co"}
        assert body["data"]["templates"] == []

        status, body = await api.thread(token, headers={"X-Api-Key": "x"})
        assert status == 401
        status, body, _ = await api.call(
            "GET", "/ticket", key="vk_other", params={"token": token}
        )
        assert status == 401
        assert_error(body, "invalid-token")
        status, body, _ = await api.call(
            "GET", "/articles/getting-started", key="vk_other"
        )
        assert status == 404

    def test_duplicate_key_is_refused(self) -> None:
        state = SandboxState()
        state.add_website(demo_website())

        with pytest.raises(ValueError, match="already uses"):
            state.add_website(demo_website())

    async def test_large_site(self, http: aiohttp.ClientSession) -> None:
        state = SandboxState()
        state.add_website(
            large_website(
                "vk_big", templates=12, questions=9, articles=40, faqs=7
            )
        )
        async with Sandbox(state=state, api_key="vk_big") as sandbox:
            status, body, _ = await Api(http, sandbox).call("GET", "/init")

        data = body["data"]
        assert status == 200
        assert len(data["templates"]) == 12
        assert {len(t["questions"]) for t in data["templates"]} == {9}
        assert len(data["articles"]) == 40
        assert len(data["faqs"]) == 7
        assert len(data["articles"][0]["content"]) > 15_000

    def test_large_site_is_deterministic(self) -> None:
        first = large_website("k", templates=3, questions=4, articles=2)
        second = large_website("k", templates=3, questions=4, articles=2)

        assert first == second
        assert demo_website() == demo_website()


# POST /tickets


class TestCreateTicket:
    async def test_json(self, sandbox: Sandbox, api: Api) -> None:
        status, body = await api.create(bug_report())

        assert status == 201
        assert body == {
            "success": True,
            "data": {"email_limit_reached": False, "warning": None},
        }
        (mail,) = sandbox.outbox
        assert mail.to == REPORTER
        assert mail.kind == "ticket-created"
        assert len(mail.token) >= 32
        assert mail.token in mail.link
        assert mail.link.startswith(sandbox.base_url)
        (ticket,) = sandbox.state.all_tickets()
        assert ticket.id.startswith("tick_")
        assert ticket.status == "Open"
        assert ticket.priority == "Low"
        assert ticket.messages[0].content == "<p>I see a blank page</p>"
        assert [a.question_label for a in ticket.answers] == [
            "Describe the issue",
            "Browser",
            "Does it happen every time?",
            "When did it start?",
        ]
        assert ticket.answers[2].answer is True

    async def test_title_opens_thread_without_textarea(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        payload = {
            "email": REPORTER,
            "title": "Dark <mode>",
            "templateId": "tpl_feature",
            "answers": {"q_idea": "Dark mode", "q_contact_ok": False},
        }
        status, _ = await api.create(payload)

        assert status == 201
        (ticket,) = sandbox.state.all_tickets()
        assert ticket.messages[0].content == "<p>Dark &lt;mode&gt;</p>"

    @pytest.mark.parametrize(
        ("changes", "code", "words"),
        [
            ({"email": "not-an-email"}, "validation-error", ["email"]),
            ({"email": None}, "validation-error", ["email"]),
            ({"email": "a b@example.com"}, "validation-error", ["email"]),
            ({"title": "   "}, "validation-error", ["title"]),
            ({"title": 5}, "validation-error", ["title"]),
            ({"templateId": "tpl_nope"}, "template-not-found", ["tpl_nope"]),
            ({"templateId": None}, "validation-error", ["templateId"]),
            ({"answers": []}, "validation-error", ["answers"]),
            (
                {"answers": {"q_browser": "chrome"}},
                "validation-error",
                ["Describe the issue", "required"],
            ),
            (
                {"answers": {"q_description": "x", "q_browser": "lynx"}},
                "validation-error",
                ["Browser", "chrome"],
            ),
            (
                {"answers": {"q_description": 3, "q_browser": "chrome"}},
                "validation-error",
                ["Describe the issue", "text"],
            ),
            (
                {
                    "answers": {
                        "q_description": "x",
                        "q_browser": "chrome",
                        "q_reproducible": "yes",
                    }
                },
                "validation-error",
                ["Does it happen every time?", "true or false"],
            ),
            (
                {
                    "answers": {
                        "q_description": "x",
                        "q_browser": "chrome",
                        "q_first_seen": "01/03/2026",
                    }
                },
                "validation-error",
                ["When did it start?", "YYYY-MM-DD"],
            ),
            (
                {
                    "answers": {
                        "q_description": "x",
                        "q_browser": "chrome",
                        "q_first_seen": "2026-02-30",
                    }
                },
                "validation-error",
                ["When did it start?"],
            ),
            (
                {
                    "answers": {
                        "q_description": "x",
                        "q_browser": "chrome",
                        "q_nope": "?",
                    }
                },
                "validation-error",
                ["q_nope", "Bug Report"],
            ),
            (
                {
                    "answers": {
                        "q_description": "x",
                        "q_browser": "chrome",
                        "q_screenshot": FILE_MARKER,
                    }
                },
                "validation-error",
                ["Screenshot", "multipart"],
            ),
        ],
    )
    async def test_json_validation(
        self,
        sandbox: Sandbox,
        api: Api,
        changes: Json,
        code: str,
        words: list[str],
    ) -> None:
        status, body = await api.create(bug_report(**changes))

        assert status == 400
        assert_error(body, code, *words)
        assert sandbox.state.all_tickets() == []
        assert sandbox.outbox == []

    async def test_payload_must_be_an_object(self, api: Api) -> None:
        status, body, _ = await api.call("POST", "/tickets", json=[1, 2])

        assert status == 400
        assert_error(body, "validation-error", "JSON object")

    @pytest.mark.parametrize("raw", [b"{not json", b"", b"  "])
    async def test_invalid_json(self, api: Api, raw: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        status, body, _ = await api.call(
            "POST", "/tickets", data=raw, headers=headers
        )

        assert status == 400
        assert_error(body, "invalid-json")

    async def test_unsupported_content_type(self, api: Api) -> None:
        status, body, _ = await api.call(
            "POST", "/tickets", data="hello", headers={"Content-Type": "a/b"}
        )

        assert status == 400
        assert_error(body, "unsupported-content-type", "a/b")

    async def test_multipart(
        self, sandbox: Sandbox, api: Api, http: aiohttp.ClientSession
    ) -> None:
        status, body = await api.create_multipart(
            [data_part(billing_data()), invoice_part()]
        )

        assert status == 201, body
        (ticket,) = sandbox.state.all_tickets()
        invoice = ticket.answers[3]
        assert invoice.answer == "invoice.pdf"
        (attachment,) = invoice.attachments
        assert attachment.id.startswith("att_")
        assert attachment.original_filename == "invoice.pdf"
        assert attachment.mime_type == "application/pdf"
        assert attachment.size == len(PDF)
        assert attachment.sha256 == hashlib.sha256(PDF).hexdigest()

        token = sandbox.state.latest_token(REPORTER)
        assert token is not None
        _, thread = await api.thread(token)
        shown = thread["data"]["answers"][3]
        assert shown["answer"] == "invoice.pdf"
        (item,) = shown["attachments"]
        assert set(item) == {"id", "url", "original_filename", "mime_type"}
        async with http.get(item["url"]) as response:
            assert response.status == 200
            assert response.content_type == "application/pdf"
            assert await response.read() == PDF

    async def test_multipart_guesses_mime_type(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        part = ("files[q_invoice]", PDF, "scan.png", None)
        status, _ = await api.create_multipart(
            [data_part(billing_data()), part]
        )

        assert status == 201
        (ticket,) = sandbox.state.all_tickets()
        assert ticket.answers[3].attachments[0].mime_type == "image/png"

    @pytest.mark.parametrize(
        ("parts", "code", "words"),
        [
            ([invoice_part()], "invalid-multipart", ["data"]),
            (
                [data_part("{oops"), invoice_part()],
                "invalid-json",
                ["data"],
            ),
            (
                [data_part(billing_data()), data_part(billing_data())],
                "invalid-multipart",
                ["twice"],
            ),
            (
                [data_part(billing_data())],
                "validation-error",
                ["Invoice (PDF)", "files[q_invoice]"],
            ),
            (
                [data_part(billing_data(q_invoice=None)), invoice_part()],
                "validation-error",
                ["Invoice (PDF)", FILE_MARKER],
            ),
            (
                [
                    data_part(billing_data(q_invoice="invoice.pdf")),
                    invoice_part(),
                ],
                "validation-error",
                ["Invoice (PDF)", FILE_MARKER],
            ),
            (
                [
                    data_part(billing_data()),
                    invoice_part(),
                    invoice_part("files[q_topic]"),
                ],
                "validation-error",
                ["Topic", "does not take a file"],
            ),
            (
                [
                    data_part(billing_data()),
                    invoice_part(),
                    invoice_part("files[q_ghost]"),
                ],
                "validation-error",
                ["files[q_ghost]", "Billing Question"],
            ),
            (
                [
                    data_part(billing_data()),
                    invoice_part(),
                    invoice_part(),
                ],
                "invalid-multipart",
                ["twice"],
            ),
            (
                [
                    data_part(billing_data()),
                    ("files[q_invoice]", PDF, None, "application/pdf"),
                ],
                "invalid-multipart",
                ["filename"],
            ),
            (
                [
                    data_part(billing_data()),
                    invoice_part(),
                    ("comment", "hi", None, None),
                ],
                "invalid-multipart",
                ["comment"],
            ),
        ],
        ids=[
            "no-data",
            "data-not-json",
            "data-twice",
            "marker-without-file",
            "file-without-marker",
            "file-with-other-answer",
            "file-for-select",
            "file-for-unknown-question",
            "file-twice",
            "file-without-filename",
            "unknown-part",
        ],
    )
    async def test_multipart_validation(
        self,
        sandbox: Sandbox,
        api: Api,
        parts: list[Part],
        code: str,
        words: list[str],
    ) -> None:
        status, body = await api.create_multipart(parts)

        assert status == 400
        assert_error(body, code, *words)
        assert sandbox.state.all_tickets() == []

    @pytest.mark.parametrize(
        ("content_type", "raw"),
        [
            ("multipart/form-data; boundary=xyz", b"not multipart at all"),
            ("multipart/form-data; boundary=xyz", b""),
            ("multipart/form-data", b"--xyz\r\n\r\n{}\r\n--xyz--\r\n"),
            (
                "multipart/form-data; boundary=xyz",
                b"--xyz\r\nno colon\r\n\r\n{}\r\n--xyz--\r\n",
            ),
            (
                "multipart/form-data; boundary=xyz",
                b"--xyz\r\nContent-Disposition: form-data; name=data\r\n"
                b"\r\n{}",
            ),
        ],
        ids=[
            "no-boundary-in-body",
            "empty",
            "no-boundary-param",
            "bad-part-header",
            "unterminated",
        ],
    )
    async def test_malformed_multipart(
        self, api: Api, content_type: str, raw: bytes
    ) -> None:
        headers = {"Content-Type": content_type}
        status, body, _ = await api.call(
            "POST", "/tickets", data=raw, headers=headers
        )

        assert status == 400
        assert_error(body, "invalid-multipart")

    async def test_large_upload_is_streamed(
        self, sandbox: Sandbox, api: Api, http: aiohttp.ClientSession
    ) -> None:
        chunk = bytes(range(256)) * 4096
        count = 50
        expected = hashlib.sha256()
        for _ in range(count):
            expected.update(chunk)

        async def generate() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield chunk

        part = ("files[q_invoice]", generate(), "big.bin", "application/zip")
        status, body = await api.create_multipart(
            [data_part(billing_data()), part]
        )

        assert status == 201, body
        (ticket,) = sandbox.state.all_tickets()
        (attachment,) = ticket.answers[3].attachments
        assert attachment.size == count * len(chunk) == 50 * MIB
        assert attachment.sha256 == expected.hexdigest()
        assert attachment.content is None
        assert attachment.stored is False
        url = f"{sandbox.base_url}/_sandbox/files/{attachment.id}"
        async with http.get(url) as response:
            body = await response.json()
        assert response.status == 404
        assert_error(body, "file-not-stored", "big.bin")

    async def test_keep_file_bytes(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(keep_file_bytes=10) as sandbox:
            status, _ = await Api(http, sandbox).create_multipart(
                [data_part(billing_data()), invoice_part()]
            )
            (ticket,) = sandbox.state.all_tickets()

        assert status == 201
        (attachment,) = ticket.answers[3].attachments
        assert attachment.size == len(PDF)
        assert attachment.content is None


# GET /ticket


class TestThread:
    async def test_vendor_shape(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        status, body = await api.thread(token)

        assert status == 200
        data = body["data"]
        assert set(data) == {
            "id",
            "title",
            "status",
            "priority",
            "messages",
            "answers",
        }
        assert data["id"].startswith("tick_")
        assert data["title"] == "Cannot log in"
        assert data["status"] == {"label": "Open"}
        assert data["priority"] == {"label": "Low"}
        (message,) = data["messages"]
        assert set(message) == {
            "id",
            "content",
            "author_type",
            "created_at",
            "attachments",
        }
        assert message["id"].startswith("msg_")
        assert message["author_type"] == "reporter"
        assert message["content"] == "<p>I see a blank page</p>"
        assert message["created_at"].endswith("Z")
        assert len(message["created_at"]) == len("2026-03-08T10:00:00Z")
        answer = data["answers"][1]
        assert answer == {
            "id": answer["id"],
            "question_label": "Browser",
            "answer": "chrome",
            "attachments": [],
        }
        assert answer["id"].startswith("ans_")

    async def test_integration_shape(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with Sandbox(shape="integration") as sandbox:
            api = Api(http, sandbox)
            token = await api.new_ticket()
            sandbox.state.agent_reply(sandbox.state.all_tickets()[0], "Hi")
            status, body = await api.thread(token)

        data = body["data"]
        assert status == 200
        assert "title" not in data
        assert data["subject"] == "Cannot log in"
        assert data["token"] == token
        authors = [
            (m["author_type"], m["author_name"]) for m in data["messages"]
        ]
        assert authors == [
            ("reporter", REPORTER),
            ("agent", "Sam from Support"),
        ]

    @pytest.mark.parametrize("token", ["", "nope", "x" * 43])
    async def test_invalid_token(self, api: Api, token: str) -> None:
        await api.new_ticket()
        status, body = await api.thread(token)

        assert status == 401
        assert_error(body, "invalid-token")

    async def test_missing_token(self, api: Api) -> None:
        status, body, _ = await api.call("GET", "/ticket")

        assert status == 401
        assert_error(body, "invalid-token", "token")

    async def test_expired_link_emails_a_new_one(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        token = await api.new_ticket()
        sandbox.state.expire_token(token)

        status, body = await api.thread(token)

        assert status == 410
        assert_error(body, "ticket-link-expired", "new link")
        first, second = sandbox.outbox
        assert second.kind == "new-link"
        assert second.to == REPORTER
        assert second.ticket_id == first.ticket_id
        assert second.token != token
        assert sandbox.state.latest_token(REPORTER) == second.token
        assert (await api.thread(second.token))[0] == 200
        assert (await api.thread(token))[0] == 410

    async def test_token_ttl(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(token_ttl=3600) as sandbox:
            api = Api(http, sandbox)
            token = await api.new_ticket()
            fresh = (await api.thread(token))[0]
            sandbox.clock.advance(3601)
            stale = (await api.thread(token))[0]
            renewed = sandbox.state.latest_token(REPORTER)
            assert renewed is not None
            again = (await api.thread(renewed))[0]

        assert (fresh, stale, again) == (200, 410, 200)

    async def test_agent_helpers(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        state = sandbox.state
        (ticket,) = state.tickets_for(REPORTER.upper())
        state.agent_reply(ticket.id, "<p>Try again?</p>", author_name="Bo")
        state.system_message(ticket, "Status changed to Pending")
        state.set_status(ticket.id, "Pending")
        state.set_priority(ticket.id, "High")

        _, body = await api.thread(token)

        data = body["data"]
        assert data["status"] == {"label": "Pending"}
        assert data["priority"] == {"label": "High"}
        assert [m["author_type"] for m in data["messages"]] == [
            "reporter",
            "agent",
            "system",
        ]
        assert data["messages"][1]["content"] == "<p>Try again?</p>"
        assert state.ticket_for_token(token) is ticket
        assert state.tickets_for("nobody@example.com") == []
        with pytest.raises(KeyError, match="no ticket"):
            state.agent_reply("tick_missing", "hello")
        with pytest.raises(KeyError, match="never issued"):
            state.expire_token("nope")

    async def test_expire_ticket_tokens(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        token = await api.new_ticket()
        (ticket,) = sandbox.state.all_tickets()

        assert sandbox.state.expire_ticket_tokens(ticket) == [token]
        assert (await api.thread(token))[0] == 410


# POST /ticket/messages


class TestReply:
    async def test_json(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        status, body, _ = await api.call(
            "POST",
            "/ticket/messages",
            params={"token": token},
            json={"content": "Thanks, I will try clearing my cache."},
        )

        assert status == 201
        data = body["data"]
        assert set(data) == {"id", "content", "author_type", "created_at"}
        assert data["content"] == "Thanks, I will try clearing my cache."
        assert data["author_type"] == "reporter"
        _, thread = await api.thread(token)
        assert thread["data"]["messages"][-1]["id"] == data["id"]

    async def test_integration_shape(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with Sandbox(shape="integration") as sandbox:
            api = Api(http, sandbox)
            token = await api.new_ticket()
            status, body, _ = await api.call(
                "POST",
                "/ticket/messages",
                params={"token": token},
                json={"content": "More details"},
            )

        assert status == 201
        assert body["data"]["author_name"] == REPORTER
        assert body["data"]["attachments"] == []

    async def test_multipart_with_files(
        self, sandbox: Sandbox, api: Api, http: aiohttp.ClientSession
    ) -> None:
        token = await api.new_ticket()
        parts = [
            data_part(json.dumps({"content": "Two logs attached"})),
            ("files", b"log one", "one.log", "text/plain"),
            ("files", b"log two!", "two.log", "text/plain"),
        ]
        status, body, _ = await api.call(
            "POST",
            "/ticket/messages",
            params={"token": token},
            data=multipart(parts),
        )

        assert status == 201, body
        _, thread = await api.thread(token)
        attachments = thread["data"]["messages"][-1]["attachments"]
        assert [a["original_filename"] for a in attachments] == [
            "one.log",
            "two.log",
        ]
        async with http.get(attachments[1]["url"]) as response:
            assert await response.read() == b"log two!"
        stored = sandbox.state.files[attachments[0]["id"]]
        assert stored.sha256 == hashlib.sha256(b"log one").hexdigest()

    @pytest.mark.parametrize(
        ("kwargs", "code"),
        [
            ({"json": {"content": ""}}, "validation-error"),
            ({"json": {"content": "  \n "}}, "validation-error"),
            ({"json": {}}, "validation-error"),
            ({"json": {"content": 7}}, "validation-error"),
            ({"json": ["hi"]}, "validation-error"),
            (
                {
                    "data": b"{",
                    "headers": {"Content-Type": "application/json"},
                },
                "invalid-json",
            ),
            (
                {"data": multipart([("files", b"x", "x.txt", None)])},
                "invalid-multipart",
            ),
            (
                {
                    "data": multipart(
                        [
                            data_part('{"content": "hi"}'),
                            ("attachment", b"x", "x.txt", None),
                        ]
                    )
                },
                "invalid-multipart",
            ),
            (
                {"data": multipart([data_part('{"content": ""}')])},
                "validation-error",
            ),
        ],
        ids=[
            "empty",
            "blank",
            "missing",
            "not-text",
            "not-object",
            "bad-json",
            "no-data-part",
            "unknown-part",
            "empty-multipart",
        ],
    )
    async def test_validation(
        self, sandbox: Sandbox, api: Api, kwargs: Json, code: str
    ) -> None:
        token = await api.new_ticket()
        status, body, _ = await api.call(
            "POST", "/ticket/messages", params={"token": token}, **kwargs
        )

        assert status == 400
        assert_error(body, code)
        assert len(sandbox.state.all_tickets()[0].messages) == 1

    async def test_token_errors(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        reply: Json = {"json": {"content": "hello"}}
        bad = await api.call(
            "POST", "/ticket/messages", params={"token": "bad"}, **reply
        )
        sandbox.state.expire_token(token)
        expired = await api.call(
            "POST", "/ticket/messages", params={"token": token}, **reply
        )

        assert bad[0] == 401
        assert_error(bad[1], "invalid-token")
        assert expired[0] == 410
        assert_error(expired[1], "ticket-link-expired")
        assert [m.kind for m in sandbox.outbox] == [
            "ticket-created",
            "new-link",
        ]


# GET /articles/{slug}


class TestArticles:
    async def test_vendor(self, api: Api) -> None:
        status, body, _ = await api.call("GET", "/articles/getting-started")

        assert status == 200
        assert body["data"] == {
            "id": "art_getting_started",
            "title": "Getting Started",
            "slug": "getting-started",
            "content": body["data"]["content"],
        }
        assert body["data"]["content"].startswith("<h1>")

    async def test_integration(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(shape="integration") as sandbox:
            status, body, _ = await Api(http, sandbox).call(
                "GET", "/articles/reset-password"
            )

        assert status == 200
        assert body["data"]["category"] == "Account"
        assert body["data"]["type"] == "article"

    async def test_unknown_slug(self, api: Api) -> None:
        status, body, _ = await api.call("GET", "/articles/no-such-thing")

        assert status == 404
        assert_error(body, "article-not-found", "no-such-thing")


# Routing, email limit, request log.


class TestRouting:
    @pytest.mark.parametrize(
        "path", [f"{API_PREFIX}/nope", f"{API_PREFIX}/", "/elsewhere"]
    )
    async def test_not_found(
        self, sandbox: Sandbox, http: aiohttp.ClientSession, path: str
    ) -> None:
        async with http.get(sandbox.base_url + path) as response:
            body = await response.json()

        assert response.status == 404
        assert_error(body, "not-found", path)

    async def test_wrong_method(self, api: Api) -> None:
        status, body, response = await api.call("DELETE", "/init")

        assert status == 405
        assert_error(body, "method-not-allowed", "DELETE", "GET")
        assert "GET" in response.headers["Allow"]

    async def test_wrong_method_on_tickets(self, api: Api) -> None:
        status, body, _ = await api.call("GET", "/tickets")

        assert status == 405
        assert_error(body, "method-not-allowed", "POST")


class TestEmailLimit:
    async def test_limit(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(email_limit=2) as sandbox:
            api = Api(http, sandbox)
            answers = [(await api.create(bug_report()))[1] for _ in range(3)]
            other = (await api.create(bug_report(email="bo@example.com")))[1]
            outbox_full = len(sandbox.outbox)
            tickets = len(sandbox.state.all_tickets())
            sandbox.clock.advance(3601)
            later = (await api.create(bug_report()))[1]

        flags = [a["data"]["email_limit_reached"] for a in answers]
        assert flags == [False, False, True]
        assert isinstance(answers[2]["data"]["warning"], str)
        assert "limit" in answers[2]["data"]["warning"]
        assert answers[0]["data"]["warning"] is None
        assert other["data"]["email_limit_reached"] is False
        assert later["data"]["email_limit_reached"] is False
        assert outbox_full == 3
        assert tickets == 4

    async def test_limit_applies_to_new_links(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with Sandbox(email_limit=1) as sandbox:
            api = Api(http, sandbox)
            token = await api.new_ticket()
            sandbox.state.expire_token(token)
            status, _ = await api.thread(token)
            kinds = [mail.kind for mail in sandbox.outbox]

        assert status == 410
        assert kinds == ["ticket-created"]

    async def test_no_limit(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(email_limit=None, rate_limit_mode=None) as sandbox:
            api = Api(http, sandbox)
            for _ in range(25):
                await api.create(bug_report())
            sent = len(sandbox.outbox)

        assert sent == 25


class TestRequestLog:
    async def test_records(self, sandbox: Sandbox, api: Api) -> None:
        await api.call("GET", "/init")
        await api.call("GET", "/init", key="wrong")
        await api.call("GET", "/articles/nope")
        await api.call("GET", "/missing")
        await api.call("GET", "/_sandbox/outbox", admin=True)

        records = sandbox.requests
        assert [(r.endpoint, r.status) for r in records] == [
            ("init", 200),
            ("init", 401),
            ("article", 404),
            (None, 404),
        ]
        first = records[0]
        assert first.method == "GET"
        assert first.path == f"{API_PREFIX}/init"
        assert first.headers["x-api-key"] == DEMO_API_KEY
        assert first.fault is None
        assert len(sandbox.state.requests_for("init")) == 2

        sandbox.clear_requests()
        assert sandbox.requests == []

    async def test_query_is_recorded(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        await api.thread(token)

        record = sandbox.state.requests_for("get_ticket")[0]
        assert record.query == {"token": token}
        assert record.time > 0


# Control endpoints.


class TestAdmin:
    async def test_outbox_and_tickets(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        token = await api.new_ticket()
        await api.new_ticket("bo@example.com")

        _, outbox, _ = await api.call("GET", "/_sandbox/outbox", admin=True)
        _, mine, _ = await api.call(
            "GET", "/_sandbox/outbox", admin=True, params={"to": REPORTER}
        )
        _, tickets, _ = await api.call(
            "GET", "/_sandbox/tickets", admin=True, params={"email": REPORTER}
        )
        _, everything, _ = await api.call(
            "GET", "/_sandbox/tickets", admin=True
        )

        assert len(outbox["data"]) == 2
        assert [m["token"] for m in mine["data"]] == [token]
        assert mine["data"][0]["kind"] == "ticket-created"
        assert len(everything["data"]) == 2
        (ticket,) = tickets["data"]
        assert ticket["reporter_email"] == REPORTER
        assert ticket["tokens"] == [token]
        assert ticket["template_id"] == "tpl_bug"

        status, cleared, _ = await api.call(
            "DELETE", "/_sandbox/outbox", admin=True
        )
        assert status == 200
        assert cleared["data"] == {"cleared": True}
        assert sandbox.outbox == []

    async def test_drive_a_ticket(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        ticket_id = sandbox.state.all_tickets()[0].id
        base = f"/_sandbox/tickets/{ticket_id}"

        reply = await api.call(
            "POST",
            f"{base}/agent-reply",
            admin=True,
            json={"content": "Fixed!", "author_name": "Kim"},
        )
        system = await api.call(
            "POST",
            f"{base}/system-message",
            admin=True,
            json={"content": "Ticket resolved"},
        )
        patched = await api.call(
            "PATCH",
            base,
            admin=True,
            json={"status": "Resolved", "priority": "Medium"},
        )
        shown = await api.call("GET", base, admin=True)

        assert reply[0] == system[0] == 201
        assert reply[1]["data"]["id"].startswith("msg_")
        assert patched[0] == 200
        assert patched[1]["data"]["status"] == "Resolved"
        messages = shown[1]["data"]["messages"]
        assert [(m["author_type"], m["author_name"]) for m in messages] == [
            ("reporter", REPORTER),
            ("agent", "Kim"),
            ("system", "Acme Support"),
        ]
        _, thread = await api.thread(token)
        assert thread["data"]["status"] == {"label": "Resolved"}
        assert thread["data"]["priority"] == {"label": "Medium"}

    async def test_expire(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        other = await api.new_ticket("bo@example.com")
        ticket_id = sandbox.state.tickets_for(REPORTER)[0].id

        by_token = await api.call(
            "POST", f"/_sandbox/tokens/{other}/expire", admin=True
        )
        by_ticket = await api.call(
            "POST", f"/_sandbox/tickets/{ticket_id}/expire", admin=True
        )

        assert by_token[1]["data"] == {"expired": [other]}
        assert by_ticket[1]["data"] == {"expired": [token]}
        assert (await api.thread(token))[0] == 410
        assert (await api.thread(other))[0] == 410

    async def test_requests_and_clock(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        await api.call("GET", "/init")
        await api.call("GET", "/articles/getting-started")

        _, logged, _ = await api.call("GET", "/_sandbox/requests", admin=True)
        _, only, _ = await api.call(
            "GET",
            "/_sandbox/requests",
            admin=True,
            params={"endpoint": "article"},
        )
        await api.call("DELETE", "/_sandbox/requests", admin=True)
        before = sandbox.clock.now()
        _, advanced, _ = await api.call(
            "POST", "/_sandbox/clock/advance", admin=True, json={"seconds": 90}
        )
        _, clock, _ = await api.call("GET", "/_sandbox/clock", admin=True)

        assert [r["endpoint"] for r in logged["data"]] == ["init", "article"]
        assert logged["data"][0]["status"] == 200
        assert logged["data"][0]["headers"]["X-Api-Key"] == DEMO_API_KEY
        assert [r["endpoint"] for r in only["data"]] == ["article"]
        assert sandbox.requests == []
        assert advanced["data"]["epoch"] >= before + 90
        assert clock["data"]["time_scale"] == 1.0
        assert clock["data"]["now"].endswith("Z")

    async def test_reset_and_health(self, sandbox: Sandbox, api: Api) -> None:
        await api.new_ticket()

        _, health, _ = await api.call("GET", "/_sandbox/health", admin=True)
        status, _, _ = await api.call("POST", "/_sandbox/reset", admin=True)

        assert health["data"]["status"] == "ok"
        assert health["data"]["shape"] == "vendor"
        assert status == 200
        assert sandbox.state.all_tickets() == []
        assert sandbox.outbox == []
        assert sandbox.state.websites

    async def test_view_page(
        self, sandbox: Sandbox, api: Api, http: aiohttp.ClientSession
    ) -> None:
        await api.create(bug_report(title="<script>x</script>"))
        mail = sandbox.outbox[0]

        async with http.get(mail.link) as response:
            page = await response.text()
        sandbox.state.expire_token(mail.token)
        async with http.get(mail.link) as response:
            expired = response.status
        async with http.get(f"{sandbox.base_url}/_sandbox/view") as response:
            missing = response.status

        assert response.content_type == "text/html"
        assert "&lt;script&gt;" in page
        assert "<script>" not in page
        assert "I see a blank page" in page
        assert (expired, missing) == (410, 404)

    @pytest.mark.parametrize(
        ("method", "path", "kwargs", "status", "code"),
        [
            (
                "GET",
                "/_sandbox/tickets/tick_nope",
                {},
                404,
                "ticket-not-found",
            ),
            (
                "POST",
                "/_sandbox/tokens/nope/expire",
                {},
                404,
                "token-not-found",
            ),
            ("GET", "/_sandbox/files/att_nope", {}, 404, "file-not-found"),
            (
                "POST",
                "/_sandbox/clock/advance",
                {"json": {"seconds": -1}},
                400,
                "validation-error",
            ),
            (
                "POST",
                "/_sandbox/clock/advance",
                {"data": b"{", "headers": {"Content-Type": "x"}},
                400,
                "invalid-json",
            ),
            (
                "POST",
                "/_sandbox/clock/advance",
                {"json": [1]},
                400,
                "validation-error",
            ),
        ],
    )
    async def test_errors(
        self,
        api: Api,
        method: str,
        path: str,
        kwargs: Json,
        status: int,
        code: str,
    ) -> None:
        got, body, _ = await api.call(method, path, admin=True, **kwargs)

        assert got == status
        assert_error(body, code)

    async def test_agent_reply_needs_content(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        await api.new_ticket()
        ticket_id = sandbox.state.all_tickets()[0].id

        status, body, _ = await api.call(
            "POST",
            f"/_sandbox/tickets/{ticket_id}/agent-reply",
            admin=True,
            json={"content": " "},
        )

        assert status == 400
        assert_error(body, "validation-error", "content")


# The sandbox object itself.


class TestSandbox:
    async def test_lifecycle(self) -> None:
        sandbox = Sandbox()
        with pytest.raises(RuntimeError, match="not running"):
            _ = sandbox.base_url

        await sandbox.start()
        try:
            assert sandbox.running
            assert sandbox.base_url.startswith("http://127.0.0.1:")
            assert sandbox.api_url == sandbox.base_url + API_PREFIX
            assert sandbox.port != 0
            assert str(sandbox.port) in repr(sandbox)
            with pytest.raises(RuntimeError, match="already running"):
                await sandbox.start()
        finally:
            await sandbox.stop()

        assert not sandbox.running
        assert "not running" in repr(sandbox)

    async def test_custom_key_and_no_seed(
        self, http: aiohttp.ClientSession
    ) -> None:
        async with Sandbox(api_key="vk_mine") as sandbox:
            status, _, _ = await Api(http, sandbox).call("GET", "/init")
        async with Sandbox(seed=False) as empty:
            refused, _, _ = await Api(http, empty).call("GET", "/init")

        assert sandbox.api_key == "vk_mine"
        assert status == 200
        assert refused == 401

    def test_bad_settings(self) -> None:
        with pytest.raises(ValueError, match="shape"):
            Sandbox(shape="xml")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="time_scale"):
            Sandbox(time_scale=0)

    async def test_time_scale(self) -> None:
        async with Sandbox(time_scale=3600) as sandbox:
            start = sandbox.clock.now()
            await asyncio.sleep(0.05)
            elapsed = sandbox.clock.now() - start

        assert elapsed >= 0.05 * 3600
        assert sandbox.clock.to_real(3600) == 1.0


# Rate limits.


def test_rolling_log() -> None:
    log = RollingLog(3, 60)

    assert [log.hit(t).allowed for t in (0, 1, 2, 3)] == [
        True,
        True,
        True,
        False,
    ]
    refused = log.hit(59.5)
    assert refused.allowed is False
    assert refused.remaining == 0
    assert refused.retry_after == pytest.approx(0.5)
    assert log.hit(60).allowed is True
    assert log.hit(60.5).allowed is False
    assert log.hit(61).allowed is True


def test_rolling_log_ignores_refused_requests() -> None:
    log = RollingLog(3, 60)
    for _ in range(3):
        log.hit(0)
    refused = [log.hit(30).allowed for _ in range(5)]

    assert refused == [False] * 5
    assert [log.hit(60).allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_rolling_log_can_count_refused_requests() -> None:
    log = RollingLog(3, 60, count_rejected=True)
    for _ in range(3):
        log.hit(0)
    log.hit(30)
    log.hit(30)

    assert log.hit(60).allowed is True
    refused = log.hit(60)
    assert refused.allowed is False
    assert refused.retry_after == pytest.approx(30)


def test_fixed_window_allows_a_double_burst_at_the_boundary() -> None:
    window = FixedWindow(3, 60)
    before = [window.hit(t).allowed for t in (57, 58, 59, 59.5)]
    refused = window.hit(59.75)
    after = [window.hit(60).allowed for _ in range(4)]

    assert before == [True, True, True, False]
    assert refused.retry_after == pytest.approx(0.25)
    assert refused.reset_after == pytest.approx(0.25)
    assert after == [True, True, True, False]


def test_token_bucket() -> None:
    bucket = TokenBucket(3, 60)
    burst = [bucket.hit(0) for _ in range(4)]

    assert [d.allowed for d in burst] == [True, True, True, False]
    assert [d.remaining for d in burst[:3]] == [2, 1, 0]
    assert burst[3].retry_after == pytest.approx(20)
    assert bucket.hit(10).retry_after == pytest.approx(10)
    assert bucket.hit(20).allowed is True
    assert bucket.hit(20).allowed is False
    assert [bucket.hit(200).allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_sliding_counter() -> None:
    counter = SlidingCounter(10, 60)
    first = [counter.hit(30).allowed for _ in range(11)]
    at_boundary = counter.hit(60)
    half_way = [counter.hit(90).allowed for _ in range(6)]

    assert first == [True] * 10 + [False]
    # The whole previous window still weighs in at its end.
    assert at_boundary.allowed is False
    assert at_boundary.retry_after == pytest.approx(6)
    assert half_way == [True] * 5 + [False]


def test_sliding_counter_forgets_after_an_idle_window() -> None:
    counter = SlidingCounter(2, 60)
    counter.hit(0)
    counter.hit(0)

    assert counter.hit(1).allowed is False
    assert [counter.hit(150).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]


def test_rate_limiter_settings() -> None:
    limiter = RateLimiter()

    assert limiter.limits == dict(DEFAULT_RATE_LIMITS)
    assert limiter.hit("key", "article", 0) is None
    with pytest.raises(ValueError, match="rate_limit_mode"):
        RateLimiter(mode="leaky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown endpoint"):
        limiter.set_limit("tickets", 5)
    with pytest.raises(ValueError, match="positive integer"):
        limiter.set_limit("init", 0)
    with pytest.raises(ValueError, match="period"):
        limiter.period = 0
    limiter.mode = None
    assert limiter.hit("key", "init", 0) is None


async def statuses(api: Api, path: str, count: int, **kw: Any) -> list[int]:
    return [(await api.call("GET", path, **kw))[0] for _ in range(count)]


def align_to_window(sandbox: Sandbox, period: float = 60.0) -> None:
    """Move the clock just past the start of a window, for fixed modes."""
    now = sandbox.clock.now()
    sandbox.clock.advance(period - now % period + 1)


class TestRateLimits:
    async def test_documented_limits(self, sandbox: Sandbox, api: Api) -> None:
        answers = []
        for _ in range(11):
            answers.append(
                await api.call("POST", "/tickets", json=bug_report())
            )

        assert [status for status, _, _ in answers] == [201] * 10 + [429]
        first = answers[0][2].headers
        assert first["X-RateLimit-Limit"] == "10"
        assert first["X-RateLimit-Remaining"] == "9"
        assert answers[9][2].headers["X-RateLimit-Remaining"] == "0"
        _, body, refused = answers[10]
        assert_error(body, "rate-limit-exceeded", "10 per minute")
        assert refused.headers["Retry-After"] == "60"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert 0 < int(refused.headers["X-RateLimit-Reset"]) <= 60
        assert len(sandbox.state.all_tickets()) == 10

        status, _, init = await api.call("GET", "/init")
        assert status == 200
        assert init.headers["X-RateLimit-Limit"] == "30"
        article = await statuses(api, "/articles/getting-started", 40)
        assert article == [200] * 40
        _, _, response = await api.call("GET", "/articles/getting-started")
        assert "X-RateLimit-Limit" not in response.headers

    async def test_thread_limit(self, sandbox: Sandbox, api: Api) -> None:
        token = await api.new_ticket()
        got = [(await api.thread(token))[0] for _ in range(31)]

        assert got == [200] * 30 + [429]

    async def test_limits_are_per_key(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.state.add_website(demo_website("vk_second"))
        sandbox.rate_limiter.set_limit("init", 2)

        mine = await statuses(api, "/init", 3)
        theirs = await statuses(api, "/init", 3, key="vk_second")

        assert mine == theirs == [200, 200, 429]

    async def test_errors_before_the_limit_cost_nothing(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.rate_limiter.set_limit("init", 1)

        refused = await statuses(api, "/init", 3, key="vk_wrong")
        allowed = await statuses(api, "/init", 2)

        assert refused == [401, 401, 401]
        assert allowed == [200, 429]

    @pytest.mark.parametrize(
        ("mode", "after_one_period"),
        [
            ("rolling", 200),
            ("fixed", 200),
            ("token_bucket", 200),
            ("sliding_counter", 429),
        ],
    )
    async def test_modes(
        self,
        http: aiohttp.ClientSession,
        mode: RateLimitMode,
        after_one_period: int,
    ) -> None:
        async with Sandbox(
            rate_limit_mode=mode, rate_limits={"init": 3}
        ) as sb:
            api = Api(http, sb)
            align_to_window(sb)
            burst = await statuses(api, "/init", 4)
            sb.clock.advance(60)
            later = await statuses(api, "/init", 1)
            sb.clock.advance(60)
            much_later = await statuses(api, "/init", 1)

        assert burst == [200, 200, 200, 429]
        assert later == [after_one_period]
        assert much_later == [200]

    async def test_retry_after_is_in_real_seconds(
        self, http: aiohttp.ClientSession
    ) -> None:
        options: Json = {"time_scale": 60, "rate_limits": {"init": 2}}
        async with Sandbox(**options) as sandbox:
            api = Api(http, sandbox)
            burst = await statuses(api, "/init", 2)
            status, body, refused = await api.call("GET", "/init")
            wait = int(refused.headers["Retry-After"])
            await asyncio.sleep(wait)
            after = await statuses(api, "/init", 1)

        assert burst == [200, 200]
        assert status == 429
        assert_error(body, "rate-limit-exceeded")
        assert wait == 1
        assert refused.headers["X-RateLimit-Reset"] == "1"
        assert after == [200]

    async def test_without_retry_after(
        self, http: aiohttp.ClientSession
    ) -> None:
        options: Json = {
            "retry_after_header": False,
            "rate_limits": {"init": 1},
        }
        async with Sandbox(**options) as sandbox:
            api = Api(http, sandbox)
            await api.call("GET", "/init")
            status, _, refused = await api.call("GET", "/init")

        assert status == 429
        assert "Retry-After" not in refused.headers
        assert refused.headers["X-RateLimit-Remaining"] == "0"

    async def test_off(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(rate_limit_mode=None) as sandbox:
            api = Api(http, sandbox)
            got = await statuses(api, "/init", 40)
            _, _, response = await api.call("GET", "/init")

        assert got == [200] * 40
        assert "X-RateLimit-Limit" not in response.headers

    async def test_control_endpoints(self, sandbox: Sandbox, api: Api) -> None:
        status, config, _ = await api.call(
            "PUT",
            "/_sandbox/rate-limits",
            admin=True,
            json={"mode": "fixed", "limits": {"init": 1, "article": 2}},
        )
        align_to_window(sandbox)
        limited = await statuses(api, "/init", 2)
        await api.call("POST", "/_sandbox/rate-limits/reset", admin=True)
        after_reset = await statuses(api, "/init", 1)
        await api.call(
            "PUT", "/_sandbox/rate-limits", admin=True, json={"mode": "off"}
        )
        off = await statuses(api, "/init", 3)
        _, shown, _ = await api.call(
            "GET", "/_sandbox/rate-limits", admin=True
        )
        bad, error, _ = await api.call(
            "PUT", "/_sandbox/rate-limits", admin=True, json={"mode": "nope"}
        )

        assert status == 200
        assert config["data"]["mode"] == "fixed"
        assert config["data"]["limits"]["article"] == 2
        assert limited == [200, 429]
        assert after_reset == [200]
        assert off == [200] * 3
        assert shown["data"]["mode"] is None
        assert shown["data"]["period"] == 60.0
        assert bad == 400
        assert_error(error, "validation-error", "rate_limit_mode")


# Faults.


class TestFaults:
    async def test_drop_connection(self, sandbox: Sandbox, api: Api) -> None:
        # aiohttp's client quietly retries an idempotent request once when
        # the server disconnects, so a GET must be dropped twice to fail.
        fault = sandbox.faults.drop_connection("init", times=2)

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.call("GET", "/init")
        status, _, _ = await api.call("GET", "/init")

        assert status == 200
        assert fault.fired == 2
        assert [(r.fault, r.status) for r in sandbox.requests] == [
            ("drop", None),
            ("drop", None),
            (None, 200),
        ]
        assert sandbox.faults.active == []

    async def test_drop_connection_on_create(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.faults.drop_connection("create_ticket")

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.create(bug_report())
        status, _ = await api.create(bug_report())

        assert status == 201
        assert len(sandbox.state.all_tickets()) == 1
        assert [r.status for r in sandbox.requests] == [None, 201]

    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (500, "internal-error"),
            (502, "bad-gateway"),
            (503, "service-unavailable"),
            (504, "gateway-timeout"),
        ],
    )
    async def test_error_status(
        self, sandbox: Sandbox, api: Api, status: int, code: str
    ) -> None:
        sandbox.faults.error("init", status)

        got, body, response = await api.call("GET", "/init")
        again, _, _ = await api.call("GET", "/init")

        assert got == status
        assert_error(body, code)
        assert "Retry-After" not in response.headers
        assert again == 200
        assert sandbox.requests[0].fault == "status"

    async def test_503_with_retry_after(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.faults.error("create_ticket", 503, retry_after=7)

        status, body = await api.create(bug_report())
        _, _, response = await api.call("GET", "/init")

        assert status == 503
        assert_error(body, "service-unavailable")
        assert sandbox.state.all_tickets() == []
        assert response.status == 200
        assert sandbox.requests[0].endpoint == "create_ticket"

    async def test_retry_after_header_on_503(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.faults.error("init", 503, retry_after=7)

        status, _, response = await api.call("GET", "/init")

        assert status == 503
        assert response.headers["Retry-After"] == "7"

    async def test_times(self, sandbox: Sandbox, api: Api) -> None:
        sandbox.faults.error("init", 500, times=2)

        assert await statuses(api, "/init", 3) == [500, 500, 200]

    async def test_until_cleared(self, sandbox: Sandbox, api: Api) -> None:
        fault = sandbox.faults.error("*", 502, times=None)

        broken = await statuses(api, "/init", 3)
        article = await statuses(api, "/articles/getting-started", 2)
        create, _ = await api.create(bug_report())
        sandbox.faults.clear()
        healed = await statuses(api, "/init", 1)

        assert broken == [502] * 3
        assert article == [502] * 2
        assert create == 502
        assert fault.fired == 6
        assert healed == [200]

    async def test_clear_one_endpoint(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.faults.error("init", times=None)
        sandbox.faults.error("article", times=None)
        sandbox.faults.clear("init")

        init = await statuses(api, "/init", 1)
        article = await statuses(api, "/articles/getting-started", 1)

        assert init == [200]
        assert article == [500]
        assert [f.endpoint for f in sandbox.faults.active] == ["article"]

    async def test_oldest_fault_fires_first(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.faults.error("init", 500)
        sandbox.faults.error("*", 503)

        got = await statuses(api, "/init", 3)

        assert got == [500, 503, 200]

    async def test_delay(
        self, sandbox: Sandbox, http: aiohttp.ClientSession
    ) -> None:
        sandbox.faults.delay("create_ticket", 0.5)
        url = sandbox.api_url + "/tickets"
        headers = {"X-Api-Key": sandbox.api_key}
        quick = aiohttp.ClientTimeout(total=0.1)

        with pytest.raises(asyncio.TimeoutError):
            async with http.post(
                url, json=bug_report(), headers=headers, timeout=quick
            ):
                pass
        async with http.post(
            url, json=bug_report(), headers=headers
        ) as response:
            status = response.status

        # The slow request was handled before the answer was held back.
        assert status == 201
        assert len(sandbox.state.all_tickets()) == 2

    async def test_malformed_json(self, sandbox: Sandbox, api: Api) -> None:
        sandbox.faults.malformed_json("get_ticket")
        token = await api.new_ticket()
        url = sandbox.api_url + "/ticket"

        async with api.session.get(
            url, params={"token": token}, headers={"X-Api-Key": api.key}
        ) as response:
            raw = await response.read()

        assert response.status == 200
        assert response.content_type == "application/json"
        with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
            json.loads(raw)

    async def test_html_error(self, sandbox: Sandbox, api: Api) -> None:
        sandbox.faults.html_error("init")

        async with api.session.get(
            sandbox.api_url + "/init", headers={"X-Api-Key": api.key}
        ) as response:
            page = await response.text()

        assert response.status == 502
        assert response.content_type == "text/html"
        assert "<html>" in page
        assert "502 Bad Gateway" in page

    @pytest.mark.parametrize("retry_after", [3, None])
    async def test_rate_limited(
        self, sandbox: Sandbox, api: Api, retry_after: int | None
    ) -> None:
        sandbox.faults.rate_limited("reply", retry_after=retry_after)
        token = await api.new_ticket()

        status, body, response = await api.call(
            "POST",
            "/ticket/messages",
            params={"token": token},
            json={"content": "hello"},
        )

        assert status == 429
        assert_error(body, "rate-limit-exceeded")
        assert response.headers.get("Retry-After") == (
            None if retry_after is None else str(retry_after)
        )

    async def test_redirect(self, sandbox: Sandbox, api: Api) -> None:
        target = "https://elsewhere.invalid/api/v1/public/support/init"
        sandbox.faults.redirect("init", target, status=307)

        status, body, response = await api.call(
            "GET", "/init", allow_redirects=False
        )

        assert status == 307
        assert body is None
        assert response.headers["Location"] == target

    async def test_faults_cost_no_rate_budget(
        self, sandbox: Sandbox, api: Api
    ) -> None:
        sandbox.rate_limiter.set_limit("init", 2)
        sandbox.faults.error("init", 500, times=3)

        got = await statuses(api, "/init", 6)

        assert got == [500, 500, 500, 200, 200, 429]

    async def test_jitter(self, sandbox: Sandbox, api: Api) -> None:
        sandbox.faults.set_jitter(1, 4)
        draws = [sandbox.faults.jitter_seconds() for _ in range(50)]

        got = await statuses(api, "/init", 5)

        assert got == [200] * 5
        assert all(0.001 <= draw <= 0.004 for draw in draws)
        sandbox.faults.clear_jitter()
        assert sandbox.faults.jitter is None
        assert sandbox.faults.jitter_seconds() == 0.0

    def test_validation(self) -> None:
        faults = FaultInjector()

        with pytest.raises(ValueError, match="unknown fault kind"):
            faults.add("explode")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown endpoint"):
            faults.error("tickets")
        with pytest.raises(ValueError, match="times"):
            faults.error("init", times=0)
        with pytest.raises(ValueError, match="between 400 and 599"):
            faults.error("init", 200)
        with pytest.raises(ValueError, match="redirect status"):
            faults.redirect("init", "/x", status=200)
        with pytest.raises(ValueError, match="location"):
            faults.add("redirect", "init")
        with pytest.raises(ValueError, match="negative"):
            faults.delay("init", -1)
        with pytest.raises(ValueError, match="min_ms"):
            faults.set_jitter(5, 1)
        assert faults.active == []

    async def test_control_endpoints(self, sandbox: Sandbox, api: Api) -> None:
        spec = {
            "kind": "status",
            "endpoint": "init",
            "status": 503,
            "retry_after": 2,
            "times": 2,
        }
        added = await api.call(
            "POST", "/_sandbox/faults", admin=True, json=spec
        )
        _, listed, _ = await api.call("GET", "/_sandbox/faults", admin=True)
        status, _, response = await api.call("GET", "/init")
        jitter = await api.call(
            "PUT",
            "/_sandbox/faults/jitter",
            admin=True,
            json={"min_ms": 0, "max_ms": 1},
        )
        cleared = await api.call("DELETE", "/_sandbox/faults", admin=True)
        no_jitter = await api.call(
            "DELETE", "/_sandbox/faults/jitter", admin=True
        )
        healed = await statuses(api, "/init", 1)
        bad_kind = await api.call(
            "POST", "/_sandbox/faults", admin=True, json={"kind": "boom"}
        )
        bad_field = await api.call(
            "POST",
            "/_sandbox/faults",
            admin=True,
            json={"kind": "drop", "when": "now"},
        )

        assert added[0] == 201
        assert added[1]["data"]["status"] == 503
        (fault,) = listed["data"]["faults"]
        assert fault["kind"] == "status"
        assert fault["times"] == 2
        assert status == 503
        assert response.headers["Retry-After"] == "2"
        assert jitter[1]["data"]["jitter"] == {"min_ms": 0, "max_ms": 1}
        assert cleared[1]["data"]["faults"] == []
        assert no_jitter[1]["data"]["jitter"] is None
        assert healed == [200]
        assert bad_kind[0] == bad_field[0] == 400
        assert_error(bad_kind[1], "validation-error", "boom")
        assert_error(bad_field[1], "validation-error", "when")

    async def test_reset_disarms(self, sandbox: Sandbox, api: Api) -> None:
        sandbox.faults.error("*", times=None)
        sandbox.rate_limiter.set_limit("init", 1)
        sandbox.faults.clear()
        await api.call("GET", "/init")
        sandbox.faults.error("*", times=None)

        sandbox.state.reset()

        assert sandbox.faults.active == []
        assert await statuses(api, "/init", 1) == [200]


# The standalone module and the pytest plugin.


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = (
        f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)
    )
    env.update(extra)

    return env


class TestStandalone:
    async def test_subprocess(self, http: aiohttp.ClientSession) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vicket_async.sandbox",
            "--port",
            "0",
            "--api-key",
            "vk_cli",
            "--time-scale",
            "60",
            "--rate-limit-mode",
            "fixed",
            stdout=asyncio.subprocess.PIPE,
            env=_env(),
        )
        assert process.stdout is not None
        try:
            first = await asyncio.wait_for(process.stdout.readline(), 20)
            second = await process.stdout.readline()
            name, _, base_url = first.decode().strip().partition("=")
            assert name == "VICKET_SANDBOX_URL"
            assert second.decode().strip() == "VICKET_SANDBOX_API_KEY=vk_cli"
            url = base_url + API_PREFIX + "/tickets"
            headers = {"X-Api-Key": "vk_cli"}
            async with http.post(
                url, json=bug_report(), headers=headers
            ) as response:
                assert response.status == 201
            line = b""
            while not line.startswith(b"EMAIL"):
                line = await asyncio.wait_for(process.stdout.readline(), 10)
            token = line.decode().split("token=")[1].strip()
            async with http.get(
                base_url + API_PREFIX + "/ticket",
                params={"token": token},
                headers=headers,
            ) as response:
                assert response.status == 200
            async with http.get(
                base_url + "/_sandbox/rate-limits"
            ) as response:
                config = await response.json()
            assert config["data"]["mode"] == "fixed"
        finally:
            process.send_signal(signal.SIGTERM)
            rest = await asyncio.wait_for(process.stdout.read(), 20)
            code = await process.wait()

        assert code == 0
        assert b"stopped" in rest


PLUGIN_TESTS = """
import aiohttp
import pytest


async def test_default(vicket_sandbox):
    url = vicket_sandbox.api_url + "/init"
    headers = {"X-Api-Key": vicket_sandbox.api_key}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as response:
            assert response.status == 200
    assert vicket_sandbox.state.shape == "vendor"


@pytest.mark.vicket_sandbox(
    shape="integration", time_scale=60, rate_limit_mode=None
)
async def test_marker(vicket_sandbox):
    assert vicket_sandbox.state.shape == "integration"
    assert vicket_sandbox.clock.time_scale == 60
    assert vicket_sandbox.rate_limiter.mode is None


@pytest.mark.vicket_sandbox(shape="integration", time_scale=2)
class TestMerged:
    @pytest.mark.vicket_sandbox(time_scale=5)
    async def test_closest_wins(self, vicket_sandbox):
        assert vicket_sandbox.state.shape == "integration"
        assert vicket_sandbox.clock.time_scale == 5


@pytest.mark.vicket_sandbox(time_scale=7)
@pytest.mark.parametrize(
    "vicket_sandbox", [{"api_key": "vk_param"}], indirect=True
)
async def test_indirect(vicket_sandbox):
    assert vicket_sandbox.api_key == "vk_param"
    assert vicket_sandbox.clock.time_scale == 7


def test_marker_is_registered(pytestconfig):
    markers = pytestconfig.getini("markers")
    assert any(line.startswith("vicket_sandbox(") for line in markers)
"""

WITHOUT_PYTEST_ASYNCIO = (
    "import sys; sys.modules['pytest_asyncio'] = None; import pytest; "
    "sys.exit(pytest.main(sys.argv[1:]))"
)


class TestPytestPlugin:
    def run(
        self, tmp_path: Path, *args: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_fixture(self, tmp_path: Path) -> None:
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = auto\n"
            "asyncio_default_fixture_loop_scope = function\n"
            "filterwarnings = error\n"
        )
        (tmp_path / "test_plugin.py").write_text(PLUGIN_TESTS)

        result = self.run(
            tmp_path,
            "-m",
            "pytest",
            "-p",
            "pytest_asyncio.plugin",
            "-p",
            "vicket_async.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "--strict-markers",
            "-q",
        )

        assert result.returncode == 0, result.stdout + result.stderr
        assert "5 passed" in result.stdout

    def test_without_pytest_asyncio(self, tmp_path: Path) -> None:
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        (tmp_path / "test_plugin.py").write_text(
            textwrap.dedent(
                """
                def test_needs_sandbox(vicket_sandbox):
                    pass
                """
            )
        )

        result = self.run(
            tmp_path,
            "-c",
            WITHOUT_PYTEST_ASYNCIO,
            "-p",
            "vicket_async.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "-q",
        )

        assert result.returncode == 1, result.stdout + result.stderr
        assert "needs pytest-asyncio" in result.stdout
        assert "1 error" in result.stdout
