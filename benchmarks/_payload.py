"""
A large ``/init`` document, the same bytes for the same arguments.

It mixes the shapes that the codec tolerates, in small doses, so that
the benchmark times the code paths real traffic takes: option objects
and plain-string options, ``null`` for an empty option list, a question
type this SDK does not know, fields no model has, FAQs without an id.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["init_body", "init_document"]

_TYPES = ("TEXT", "TEXTAREA", "SELECT", "CHECKBOX", "DATE", "FILE")
_PARAGRAPH = (
    "<p>Open <strong>Settings</strong>, then <em>Billing</em>, and follow "
    'the steps in <a href="/help/billing">the billing guide</a>; '
    "invoices older than a year are archived &amp; sent on request.</p>\n"
)


def init_document(
    *,
    templates: int = 300,
    questions: int = 20,
    articles: int = 300,
    article_bytes: int = 3000,
    faqs: int = 200,
) -> dict[str, Any]:
    """The ``data`` member of a large ``/init`` answer, as Python data."""
    return {
        "website": {"name": "Benchmark Support", "theme": "dark"},
        "templates": [_template(t, questions) for t in range(templates)],
        "articles": [_article(a, article_bytes) for a in range(articles)],
        "faqs": [_faq(f) for f in range(faqs)],
    }


def init_body(
    *,
    templates: int = 300,
    questions: int = 20,
    articles: int = 300,
    article_bytes: int = 3000,
    faqs: int = 200,
) -> bytes:
    """`init_document` as JSON bytes."""
    return orjson.dumps(
        init_document(
            templates=templates,
            questions=questions,
            articles=articles,
            article_bytes=article_bytes,
            faqs=faqs,
        )
    )


def _template(t: int, questions: int) -> dict[str, Any]:
    # One template in four lists its options as plain strings, the way
    # the vendor's reference does; the rest send value/label objects.
    plain_options = t % 4 == 3

    return {
        "id": f"tpl_{t:04d}",
        "name": f"Template {t + 1}: questions about area {t % 17}",
        "description": f"Generated template number {t + 1} for benchmarks",
        "icon": ("bug", "credit-card", "lightbulb", None)[t % 4],
        "position": t,
        "questions": [
            _question(t, q, plain_options=plain_options)
            for q in range(questions)
        ],
    }


def _question(t: int, q: int, *, plain_options: bool) -> dict[str, Any]:
    kind = _TYPES[q % len(_TYPES)]
    if (t * 31 + q) % 50 == 7:
        kind = "RATING"
    options: list[Any] | None = []
    if kind == "SELECT":
        if plain_options:
            options = [f"choice_{o}" for o in range(5)]
        else:
            options = [
                {"value": f"choice_{o}", "label": f"Choice number {o + 1}"}
                for o in range(5)
            ]
    elif (t + q) % 7 == 0:
        options = None

    return {
        "id": f"q_{t:04d}_{q:02d}",
        "label": f"Question {q + 1} of template {t + 1}: tell us more",
        "type": kind,
        "required": q % 3 == 0,
        "order": q + 1,
        "options": options,
    }


def _article(a: int, article_bytes: int) -> dict[str, Any]:
    repeats = max(1, article_bytes // len(_PARAGRAPH))

    return {
        "id": f"art_{a:04d}",
        "title": f"Article {a + 1}: how billing works, part {a % 9}",
        "slug": f"article-{a + 1}",
        "content": f"<h1>Article {a + 1}</h1>\n" + _PARAGRAPH * repeats,
        "category": f"Category {a % 7 + 1}",
        "type": "faq" if a % 5 == 0 else "article",
        "views": a * 13,
    }


def _faq(f: int) -> dict[str, Any]:
    faq: dict[str, Any] = {
        "question": f"Generated question number {f + 1}?",
        "answer": f"Generated answer number {f + 1}, with some detail.",
    }
    if f % 2 == 0:
        faq["id"] = f"faq_{f:04d}"

    return faq
