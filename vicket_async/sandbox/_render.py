"""
Turn records into JSON, in either wire shape.

``vendor`` follows the examples of the vendor's reference page to the
letter; ``integration`` follows the variants a real integration decodes
(option objects, ``subject`` and ``token`` on the thread, ``author_name``
on messages, and so on).
"""

from __future__ import annotations

from typing import Any

from ._clock import format_timestamp
from ._records import (
    Answer,
    Article,
    Attachment,
    Faq,
    Message,
    Question,
    Template,
    Ticket,
    Website,
)
from ._state import Shape

__all__ = [
    "FILES_PATH",
    "render_article",
    "render_attachment",
    "render_init",
    "render_message",
    "render_reply",
    "render_thread",
    "render_ticket_admin",
]

FILES_PATH = "/_sandbox/files"
Json = dict[str, Any]


def render_init(website: Website, shape: Shape, *, sparse: bool) -> Json:
    """The ``data`` of ``GET /init``."""
    data: Json = {
        "website": {"name": website.name},
        "templates": [
            _template(template, shape)
            for template in website.templates.values()
        ],
        "articles": [
            render_article(article, shape)
            for article in website.articles.values()
        ],
        "faqs": [_faq(faq, shape) for faq in website.faqs],
    }
    if sparse:
        # The integration copes with sites that have no name, articles
        # or FAQs: the keys are then missing, not empty.
        data["website"] = {}
        del data["articles"]
        del data["faqs"]

    return data


def render_article(article: Article, shape: Shape) -> Json:
    """One article, as listed by ``/init`` and served by ``/articles``."""
    data: Json = {
        "id": article.id,
        "title": article.title,
        "slug": article.slug,
        "content": article.content,
    }
    if shape == "integration":
        data["category"] = article.category
        data["type"] = "article"

    return data


def render_thread(
    ticket: Ticket, token: str, shape: Shape, origin: str
) -> Json:
    """The ``data`` of ``GET /ticket``."""
    data: Json = {"id": ticket.id}
    if shape == "integration":
        data["subject"] = ticket.title
        data["token"] = token
    else:
        data["title"] = ticket.title
    data["status"] = {"label": ticket.status}
    data["priority"] = {"label": ticket.priority}
    data["messages"] = [
        render_message(message, shape, origin) for message in ticket.messages
    ]
    data["answers"] = [_answer(answer, origin) for answer in ticket.answers]

    return data


def render_message(message: Message, shape: Shape, origin: str) -> Json:
    """One message of a thread."""
    data: Json = {
        "id": message.id,
        "content": message.content,
        "author_type": message.author_type,
    }
    if shape == "integration":
        data["author_name"] = message.author_name
    data["created_at"] = format_timestamp(message.created_at)
    data["attachments"] = [
        render_attachment(item, origin) for item in message.attachments
    ]

    return data


def render_reply(message: Message, shape: Shape, origin: str) -> Json:
    """
    The ``data`` of ``POST /ticket/messages``.

    The vendor's example shows four fields only; the integration shape
    adds the author's name and the attachments.
    """
    if shape == "integration":
        return render_message(message, shape, origin)

    return {
        "id": message.id,
        "content": message.content,
        "author_type": message.author_type,
        "created_at": format_timestamp(message.created_at),
    }


def render_attachment(attachment: Attachment, origin: str) -> Json:
    """An attachment as the API shows it."""
    return {
        "id": attachment.id,
        "url": f"{origin}{FILES_PATH}/{attachment.id}",
        "original_filename": attachment.original_filename,
        "mime_type": attachment.mime_type,
    }


def render_ticket_admin(ticket: Ticket, origin: str) -> Json:
    """Everything about a ticket, for the sandbox's control endpoints."""
    return {
        "id": ticket.id,
        "title": ticket.title,
        "reporter_email": ticket.reporter_email,
        "template_id": ticket.template_id,
        "website_key": ticket.website_key,
        "created_at": format_timestamp(ticket.created_at),
        "status": ticket.status,
        "priority": ticket.priority,
        "tokens": list(ticket.tokens),
        "messages": [
            {
                **render_message(message, "integration", origin),
                "attachments": [
                    _attachment_admin(item, origin)
                    for item in message.attachments
                ],
            }
            for message in ticket.messages
        ],
        "answers": [
            {
                "id": answer.id,
                "question_id": answer.question_id,
                "question_label": answer.question_label,
                "answer": answer.answer,
                "attachments": [
                    _attachment_admin(item, origin)
                    for item in answer.attachments
                ],
            }
            for answer in ticket.answers
        ],
    }


def _attachment_admin(attachment: Attachment, origin: str) -> Json:
    return {
        **render_attachment(attachment, origin),
        "size": attachment.size,
        "sha256": attachment.sha256,
        "stored": attachment.stored,
    }


def _template(template: Template, shape: Shape) -> Json:
    data: Json = {
        "id": template.id,
        "name": template.name,
        "description": template.description,
    }
    if shape == "integration":
        data["icon"] = template.icon
    data["questions"] = [
        _question(question, shape) for question in template.questions
    ]

    return data


def _question(question: Question, shape: Shape) -> Json:
    options: list[Any]
    if shape == "integration":
        options = [
            {"value": option.value, "label": option.label}
            for option in question.options
        ]
    else:
        options = [option.value for option in question.options]

    return {
        "id": question.id,
        "label": question.label,
        "type": question.type,
        "required": question.required,
        "order": question.order,
        "options": options,
    }


def _faq(faq: Faq, shape: Shape) -> Json:
    if shape == "integration":
        return {"question": faq.question, "answer": faq.answer}

    return {"id": faq.id, "question": faq.question, "answer": faq.answer}


def _answer(answer: Answer, origin: str) -> Json:
    return {
        "id": answer.id,
        "question_label": answer.question_label,
        "answer": answer.answer,
        "attachments": [
            render_attachment(item, origin) for item in answer.attachments
        ],
    }
