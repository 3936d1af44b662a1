"""
Turning an input row into a ticket: columns, template, values, checks.

Which column feeds what, in order of precedence:

1. ``column_map`` (``--map "Column=target"``): the target is ``email``,
   ``title``, ``template``, a question id, or a question's exact label (the
   id is tried first); an empty target ignores the column.
2. A column named ``email``, ``title`` or ``template`` (in any case).
3. A column named exactly as a question id of the row's template.
4. A column named exactly as a question label of the row's template.

Other columns are ignored. Text is turned into the value each question
type takes, and the whole ticket then goes through the same checks as
`VicketClient.create_ticket`, without any I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from .._models import Question, QuestionType, SupportPage, Template
from .._protocol.answers import check_ticket
from ..exceptions import AnswerProblem, ConfigurationError

__all__ = ["RESERVED", "Draft", "Resolver", "content_key"]

#: The targets that are not questions.
RESERVED: Final = ("email", "title", "template")

_TRUE = frozenset({"true", "yes", "y", "1", "on", "x", "checked"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "", "unchecked"})
# Rows can bring any key set and any template name; the caches of column
# plans and templates are dropped when they grow past this, so that memory
# stays flat.
_MAX_PLANS = 256


@attrs.frozen
class Draft:
    """A row resolved into what ``create_ticket`` takes."""

    email: str
    title: str
    template: Template
    answers: Mapping[str, Any]


@attrs.frozen
class Resolved:
    """A resolved row: the draft when it is valid, else its problems."""

    draft: Draft | None
    problems: tuple[str, ...]
    email: str | None
    title: str | None


@attrs.frozen
class _Plan:
    """Where one template's answers come from, for one set of columns."""

    questions: tuple[tuple[str, Question], ...]
    misses: tuple[tuple[str, str], ...]


