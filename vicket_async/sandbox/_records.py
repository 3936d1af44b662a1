"""The records the sandbox keeps: websites, tickets, emails, requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = [
    "QUESTION_TYPES",
    "AccessToken",
    "Answer",
    "Article",
    "Attachment",
    "AuthorType",
    "Email",
    "EmailKind",
    "Faq",
    "Message",
    "Option",
    "Question",
    "QuestionType",
    "RequestRecord",
    "Template",
    "Ticket",
    "Website",
]

QuestionType = Literal[
    "TEXT", "TEXTAREA", "SELECT", "CHECKBOX", "DATE", "FILE"
]
QUESTION_TYPES: frozenset[str] = frozenset(
    {"TEXT", "TEXTAREA", "SELECT", "CHECKBOX", "DATE", "FILE"}
)
AuthorType = Literal["reporter", "agent", "system"]
EmailKind = Literal["ticket-created", "new-link"]


@attrs.frozen
class Option:
    """One choice of a SELECT question: the value sent, the label shown."""

    value: str
    label: str


@attrs.frozen
class Question:
    """One question of a ticket template."""

    id: str
    label: str
    type: QuestionType
    required: bool = False
    order: int = 0
    options: tuple[Option, ...] = ()


@attrs.frozen
class Template:
    """A ticket template: the form a reporter fills in."""

    id: str
    name: str
    description: str
    questions: tuple[Question, ...]
    icon: str | None = None

    def question(self, question_id: str) -> Question | None:
        """The question with *question_id*, if this template has it."""
        for question in self.questions:
            if question.id == question_id:
                return question

        return None


@attrs.frozen
class Article:
    """A published help article."""

    id: str
    title: str
    slug: str
    content: str
    category: str | None = None


@attrs.frozen
class Faq:
    """A frequently asked question with its answer."""

    id: str
    question: str
    answer: str


@attrs.define
class Website:
    """A customer website: its API key and the content behind that key."""

    api_key: str
    name: str
    templates: dict[str, Template] = attrs.Factory(dict)
    articles: dict[str, Article] = attrs.Factory(dict)
    faqs: list[Faq] = attrs.Factory(list)

    def add_template(self, template: Template) -> Template:
        """Publish *template* on this website."""
        self.templates[template.id] = template

        return template

    def add_article(self, article: Article) -> Article:
        """Publish *article* on this website, reachable by its slug."""
        self.articles[article.slug] = article

        return article

    def add_faq(self, faq: Faq) -> Faq:
        """Publish *faq* on this website."""
        self.faqs.append(faq)

        return faq


@attrs.frozen
class Attachment:
    """
    A file received by the sandbox.

    ``content`` holds the bytes only for small files; large ones are
    hashed while they stream in and then dropped, so ``content`` is
    ``None`` and only ``size`` and ``sha256`` remain.
    """

    id: str
    original_filename: str
    mime_type: str
    size: int
    sha256: str
    content: bytes | None = attrs.field(default=None, repr=False)

    @property
    def stored(self) -> bool:
        """Whether the sandbox kept the bytes and can serve them back."""
        return self.content is not None


@attrs.define
class Message:
    """One message in a ticket's thread."""

    id: str
    content: str
    author_type: AuthorType
    author_name: str
    created_at: float
    attachments: list[Attachment] = attrs.Factory(list)


@attrs.frozen
class Answer:
    """A reporter's answer to one template question."""

    id: str
    question_id: str
    question_label: str
    answer: str | bool | None
    attachments: tuple[Attachment, ...] = ()


@attrs.define
class Ticket:
    """A support ticket and everything that happened to it."""

    id: str
    website_key: str
    reporter_email: str
    title: str
    template_id: str
    created_at: float
    status: str = "Open"
    priority: str = "Low"
    messages: list[Message] = attrs.Factory(list)
    answers: list[Answer] = attrs.Factory(list)
    tokens: list[str] = attrs.Factory(list)


@attrs.define
class AccessToken:
    """A secure ticket link token and the time it stops working."""

    token: str
    ticket_id: str
    issued_at: float
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        """Whether the token no longer opens its ticket at *now*."""
        return self.expires_at is not None and now >= self.expires_at


@attrs.frozen
class Email:
    """An email the sandbox would have sent, kept in the outbox instead."""

    to: str
    subject: str
    token: str
    link: str
    kind: EmailKind
    ticket_id: str = ""
    sent_at: float = 0.0


@attrs.frozen
class RequestRecord:
    """
    One request that reached the sandbox's API.

    ``status`` is ``None`` when the sandbox dropped the connection instead
    of answering; ``fault`` names the injected fault that shaped the
    answer, if any; ``time`` is sandbox time.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    status: int | None
    time: float
    endpoint: str | None
    fault: str | None = None
