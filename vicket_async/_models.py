"""
The API's resources as frozen attrs classes.

Field names are the Python spelling of the wire names; the converters in
``vicket_async._protocol.codec`` do the translation and the tolerance for
the shapes real traffic shows.
"""

import datetime as dt
import enum

import attrs

from .exceptions import UnknownNameError

__all__ = [
    "Answer",
    "Article",
    "Attachment",
    "AuthorType",
    "Faq",
    "Message",
    "Option",
    "Question",
    "QuestionType",
    "SupportPage",
    "Template",
    "Ticket",
    "TicketCreated",
    "Website",
]


class QuestionType(enum.StrEnum):
    """
    The kinds of question a ticket template can ask.

    A type that this SDK does not know yet is kept as a plain ``str`` on
    `Question.type` rather than rejected.
    """

    TEXT = "TEXT"
    TEXTAREA = "TEXTAREA"
    SELECT = "SELECT"
    CHECKBOX = "CHECKBOX"
    DATE = "DATE"
    FILE = "FILE"


class AuthorType(enum.StrEnum):
    """Who wrote a message; unknown kinds are kept as a plain ``str``."""

    REPORTER = "reporter"
    AGENT = "agent"
    SYSTEM = "system"


@attrs.frozen(kw_only=True)
class Website:
    name: str | None = None


@attrs.frozen(kw_only=True)
class Option:
    """
    One choice of a SELECT question.

    The API sends either plain strings or ``{value, label}`` objects; a plain
    string becomes an option whose value and label are that string.
    """

    value: str
    label: str


@attrs.frozen(kw_only=True)
class Question:
    id: str
    label: str
    type: QuestionType | str
    required: bool = False
    order: int = 0
    options: tuple[Option, ...] = ()


@attrs.frozen(kw_only=True)
class Template:
    id: str
    name: str
    description: str | None = None
    icon: str | None = None
    questions: tuple[Question, ...] = ()

    def question(self, id_or_label: str) -> Question:
        """Find a question by its id, or else by its exact label."""
        for question in self.questions:
            if question.id == id_or_label:
                return question
        for question in self.questions:
            if question.label == id_or_label:
                return question
        msg = f"template {self.id!r} has no question {id_or_label!r}"
        raise UnknownNameError(msg)


@attrs.frozen(kw_only=True)
class Article:
    id: str | None = None
    title: str = ""
    slug: str
    content: str = ""
    category: str | None = None
    type: str | None = None


@attrs.frozen(kw_only=True)
class Faq:
    question: str
    answer: str = ""
    id: str | None = None


@attrs.frozen(kw_only=True)
class SupportPage:
    """Everything ``init`` returns: the website, templates, articles, FAQs."""

    website: Website = Website()
    templates: tuple[Template, ...] = ()
    articles: tuple[Article, ...] = ()
    faqs: tuple[Faq, ...] = ()

    def template(self, id_or_name: str) -> Template:
        """Find a template by its id, or else by its exact name."""
        for template in self.templates:
            if template.id == id_or_name:
                return template
        for template in self.templates:
            if template.name == id_or_name:
                return template
        msg = f"the support page has no template {id_or_name!r}"
        raise UnknownNameError(msg)


@attrs.frozen(kw_only=True)
class TicketCreated:
    """
    The answer to ``create_ticket``.

    The API returns no ticket id and no token: the reporter receives the
    secure link by email. ``email_limit_reached`` says that this email was
    not sent because the reporter received too many.
    """

    email_limit_reached: bool = False
    warning: str | None = None


@attrs.frozen(kw_only=True)
class Attachment:
    id: str | None = None
    url: str | None = None
    original_filename: str | None = None
    mime_type: str | None = None


@attrs.frozen(kw_only=True)
class Message:
    id: str
    content: str = ""
    author_type: AuthorType | str = AuthorType.REPORTER
    author_name: str | None = None
    created_at: dt.datetime | None = None
    attachments: tuple[Attachment, ...] = ()


@attrs.frozen(kw_only=True)
class Answer:
    question_label: str = ""
    answer: str | bool | None = None
    id: str | None = None
    attachments: tuple[Attachment, ...] = ()


@attrs.frozen(kw_only=True)
class Ticket:
    """
    A ticket's thread, as its reporter sees it.

    ``status`` and ``priority`` are the labels the website shows. ``token``
    is set only when the API echoes it, and is left out of ``repr()``.
    """

    id: str
    title: str = ""
    status: str | None = None
    priority: str | None = None
    messages: tuple[Message, ...] = ()
    answers: tuple[Answer, ...] = ()
    token: str | None = attrs.field(default=None, repr=False)
