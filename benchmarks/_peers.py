"""
The models a user would write with pydantic v2 or msgspec instead of ours.

The pydantic models match ours in behaviour on everything the benchmark
payloads contain: frozen, tuples for lists, unknown fields ignored, ``null``
option lists read as empty, plain-string options turned into options,
unknown question and author types kept as text, ``subject`` read as the
title and status labels unwrapped.  The msgspec structs are what msgspec
can express without hooks: they keep plain-string options as strings and
question types as text, so they do a little less work than the others.

Neither library is a dependency of the SDK; import this module only from
a benchmark.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from vicket_async import AuthorType, QuestionType

__all__ = [
    "MsgspecSupportPage",
    "PydanticEnvelope",
    "PydanticSupportPage",
    "PydanticTicket",
    "PydanticTicketCreated",
]


ModelT = TypeVar("ModelT")


def _empty_if_null(value: Any) -> Any:
    return () if value is None else value


def _option(value: Any) -> Any:
    if isinstance(value, str):
        return {"value": value, "label": value}

    return value


def _label(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("label", value.get("name"))

    return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PydanticWebsite(_Model):
    name: str | None = None


class PydanticOption(_Model):
    value: str
    label: str


class PydanticQuestion(_Model):
    id: str
    label: str
    type: Annotated[QuestionType | str, Field(union_mode="left_to_right")]
    required: bool = False
    order: int = 0
    options: Annotated[
        tuple[Annotated[PydanticOption, BeforeValidator(_option)], ...],
        BeforeValidator(_empty_if_null),
    ] = ()


class PydanticTemplate(_Model):
    id: str
    name: str
    description: str | None = None
    icon: str | None = None
    questions: Annotated[
        tuple[PydanticQuestion, ...], BeforeValidator(_empty_if_null)
    ] = ()


class PydanticArticle(_Model):
    id: str | None = None
    title: str = ""
    slug: str
    content: str = ""
    category: str | None = None
    type: str | None = None


class PydanticFaq(_Model):
    question: str
    answer: str = ""
    id: str | None = None


class PydanticSupportPage(_Model):
    website: PydanticWebsite = PydanticWebsite()
    templates: Annotated[
        tuple[PydanticTemplate, ...], BeforeValidator(_empty_if_null)
    ] = ()
    articles: Annotated[
        tuple[PydanticArticle, ...], BeforeValidator(_empty_if_null)
    ] = ()
    faqs: Annotated[
        tuple[PydanticFaq, ...], BeforeValidator(_empty_if_null)
    ] = ()


class PydanticAttachment(_Model):
    id: str | None = None
    url: str | None = None
    original_filename: str | None = None
    mime_type: str | None = None


class PydanticMessage(_Model):
    id: str
    content: str = ""
    author_type: Annotated[
        AuthorType | str, Field(union_mode="left_to_right")
    ] = AuthorType.REPORTER
    author_name: str | None = None
    created_at: dt.datetime | None = None
    attachments: Annotated[
        tuple[PydanticAttachment, ...], BeforeValidator(_empty_if_null)
    ] = ()


class PydanticAnswer(_Model):
    question_label: str = ""
    answer: str | bool | None = None
    id: str | None = None
    attachments: Annotated[
        tuple[PydanticAttachment, ...], BeforeValidator(_empty_if_null)
    ] = ()


class PydanticTicket(_Model):
    id: str
    title: str = Field("", validation_alias=AliasChoices("title", "subject"))
    status: Annotated[str | None, BeforeValidator(_label)] = None
    priority: Annotated[str | None, BeforeValidator(_label)] = None
    messages: Annotated[
        tuple[PydanticMessage, ...], BeforeValidator(_empty_if_null)
    ] = ()
    answers: Annotated[
        tuple[PydanticAnswer, ...], BeforeValidator(_empty_if_null)
    ] = ()
    token: str | None = Field(default=None, repr=False)


class PydanticTicketCreated(_Model):
    email_limit_reached: bool = False
    warning: str | None = None


class PydanticEnvelope(_Model, Generic[ModelT]):
    """The success envelope around a model, read in one pass."""

    success: bool
    data: ModelT


class MsgspecWebsite(msgspec.Struct, frozen=True):
    name: str | None = None


class MsgspecOption(msgspec.Struct, frozen=True):
    value: str
    label: str


class MsgspecQuestion(msgspec.Struct, frozen=True):
    id: str
    label: str
    type: str
    required: bool = False
    order: int = 0
    options: tuple[MsgspecOption | str, ...] | None = ()


class MsgspecTemplate(msgspec.Struct, frozen=True):
    id: str
    name: str
    description: str | None = None
    icon: str | None = None
    questions: tuple[MsgspecQuestion, ...] | None = ()


class MsgspecArticle(msgspec.Struct, frozen=True):
    slug: str
    id: str | None = None
    title: str = ""
    content: str = ""
    category: str | None = None
    type: str | None = None


class MsgspecFaq(msgspec.Struct, frozen=True):
    question: str
    answer: str = ""
    id: str | None = None


class MsgspecSupportPage(msgspec.Struct, frozen=True):
    website: MsgspecWebsite = MsgspecWebsite()
    templates: tuple[MsgspecTemplate, ...] | None = ()
    articles: tuple[MsgspecArticle, ...] | None = ()
    faqs: tuple[MsgspecFaq, ...] | None = ()
