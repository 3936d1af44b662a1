"""
Checking a ticket or a reply before it is sent, and laying out its body.

A ticket whose template is known is checked against it: required questions
answered, no unknown question ids, and a value of the right type for each
question. Every problem is collected, so that one error lists them all.
A body with files becomes the multipart layout that the API expects: a
``data`` field with the JSON payload, where each file question is answered
with ``"__isFile:true"``, and one part per file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

import attrs

from .._models import Option, Question, QuestionType, Template
from .._uploads import FileUpload, as_upload
from ..exceptions import AnswerProblem
from .codec import ReplyDraft, TicketDraft, dumps, unstructure

__all__ = [
    "FILE_MARKER",
    "Body",
    "FilePart",
    "check_reply",
    "check_ticket",
    "reply_body",
    "ticket_body",
]

FILE_MARKER = "__isFile:true"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


@attrs.frozen
class FilePart:
    """One file of a multipart body, under its form field name."""

    field: str
    upload: FileUpload


@attrs.frozen
class Body:
    """
    What a POST sends: the JSON payload, and the files if there are any.

    With no files the payload goes out as ``application/json``; with files,
    as a multipart form whose ``data`` field holds the payload.
    """

    payload: bytes
    files: tuple[FilePart, ...] = ()

    @property
    def is_multipart(self) -> bool:
        return bool(self.files)


def check_ticket(
    *,
    email: str,
    title: str,
    template_id: str,
    template: Template | None,
    answers: Mapping[str, Any],
) -> tuple[dict[str, str | bool], list[FilePart], list[AnswerProblem]]:
    """
    Check a ticket and split its answers into JSON values and files.

    Returns the JSON answers (files replaced by the marker), the file parts,
    and every problem found; the ticket may be sent only when there are none.
    """
    problems: list[AnswerProblem] = []
    if not isinstance(email, str) or not _EMAIL.match(email.strip()):
        problems.append(
            AnswerProblem("email", f"{email!r} is not an email address")
        )
    if not isinstance(title, str) or not title.strip():
        problems.append(AnswerProblem("title", "the title is empty"))
    if not isinstance(template_id, str) or not template_id:
        problems.append(AnswerProblem("template", "no template was given"))

    questions = {q.id: q for q in template.questions} if template else {}
    json_answers: dict[str, str | bool] = {}
    files: list[FilePart] = []
    for question_id, value in answers.items():
        question = questions.get(question_id)
        if template is not None and question is None:
            known = ", ".join(sorted(questions)) or "none"
            problems.append(
                AnswerProblem(
                    str(question_id),
                    f"template {template.id!r} has no such question "
                    f"(its questions: {known})",
                )
            )
            continue
        if value is None:
            continue
        upload = as_upload(value)
        if upload is not None:
            if question is not None and question.type != QuestionType.FILE:
                problems.append(_wrong(question, "a file"))
                continue
            if (reason := upload.check()) is not None:
                problems.append(
                    AnswerProblem(
                        question_id,
                        f"cannot upload: {reason}",
                        _label(question),
                    )
                )
                continue
            files.append(FilePart(f"files[{question_id}]", upload))
            json_answers[question_id] = FILE_MARKER
            continue
        converted = _convert(question, value)
        if isinstance(converted, AnswerProblem):
            problems.append(converted)
        else:
            json_answers[question_id] = converted

    if template is not None:
        judged = json_answers.keys() | {p.field for p in problems}
        problems.extend(_missing(template.questions, judged))

    return json_answers, files, problems


def ticket_body(
    *,
    email: str,
    title: str,
    template_id: str,
    answers: dict[str, str | bool],
    files: Sequence[FilePart],
) -> Body:
    draft = TicketDraft(
        email=email.strip(),
        title=title.strip(),
        template_id=template_id,
        answers=answers,
    )

    return Body(dumps(unstructure(draft)), tuple(files))


def check_reply(
    content: str, attachments: Iterable[object]
) -> tuple[list[FilePart], list[AnswerProblem]]:
    problems: list[AnswerProblem] = []
    if not isinstance(content, str) or not content.strip():
        problems.append(AnswerProblem("content", "the reply is empty"))
    files: list[FilePart] = []
    for index, value in enumerate(attachments):
        upload = as_upload(value)
        where = f"attachments[{index}]"
        if upload is None:
            problems.append(
                AnswerProblem(
                    where,
                    f"expected a FileUpload or a path, got "
                    f"{type(value).__name__}",
                )
            )
        elif (reason := upload.check()) is not None:
            problems.append(AnswerProblem(where, f"cannot upload: {reason}"))
        else:
            files.append(FilePart("files", upload))

    return files, problems


def reply_body(content: str, files: Sequence[FilePart]) -> Body:
    return Body(dumps(unstructure(ReplyDraft(content=content))), tuple(files))


def _label(question: Question | None) -> str | None:
    return question.label if question is not None else None


def _wrong(question: Question, expected: str) -> AnswerProblem:
    return AnswerProblem(
        question.id,
        f"a {question.type} question takes {expected}",
        question.label,
    )


def _convert(
    question: Question | None, value: Any
) -> str | bool | AnswerProblem:
    """The JSON value for one answer, or the problem with it."""
    kind = question.type if question is not None else None
    if kind in (QuestionType.TEXT, QuestionType.TEXTAREA):
        known = _known(question)
        if not isinstance(value, str):
            return _wrong(known, "a string")
        if known.required and not value.strip():
            return AnswerProblem(known.id, "is required", known.label)
        return value
    if kind == QuestionType.SELECT:
        return _select(_known(question), value)
    if kind == QuestionType.CHECKBOX:
        if not isinstance(value, bool):
            return _wrong(_known(question), "True or False")
        return value
    if kind == QuestionType.DATE:
        return _date(_known(question), value)
    if kind == QuestionType.FILE:
        return _wrong(_known(question), "a FileUpload or a path")
    # No template, or a question type newer than this SDK: send plain JSON
    # scalars as they are and let the server judge them.
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str | bool):
        return value
    return AnswerProblem(
        "?" if question is None else question.id,
        f"cannot send a {type(value).__name__} as an answer",
        _label(question),
    )


def _known(question: Question | None) -> Question:
    assert question is not None  # callers only pass typed questions here
    return question


def _select(question: Question, value: Any) -> str | AnswerProblem:
    if isinstance(value, Option):
        value = value.value
    values = [option.value for option in question.options]
    if not isinstance(value, str) or (values and value not in values):
        choices = ", ".join(repr(v) for v in values)
        return AnswerProblem(
            question.id,
            f"{value!r} is not one of the options ({choices})",
            question.label,
        )
    return value


def _date(question: Question, value: Any) -> str | AnswerProblem:
    if isinstance(value, dt.datetime):
        return _wrong(question, "a datetime.date, not a datetime")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    return AnswerProblem(
        question.id,
        f"{value!r} is not a date; pass a datetime.date or 'YYYY-MM-DD'",
        question.label,
    )


def _missing(
    questions: Iterable[Question], judged: Set[str]
) -> list[AnswerProblem]:
    return [
        AnswerProblem(question.id, "is required", question.label)
        for question in questions
        if question.required and question.id not in judged
    ]
