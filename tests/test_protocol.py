"""The protocol layer: URLs, envelopes, decoding and answer checks."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from pathlib import Path
from typing import Any

import pytest

import vicket_async
from vicket_async import (
    AuthenticationError,
    AuthorType,
    BadRequestError,
    FileUpload,
    NotFoundError,
    QuestionType,
    RateLimitError,
    ServerError,
    SupportPage,
    Template,
    Ticket,
    TicketLinkExpiredError,
    UnexpectedResponseError,
)
from vicket_async._models import Question
from vicket_async._protocol import answers, codec
from vicket_async._protocol.endpoints import (
    Endpoint,
    build_url,
    check_base_url,
    redact_text,
    redact_url,
)
from vicket_async._protocol.responses import parse_retry_after, read_envelope

from . import spec_examples

BASE = "https://api.vicket.app"


class TestUrls:
    def test_paths(self) -> None:
        assert build_url(BASE, Endpoint.INIT) == (
            f"{BASE}/api/v1/public/support/init"
        )
        assert build_url(f"{BASE}/", Endpoint.CREATE_TICKET).endswith(
            "/support/tickets"
        )

    @pytest.mark.parametrize(
        ("slug", "segment"),
        [
            ("getting-started", "getting-started"),
            ("../init", "..%2Finit"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("a?token=x&b=1", "a%3Ftoken%3Dx%26b%3D1"),
            ("a#frag", "a%23frag"),
            ("é", "%C3%A9"),
        ],
    )
    def test_slug_is_one_segment(self, slug: str, segment: str) -> None:
        url = build_url(BASE, Endpoint.GET_ARTICLE, slug=slug)

        assert url == f"{BASE}/api/v1/public/support/articles/{segment}"

    def test_token_cannot_add_parameters(self) -> None:
        url = build_url(BASE, Endpoint.GET_TICKET, token="a&admin=1#x")

        assert url.endswith("/ticket?token=a%26admin%3D1%23x")

    def test_redaction(self) -> None:
        url = build_url(BASE, Endpoint.REPLY, token="s3cret")

        assert "s3cret" not in redact_url(url)
        assert redact_url(url).endswith("?token=[redacted]")
        text = redact_text("tok s3cret and a%2Fb", ("s3cret", "a/b"))
        assert text == "tok [redacted] and [redacted]"

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "https://api.vicket.app/",
        ],
    )
    def test_allowed_base_urls(self, url: str) -> None:
        assert check_base_url(url, allow_insecure_http=False) == url.rstrip(
            "/"
        )

    @pytest.mark.parametrize(
        ("url", "words"),
        [
            ("http://api.vicket.app", "refusing plain http"),
            ("ftp://x", "http(s) origin"),
            ("api.vicket.app", "http(s) origin"),
            ("https://x?y=1", "query string"),
        ],
    )
    def test_refused_base_urls(self, url: str, words: str) -> None:
        with pytest.raises(ValueError, match=re.escape(words)):
            check_base_url(url, allow_insecure_http=False)

    def test_insecure_http_opt_in(self) -> None:
        url = "http://support.internal"

        assert check_base_url(url, allow_insecure_http=True) == url


def _read(document: str | dict[str, Any], status: int = 200) -> Any:
    body = document if isinstance(document, str) else json.dumps(document)
    return read_envelope(
        Endpoint.INIT, status, {"Content-Type": "x"}, body.encode()
    )


class TestEnvelope:
    def test_success(self) -> None:
        assert _read(spec_examples.TICKET_CREATED) == {
            "email_limit_reached": False,
            "warning": None,
        }

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (404, NotFoundError),
            (410, TicketLinkExpiredError),
            (429, RateLimitError),
            (500, ServerError),
            (503, ServerError),
        ],
    )
    def test_error_envelope(self, status: int, cls: type[Exception]) -> None:
        with pytest.raises(cls) as info:
            _read(spec_examples.ERROR, status)

        error = info.value
        assert isinstance(error, vicket_async.APIError)
        assert error.status == status
        assert error.error_code == "machine-readable-code"
        assert error.server_message == "Human-readable message"
        assert error.endpoint is Endpoint.INIT
        assert str(error).startswith(f"GET /init: {status} machine-readable")

    def test_expired_link_says_what_happened(self) -> None:
        body = {
            "success": False,
            "error": "Link expired",
            "error_code": "ticket-link-expired",
        }
        with pytest.raises(TicketLinkExpiredError) as info:
            _read(body, 410)

        assert "a new link was emailed to the reporter" in str(info.value)

    def test_retry_after_on_429(self) -> None:
        body = spec_examples.ERROR.encode()
        with pytest.raises(RateLimitError) as info:
            read_envelope(Endpoint.REPLY, 429, {"Retry-After": "7"}, body)

        assert info.value.retry_after == 7.0
        assert "retry in 7 s" in str(info.value)

    @pytest.mark.parametrize(
        ("status", "body", "words"),
        [
            (502, "<html><h1>Bad Gateway</h1></html>", "Bad Gateway"),
            (200, '{"success": true, "data": {"id"', "success"),
            (200, "", "an empty body"),
            (200, '{"ok": 1}', "without the success envelope"),
            (200, "[1, 2]", "[1, 2]"),
            (404, '{"detail": "nope"}', "nope"),
        ],
    )
    def test_unexpected_bodies(
        self, status: int, body: str, words: str
    ) -> None:
        with pytest.raises(UnexpectedResponseError) as info:
            _read(body, status)

        assert info.value.status == status
        assert words in str(info.value)
        assert str(status) in str(info.value)

    def test_excerpt_is_short_and_redacted(self) -> None:
        body = ("<p>token=abc123 " + "x" * 5000).encode()
        with pytest.raises(UnexpectedResponseError) as info:
            read_envelope(
                Endpoint.GET_TICKET, 502, {}, body, secrets=("abc123",)
            )

        assert "abc123" not in str(info.value)
        assert len(info.value.body_excerpt) <= 201


class TestRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after({"Retry-After": " 12 "}) == 12.0

    def test_http_date(self) -> None:
        now = 1_800_000_000.0
        date = email.utils.formatdate(now + 30, usegmt=True)

        assert parse_retry_after({"retry-after": date}, now=now) == 30.0

    def test_reset_headers(self) -> None:
        now = 1_800_000_000.0

        assert parse_retry_after({"X-RateLimit-Reset": "4"}, now=now) == 4.0
        assert (
            parse_retry_after({"RateLimit-Reset": str(now + 9)}, now=now)
            == 9.0
        )

    def test_unknown(self) -> None:
        assert parse_retry_after({"Retry-After": "soon"}) is None
        assert parse_retry_after({}) is None


class TestDecoding:
    def test_spec_init(self) -> None:
        page = codec.decode(_read(spec_examples.INIT), SupportPage)

        assert page.website.name == "My App"
        question = page.templates[0].questions[0]
        assert question.type is QuestionType.TEXTAREA
        assert question.required
        assert question.options == ()
        assert page.articles[0].slug == "getting-started"
        assert page.faqs[0].id == "faq_..."

    def test_spec_ticket(self) -> None:
        ticket = codec.decode(_read(spec_examples.TICKET), Ticket)

        assert ticket.title == "Cannot log in"
        assert ticket.status == "Open"
        assert ticket.priority == "Low"
        message = ticket.messages[0]
        assert message.author_type is AuthorType.REPORTER
        assert message.created_at == dt.datetime(2026, 3, 8, 10, tzinfo=dt.UTC)
        assert ticket.answers[0].answer == "Chrome 120"

    def test_spec_message_and_article(self) -> None:
        message = codec.decode(
            _read(spec_examples.MESSAGE), vicket_async.Message
        )
        article = codec.decode(
            _read(spec_examples.ARTICLE), vicket_async.Article
        )

        assert message.attachments == ()
        assert message.created_at is not None
        assert message.created_at.tzinfo is not None
        assert article.content == "<p>...</p>"

    def test_integration_init(self) -> None:
        page = codec.decode(
            spec_examples.INIT_INTEGRATION["data"], SupportPage
        )

        template = page.templates[0]
        assert template.icon == "credit-card"
        plan, stars = template.questions
        assert [o.value for o in plan.options] == ["free", "pro"]
        assert plan.options[1].label == "Pro"
        assert stars.type == "RATING"
        assert not isinstance(stars.type, QuestionType)
        assert page.website.name is None
        assert page.articles == ()
        assert page.faqs == ()

    def test_integration_articles(self) -> None:
        page = codec.decode(
            spec_examples.ARTICLES_INTEGRATION["data"], SupportPage
        )

        assert page.articles[0].category == "Billing"
        assert page.articles[0].type == "faq"
        assert page.faqs[0].id is None

    def test_integration_ticket(self) -> None:
        ticket = codec.decode(spec_examples.TICKET_INTEGRATION["data"], Ticket)

        assert ticket.title == "Refund please"
        assert ticket.token == "tok_secret_in_body"
        assert "tok_secret_in_body" not in repr(ticket)
        agent, system, bot = ticket.messages
        assert agent.author_name == "Dana"
        assert agent.author_type is AuthorType.AGENT
        assert agent.attachments[0].original_filename == "invoice.pdf"
        assert agent.created_at == dt.datetime(2026, 3, 8, 9, tzinfo=dt.UTC)
        assert system.author_type is AuthorType.SYSTEM
        assert bot.author_type == "bot"

    def test_string_options(self) -> None:
        question = codec.decode(
            {"id": "q", "label": "L", "type": "SELECT", "options": ["a"]},
            Question,
        )

        assert question.options[0].value == question.options[0].label == "a"

    def test_nulls_and_unknown_fields_are_tolerated(self) -> None:
        data = {
            "templates": [
                {"id": "t", "name": "n", "questions": None, "new": 1}
            ],
            "faqs": None,
            "something_new": {"x": 1},
        }
        page = codec.decode(data, SupportPage)

        assert page.templates[0].questions == ()
        assert page.faqs == ()

    def test_strict_mode_rejects_unknown_fields(self) -> None:
        data = {"templates": [], "something_new": 1}
        with pytest.raises(codec.DecodeError, match="something_new"):
            codec.decode(data, SupportPage, strict=True)

    def test_error_names_the_field(self) -> None:
        data = {"templates": [{"id": "t", "questions": []}]}
        with pytest.raises(codec.DecodeError) as info:
            codec.decode(data, SupportPage)

        assert "$.templates[0].name" in str(info.value)
        assert info.value.__cause__ is None

    def test_bad_timestamp(self) -> None:
        with pytest.raises(codec.DecodeError, match="created_at"):
            codec.decode(
                {"id": "m", "created_at": "yesterday"}, vicket_async.Message
            )

    def test_draft_encoding(self) -> None:
        draft = codec.TicketDraft(
            email="a@b.co", title="t", template_id="tpl", answers={"q": True}
        )

        assert codec.unstructure(draft) == {
            "email": "a@b.co",
            "title": "t",
            "templateId": "tpl",
            "answers": {"q": True},
        }

    def test_models_round_trip(self) -> None:
        data = spec_examples.TICKET_INTEGRATION["data"]
        ticket = codec.decode(data, Ticket)

        assert codec.decode(codec.unstructure(ticket), Ticket) == ticket


def _template() -> Template:
    page = codec.decode(
        {
            "templates": [
                {
                    "id": "tpl_all",
                    "name": "All",
                    "questions": [
                        {"id": "q_text", "label": "Text", "type": "TEXT"},
                        {
                            "id": "q_area",
                            "label": "Details",
                            "type": "TEXTAREA",
                            "required": True,
                        },
                        {
                            "id": "q_sel",
                            "label": "Plan",
                            "type": "SELECT",
                            "options": ["free", "pro"],
                        },
                        {"id": "q_box", "label": "Agree", "type": "CHECKBOX"},
                        {"id": "q_date", "label": "When", "type": "DATE"},
                        {"id": "q_file", "label": "Shot", "type": "FILE"},
                        {"id": "q_new", "label": "Stars", "type": "RATING"},
                    ],
                }
            ]
        },
        SupportPage,
    )
    return page.templates[0]


def _check(**given: Any) -> tuple[Any, Any, list[str]]:
    fields: dict[str, Any] = {
        "email": "ada@example.com",
        "title": "Broken",
        "template_id": "tpl_all",
        "template": _template(),
        "answers": {"q_area": "It broke"},
    }
    fields.update(given)
    json_answers, files, problems = answers.check_ticket(**fields)

    return json_answers, files, [str(p) for p in problems]


class TestAnswerChecks:
    def test_every_type(self, tmp_path: Path) -> None:
        shot = tmp_path / "shot.png"
        shot.write_bytes(b"png")
        json_answers, files, problems = _check(
            answers={
                "q_text": "short",
                "q_area": "long",
                "q_sel": "pro",
                "q_box": False,
                "q_date": dt.date(2026, 3, 8),
                "q_file": shot,
                "q_new": "5",
            }
        )

        assert problems == []
        assert json_answers == {
            "q_text": "short",
            "q_area": "long",
            "q_sel": "pro",
            "q_box": False,
            "q_date": "2026-03-08",
            "q_file": "__isFile:true",
            "q_new": "5",
        }
        assert [f.field for f in files] == ["files[q_file]"]
        assert files[0].upload.filename == "shot.png"
        assert files[0].upload.content_type == "image/png"

    def test_iso_date_string(self) -> None:
        json_answers, _, problems = _check(
            answers={"q_area": "x", "q_date": "2026-03-08"}
        )

        assert problems == []
        assert json_answers["q_date"] == "2026-03-08"

    def test_every_problem_is_listed(self, tmp_path: Path) -> None:
        _, _, problems = _check(
            email="not-an-email",
            title="  ",
            answers={
                "q_text": 3,
                "q_sel": "gold",
                "q_box": "yes",
                "q_date": "08/03/2026",
                "q_file": "shot.png",
                "q_ghost": "boo",
                "q_area": FileUpload(tmp_path / "missing.txt"),
            },
        )

        text = "\n".join(problems)
        assert "email: 'not-an-email' is not an email address" in text
        assert "title: the title is empty" in text
        assert "q_text (Text): a TEXT question takes a string" in text
        assert "'gold' is not one of the options ('free', 'pro')" in text
        assert "q_box (Agree): a CHECKBOX question takes True or False" in text
        assert "'08/03/2026' is not a date" in text
        assert "q_file (Shot): a FILE question takes a FileUpload" in text
        assert "q_ghost: template 'tpl_all' has no such question" in text
        assert "q_area (Details): a TEXTAREA question takes a file" in text
        assert len(problems) == 9

    def test_missing_file_is_refused(self, tmp_path: Path) -> None:
        _, _, problems = _check(
            answers={"q_area": "x", "q_file": tmp_path / "nope.png"}
        )

        assert problems == [
            f"q_file (Shot): cannot upload: {tmp_path / 'nope.png'} is not "
            f"a readable file"
        ]

    def test_datetime_is_not_a_date(self) -> None:
        _, _, problems = _check(
            answers={"q_area": "x", "q_date": dt.datetime(2026, 1, 1)}
        )

        assert problems == [
            "q_date (When): a DATE question takes a datetime.date, not a "
            "datetime"
        ]

    def test_without_template_only_shapes_are_checked(self) -> None:
        json_answers, _, problems = _check(
            template=None,
            answers={"q_any": "x", "q_when": dt.date(2026, 1, 2)},
        )

        assert problems == []
        assert json_answers == {"q_any": "x", "q_when": "2026-01-02"}

    def test_reply(self, tmp_path: Path) -> None:
        note = tmp_path / "note.txt"
        note.write_text("hi")
        files, problems = answers.check_reply(
            "  ", [note, b"raw", FileUpload(b"ok", filename="b.bin")]
        )

        assert [str(p) for p in problems] == [
            "content: the reply is empty",
            "attachments[1]: expected a FileUpload or a path, got bytes",
        ]
        assert [f.upload.filename for f in files] == ["note.txt", "b.bin"]

    def test_body_layout(self) -> None:
        upload = FileUpload(b"abc", filename="a.txt")
        body = answers.ticket_body(
            email=" a@b.co ",
            title=" T ",
            template_id="tpl",
            answers={"q": answers.FILE_MARKER},
            files=[answers.FilePart("files[q]", upload)],
        )

        assert body.is_multipart
        assert json.loads(body.payload) == {
            "email": "a@b.co",
            "title": "T",
            "templateId": "tpl",
            "answers": {"q": "__isFile:true"},
        }
        assert not answers.reply_body("hi", []).is_multipart


class TestQuestionLookups:
    def test_template_and_question(self) -> None:
        template = _template()
        page = SupportPage(templates=(template,))

        assert page.template("All") is template
        assert template.question("Plan").id == "q_sel"
        with pytest.raises(vicket_async.UnknownNameError) as info:
            page.template("x")
        with pytest.raises(KeyError, match="no question 'Nope'"):
            template.question("Nope")

        assert str(info.value) == "the support page has no template 'x'"
