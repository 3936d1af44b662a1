"""Checks a new ticket must pass, worded the way the service words them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import NoReturn

import attrs

from ._records import Attachment, Question, Template, Website
from ._web import ApiError

__all__ = ["FILE_MARKER", "TicketDraft", "validate_ticket"]

FILE_MARKER = "__isFile:true"
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_EMAIL = 254
_MAX_TITLE = 200

AnswerValue = str | bool | None


@attrs.frozen
class TicketDraft:
    """A ticket that passed validation, ready to be stored."""

    email: str
    title: str
    template: Template
    answers: tuple[tuple[Question, AnswerValue, tuple[Attachment, ...]], ...]


def validate_ticket(
    website: Website,
    payload: object,
    files: Mapping[str, Attachment],
    *,
    multipart: bool,
) -> TicketDraft:
    """
    Check a ticket payload against *website*'s templates.

    *files* maps question ids to the files sent as ``files[ID]`` parts.
    The first problem found becomes a 400 answer naming the field or the
    question at fault.
    """
    if not isinstance(payload, dict):
        _invalid("The ticket must be a JSON object")
    email = _email(payload.get("email"))
    title = _title(payload.get("title"))
    template = _template(website, payload.get("templateId"))
    answers = payload.get("answers", {})
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        _invalid("The field 'answers' must be an object keyed by question id")
    for question_id in answers:
        if template.question(question_id) is None:
            msg = (
                f"The answer '{question_id}' matches no question of the "
                f"template '{template.name}'"
            )
            _invalid(msg)
    for question_id in files:
        question = template.question(question_id)
        if question is None:
            msg = (
                f"The file part files[{question_id}] matches no question of "
                f"the template '{template.name}'"
            )
            _invalid(msg)
        if question.type != "FILE":
            msg = (
                f"The question '{question.label}' does not take a file, but "
                f"files[{question_id}] was sent"
            )
            _invalid(msg)
    checked = []
    for question in sorted(template.questions, key=lambda q: q.order):
        value = answers.get(question.id)
        if question.type == "FILE":
            item = _file_answer(question, value, files, multipart=multipart)
        else:
            item = _plain_answer(question, value)
        if item is not None:
            checked.append(item)

    return TicketDraft(
        email=email, title=title, template=template, answers=tuple(checked)
    )


def _invalid(message: str) -> NoReturn:
    raise ApiError(400, "validation-error", message)


def _email(value: object) -> str:
    if value is None:
        _invalid("The field 'email' is required")
    if (
        not isinstance(value, str)
        or len(value) > _MAX_EMAIL
        or not _EMAIL.fullmatch(value)
    ):
        msg = f"The email address {value!r} is not valid"
        _invalid(msg)

    return value


def _title(value: object) -> str:
    if value is None:
        _invalid("The field 'title' is required")
    if not isinstance(value, str):
        _invalid("The title must be text")
    if not value.strip():
        _invalid("The title must not be empty")
    if len(value) > _MAX_TITLE:
        msg = f"The title must be at most {_MAX_TITLE} characters long"
        _invalid(msg)

    return value.strip()


def _template(website: Website, value: object) -> Template:
    if value is None:
        _invalid("The field 'templateId' is required")
    if not isinstance(value, str):
        _invalid("The field 'templateId' must be text")
    template = website.templates.get(value)
    if template is None:
        msg = f"No ticket template has the id {value!r}"
        raise ApiError(400, "template-not-found", msg)

    return template


def _plain_answer(
    question: Question, value: object
) -> tuple[Question, AnswerValue, tuple[Attachment, ...]] | None:
    label = question.label
    if value is None or (isinstance(value, str) and not value.strip()):
        if question.required:
            msg = f"The question '{label}' is required"
            _invalid(msg)

        return None
    if question.type in ("TEXT", "TEXTAREA"):
        if not isinstance(value, str):
            msg = f"The answer to '{label}' must be text"
            _invalid(msg)
    elif question.type == "SELECT":
        allowed = [option.value for option in question.options]
        if value not in allowed:
            msg = (
                f"The answer to '{label}' must be one of: "
                f"{', '.join(allowed)} (got {value!r})"
            )
            _invalid(msg)
    elif question.type == "CHECKBOX":
        if not isinstance(value, bool):
            msg = f"The answer to '{label}' must be true or false"
            _invalid(msg)
    elif question.type == "DATE" and not _is_date(value):
        msg = (
            f"The answer to '{label}' must be a date written YYYY-MM-DD "
            f"(got {value!r})"
        )
        _invalid(msg)
    if not isinstance(value, str | bool):
        msg = f"The answer to '{label}' must be text"
        _invalid(msg)

    return question, value, ()


def _file_answer(
    question: Question,
    value: object,
    files: Mapping[str, Attachment],
    *,
    multipart: bool,
) -> tuple[Question, AnswerValue, tuple[Attachment, ...]] | None:
    label = question.label
    part = f"files[{question.id}]"
    if value is None and question.id not in files:
        if question.required:
            msg = (
                f"The question '{label}' is required: attach a file as the "
                f"multipart part {part}"
            )
            _invalid(msg)

        return None
    if not multipart:
        msg = (
            f"The question '{label}' takes a file: send the ticket as "
            f"multipart/form-data with the file in the part {part}"
        )
        _invalid(msg)
    if value != FILE_MARKER:
        msg = (
            f"The answer to '{label}' must be {FILE_MARKER!r}, with the file "
            f"in the part {part}"
        )
        _invalid(msg)
    attachment = files.get(question.id)
    if attachment is None:
        msg = f"The question '{label}' expects a file, but no {part} was sent"
        _invalid(msg)

    return question, attachment.original_filename, (attachment,)


def _is_date(value: object) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False

    return True
