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
    DEMO_API_KEY,
    FILE_MARKER,
    Sandbox,
    SandboxState,
    Website,
    demo_website,
    large_website,
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
        async with Sandbox(email_limit=None) as sandbox:
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


@pytest.mark.vicket_sandbox(shape="integration", time_scale=60)
async def test_marker(vicket_sandbox):
    assert vicket_sandbox.state.shape == "integration"
    assert vicket_sandbox.clock.time_scale == 60


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
        return subprocess.run(  # noqa: S603
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