def content_key(fields: Mapping[str, Any]) -> str:
    """
    A hash of a row's content that ignores what does not matter.

    Column order, blank cells, surrounding spaces and line-ending style
    leave it unchanged, so a file saved again by a spreadsheet keeps its
    keys.
    """
    items = sorted(
        (str(name).strip(), _normal(value))
        for name, value in fields.items()
        if not _blank(value)
    )
    digest = hashlib.sha256(
        orjson.dumps(items, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()

    return digest[:32]


def _normal(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().replace("\r\n", "\n")
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Resolver:
    """
    Resolves rows against the templates of one support page.

    Raises:
        ConfigurationError: ``template`` or a ``column_map`` target matches
            nothing on the page.
    """

    def __init__(
        self,
        page: SupportPage,
        *,
        template: str | None = None,
        column_map: Mapping[str, str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._page = page
        self._map = {
            column.strip(): target.strip()
            for column, target in (column_map or {}).items()
        }
        self._base_dir = Path(base_dir) if base_dir is not None else Path()
        self._default: Template | None = None
        if template:
            self._default = _find_template(page, template)
            if self._default is None:
                msg = f"no template {template!r}; {_known_templates(page)}"
                raise ConfigurationError(msg)
        self._check_map()
        self._templates: dict[str, Template | None] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def _check_map(self) -> None:
        for column, target in self._map.items():
            if not target or target.casefold() in RESERVED:
                continue
            if not any(_question(t, target) for t in self._page.templates):
                msg = (
                    f"the column map {column!r}={target!r}: no template has "
                    f"a question with that id or label"
                )
                raise ConfigurationError(msg)
        for template in self._page.templates:
            taken: dict[str, str] = {}
            for column, target in self._map.items():
                question = _question(template, target) if target else None
                if question is None:
                    continue
                if question.id in taken:
                    msg = (
                        f"the columns {taken[question.id]!r} and {column!r} "
                        f"both map to question {question.id!r} of template "
                        f"{template.id!r}"
                    )
                    raise ConfigurationError(msg)
                taken[question.id] = column

    def ignored_columns(self, columns: Iterable[str]) -> list[str]:
        """The columns that feed nothing under any template."""
        ignored = []
        for column in columns:
            if column in self._map or column.casefold() in RESERVED:
                continue
            if not any(_question(t, column) for t in self._page.templates):
                ignored.append(column)

        return ignored

    def _reserved(self, fields: Mapping[str, Any], name: str) -> Any:
        for column, target in self._map.items():
            if target.casefold() == name:
                return fields.get(column)
        for column, value in fields.items():
            if column.casefold() == name and column not in self._map:
                return value

        return None

    def identify(self, fields: Mapping[str, Any]) -> tuple[str, str]:
        """A row's reporter email and title, without checking anything."""
        email = _text(self._reserved(fields, "email")).strip()
        title = _text(self._reserved(fields, "title")).strip()

        return email, title

    def resolve(self, fields: Mapping[str, Any]) -> Resolved:
        """Resolve one row's fields; every problem is listed, not the first."""
        problems: list[str] = []
        email = _text(self._reserved(fields, "email"))
        title = _text(self._reserved(fields, "title"))
        template = self._default
        named = _text(self._reserved(fields, "template"))
        if named:
            template = self._template(named)
            if template is None:
                problems.append(
                    f"template: no template {named!r}; "
                    f"{_known_templates(self._page)}"
                )
        elif template is None:
            problems.append(
                "template: the row names no template and no default was "
                "given (a 'template' column, or --template)"
            )
        if template is None:
            if not email or not title:
                problems.extend(_basic_problems(email, title))
            return Resolved(None, tuple(problems), email or None, title)

        plan = self._plan(template, tuple(fields))
        for column, target in plan.misses:
            if not _blank(fields.get(column)):
                problems.append(
                    f"column {column!r}: template {template.id!r} has no "
                    f"question {target!r}"
                )
        answers: dict[str, Any] = {}
        columns: dict[str, str] = {}
        for column, question in plan.questions:
            raw = fields.get(column)
            if _blank(raw):
                continue
            answers[question.id] = self._value(question, raw)
            columns[question.id] = column
        _, _, found = check_ticket(
            email=email,
            title=title,
            template_id=template.id,
            template=template,
            answers=answers,
        )
        problems.extend(_describe(found, columns))
        if problems:
            return Resolved(None, tuple(problems), email or None, title)
        draft = Draft(
            email=email.strip(),
            title=title.strip(),
            template=template,
            answers=answers,
        )

        return Resolved(draft, (), draft.email, draft.title)

    def _template(self, name: str) -> Template | None:
        if name not in self._templates:
            if len(self._templates) >= _MAX_PLANS:
                self._templates.clear()
            self._templates[name] = _find_template(self._page, name)

        return self._templates[name]

    def _plan(self, template: Template, columns: tuple[str, ...]) -> _Plan:
        key = (template.id, columns)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = self._make_plan(template, columns)

        return plan

    def _make_plan(self, template: Template, columns: Sequence[str]) -> _Plan:
        chosen: dict[str, tuple[int, str, Question]] = {}
        misses: list[tuple[str, str]] = []
        for column in columns:
            target = self._map.get(column)
            if target is not None:
                if not target or target.casefold() in RESERVED:
                    continue
                question = _question(template, target)
                if question is None:
                    misses.append((column, target))
                    continue
                rank = 0
            elif column.casefold() in RESERVED:
                continue
            else:
                question = _question(template, column)
                if question is None:
                    continue
                rank = 1 if question.id == column else 2
            best = chosen.get(question.id)
            if best is None or rank < best[0]:
                chosen[question.id] = (rank, column, question)
        questions = tuple(
            (column, question) for _, column, question in chosen.values()
        )

        return _Plan(questions, tuple(misses))

    def _value(self, question: Question, raw: Any) -> Any:
        kind = question.type
        if kind in (QuestionType.TEXT, QuestionType.TEXTAREA):
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return str(raw)
            return raw
        if kind == QuestionType.SELECT:
            return _option(question, raw)
        if kind == QuestionType.CHECKBOX:
            return _checkbox(raw)
        if kind == QuestionType.DATE:
            return _date(raw)
        if kind == QuestionType.FILE and isinstance(raw, str):
            return self._base_dir / raw.strip()
        return raw


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()

    return str(value)


def _basic_problems(email: str, title: str) -> list[str]:
    problems = []
    if not email.strip():
        problems.append("email: the reporter's email is missing")
    if not title.strip():
        problems.append("title: the title is empty")

    return problems


def _find_template(page: SupportPage, name: str) -> Template | None:
    try:
        return page.template(name.strip())
    except KeyError:
        return None


def _known_templates(page: SupportPage) -> str:
    known = ", ".join(f"{t.id} ({t.name})" for t in page.templates)

    return f"the templates are: {known or 'none'}"


def _question(template: Template, id_or_label: str) -> Question | None:
    try:
        return template.question(id_or_label)
    except KeyError:
        return None


def _option(question: Question, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    for option in question.options:
        if option.value == text:
            return option.value
    for option in question.options:
        if option.label == text:
            return option.value
    folded = text.casefold()
    close = {
        option.value
        for option in question.options
        if folded in (option.value.casefold(), option.label.casefold())
    }
    if len(close) == 1:
        return close.pop()

    return text


def _checkbox(raw: Any) -> Any:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().casefold()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False

    return raw


def _date(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        # Exports often carry a timestamp where a date is asked for.
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return text


def _describe(
    problems: Iterable[AnswerProblem], columns: Mapping[str, str]
) -> list[str]:
    described = []
    for problem in problems:
        column = columns.get(problem.field)
        text = str(problem)
        if column is not None and column != problem.field:
            text = f"{text} (column {column!r})"
        described.append(text)

    return described
