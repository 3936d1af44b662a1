"""
A walk through every endpoint against an in-process sandbox.

It is the README's first command: it needs no account and no network, and
shows what each call returns.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from ._client import VicketClient
from ._models import QuestionType, SupportPage, Template
from ._uploads import FileUpload
from .sandbox import Sandbox

REPORTER = "ada@example.com"


def _say(step: int, text: str) -> None:
    print(f"{step}. {text}")


def _detail(text: str) -> None:
    print(f"   {text}")


def _template_with_file(page: SupportPage) -> Template:
    for template in page.templates:
        if any(q.type == QuestionType.FILE for q in template.questions):
            return template

    return page.templates[0]


async def run_demo() -> None:
    """Run the demo and print an account of each step."""
    async with Sandbox() as sandbox:
        print(f"Sandbox listening on {sandbox.base_url}\n")
        async with VicketClient(
            api_key=sandbox.api_key, base_url=sandbox.base_url
        ) as vicket:
            page = await vicket.init()
            _say(1, f"init: the support page of {page.website.name!r}")
            for template in page.templates:
                kinds = ", ".join(str(q.type) for q in template.questions)
                _detail(f"template {template.name!r}: {kinds}")
            _detail(f"{len(page.articles)} articles, {len(page.faqs)} FAQs")

            template = _template_with_file(page)
            with tempfile.TemporaryDirectory() as folder:
                screenshot = Path(folder) / "screenshot.png"
                screenshot.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4096))
                answers = _answers(template, screenshot)
                created = await vicket.create_ticket(
                    email=REPORTER,
                    title="The export button does nothing",
                    template=template,
                    answers=answers,
                )
            _say(2, f"create_ticket with template {template.name!r}")
            _detail(
                f"answered {len(answers)} questions, one with a file; "
                f"email limit reached: {created.email_limit_reached}"
            )

            token = sandbox.state.latest_token(REPORTER)
            if token is None:
                print("The sandbox sent no email; stopping here.")
                return
            _say(3, f"the secure link was emailed to {REPORTER}")
            _detail(f"token: {token[:6]}… ({len(token)} characters)")

            ticket = await vicket.get_ticket(token)
            _say(4, f"get_ticket: {ticket.title!r}, status {ticket.status}")
            for answer in ticket.answers:
                files = f" + {len(answer.attachments)} file(s)"
                extra = files if answer.attachments else ""
                _detail(f"{answer.question_label}: {answer.answer!r}{extra}")

            message = await vicket.reply(
                token,
                "Here is the log you asked for.",
                attachments=[
                    FileUpload(
                        b"12:00:01 export clicked\n12:00:01 no handler\n",
                        filename="console.log",
                        content_type="text/plain",
                    )
                ],
            )
            _say(5, f"reply: message {message.id} by {message.author_type}")
            ticket = await vicket.get_ticket(token)
            _detail(f"the thread now has {len(ticket.messages)} messages")

            if page.articles:
                article = await vicket.get_article(page.articles[0].slug)
                _say(6, f"get_article: {article.title!r}")
                _detail(f"{len(article.content)} characters of HTML")
    print("\nDone: every endpoint answered.")


def _answers(template: Template, screenshot: Path) -> dict[str, object]:
    answers: dict[str, object] = {}
    for question in template.questions:
        match question.type:
            case QuestionType.TEXT:
                answers[question.id] = "ACME-1042"
            case QuestionType.TEXTAREA:
                answers[question.id] = "Clicking Export shows nothing."
            case QuestionType.SELECT if question.options:
                answers[question.id] = question.options[0].value
            case QuestionType.CHECKBOX:
                answers[question.id] = True
            case QuestionType.DATE:
                answers[question.id] = dt.date.today()
            case QuestionType.FILE:
                answers[question.id] = screenshot

    return answers
