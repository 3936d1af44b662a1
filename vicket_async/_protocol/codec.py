"""
cattrs converters between the API's JSON and the attrs models.

Two converters are built per mode (tolerant or strict): a fast one with
cattrs' detailed validation off, used for every answer, and a detailed one
that runs only after the fast one failed, to say precisely which field was
wrong. The tolerant fast converter, the one almost every answer goes
through, structures the models with the hand-written hooks of
``fasthooks``; the others use the hooks that cattrs generates.

Tolerance covers the shapes that real traffic shows: options as strings or
objects, ``subject`` for ``title``, labels as objects or strings,
unknown enum values, ``null`` lists, and missing optional fields.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import orjson
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.gen import override as field_override

from .._models import (
    Answer,
    Article,
    Attachment,
    AuthorType,
    Faq,
    Message,
    Option,
    Question,
    QuestionType,
    SupportPage,
    Template,
    Ticket,
    TicketCreated,
    Website,
)
from .fasthooks import builder, register_fast_hooks

T = TypeVar("T")

_MISSING: Any = object()

__all__ = [
    "DecodeError",
    "ReplyDraft",
    "TicketDraft",
    "decode",
    "dumps",
    "loads",
    "make_converter",
    "unstructure",
]


class DecodeError(ValueError):
    """The JSON did not fit the expected model; the message says where."""


@attrs.frozen(kw_only=True)
class TicketDraft:
    """The body of ``POST /tickets``, before it becomes JSON."""

    email: str
    title: str
    template_id: str
    answers: dict[str, str | bool]


@attrs.frozen(kw_only=True)
class ReplyDraft:
    """The body of ``POST /ticket/messages``, before it becomes JSON."""

    content: str


def loads(body: bytes | str) -> Any:
    return orjson.loads(body)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def _parse_datetime(value: Any, _: type) -> dt.datetime:
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
    elif isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    else:
        msg = f"expected an ISO 8601 timestamp, got {type(value).__name__}"
        raise TypeError(msg)
    if parsed.tzinfo is None:
        # The API speaks UTC; a timestamp without an offset is UTC too.
        parsed = parsed.replace(tzinfo=dt.UTC)

    return parsed


def _format_datetime(value: dt.datetime) -> str:
    text = value.astimezone(dt.UTC).isoformat()

    return text.replace("+00:00", "Z")


def _open_enum(enum_cls: type[enum.Enum]) -> Callable[[Any, Any], Any]:
    # A dict lookup: calling the enum class costs several times as much.
    members = dict(enum_cls._value2member_map_)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, str):
            msg = f"expected a string, got {type(value).__name__}"
            raise TypeError(msg)
        # A kind added to the API after this release stays text.
        return members.get(value, value)

    return structure


_build_option = builder(Option)


def _option(value: Any, _: Any = None) -> Option:
    # Exact type checks first: JSON gives plain str and dict, and the
    # Mapping check goes through the ABC machinery.
    if type(value) is dict or (
        not isinstance(value, str) and isinstance(value, Mapping)
    ):
        label = value.get("label", _MISSING)
        raw = value.get("value", _MISSING)
        if raw is _MISSING:
            raw = None if label is _MISSING else label
        if raw is None:
            msg = "an option needs a value or a label"
            raise ValueError(msg)
        if label is _MISSING:
            label = raw
        return _build_option(str(raw), str(label))
    if isinstance(value, str):
        return _build_option(value, value)
    msg = f"expected an option, got {type(value).__name__}"
    raise TypeError(msg)


def _optional_str(value: Any, _: Any) -> str | None:
    # What cattrs does for ``str | None``, without its dispatch per value.
    return None if value is None else str(value)


def _label(value: Any, _: type) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        label = value.get("label", value.get("name"))
        return None if label is None else str(label)
    msg = f"expected a label, got {type(value).__name__}"
    raise TypeError(msg)


def _answer_value(value: Any, _: type) -> str | bool | None:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return dumps(value).decode()


def _is_tuple_of(tp: Any) -> bool:
    return getattr(tp, "__origin__", None) is tuple


def _not_a_list(value: Any) -> TypeError:
    msg = f"expected a list, got {type(value).__name__}"

    return TypeError(msg)


def _tuple_hook(
    converter: cattrs.Converter, tp: Any, *, detailed: bool
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """
    The hook for ``tuple[X, ...]``, with X's hook looked up once.

    ``null`` reads as an empty tuple.
    """
    item_type = tp.__args__[0]
    item = converter.get_structure_hook(item_type)

    def structure_fast(value: Any, _: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            if value is None:
                return ()
            if not isinstance(value, list | tuple):
                raise _not_a_list(value)
        return tuple([item(entry, item_type) for entry in value])

    def structure_detailed(value: Any, _: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise _not_a_list(value)
        items, errors = [], []
        for index, entry in enumerate(value):
            try:
                items.append(item(entry, item_type))
            except Exception as error:
                note = IterableValidationNote(
                    f"Structuring {tp} @ index {index}", index, item_type
                )
                error.__notes__ = [*getattr(error, "__notes__", []), note]
                errors.append(error)
        if errors:
            msg = f"While structuring {tp!r}"
            raise IterableValidationError(msg, errors, tp)
        return tuple(items)

    return structure_detailed if detailed else structure_fast


def make_converter(
    *, strict: bool = False, detailed: bool = False, hand_written: bool = True
) -> cattrs.Converter:
    """
    A converter for the API's models.

    ``strict`` rejects fields the models do not know; ``detailed`` makes
    errors name the failing field, at some cost in speed. The tolerant
    converter without details uses the hand-written hooks of `fasthooks`
    unless ``hand_written`` is false (the benchmarks compare the two).
    """
    converter = cattrs.Converter(
        forbid_extra_keys=strict,
        detailed_validation=detailed,
        prefer_attrib_converters=False,
    )
    converter.register_structure_hook(dt.datetime, _parse_datetime)
    converter.register_unstructure_hook(dt.datetime, _format_datetime)
    converter.register_structure_hook(
        QuestionType | str, _open_enum(QuestionType)
    )
    converter.register_structure_hook(AuthorType | str, _open_enum(AuthorType))
    converter.register_structure_hook(Option, _option)
    converter.register_structure_hook(str | None, _optional_str)
    converter.register_structure_hook(str | bool | None, _answer_value)
    # A factory, so that cattrs builds one hook per tuple type and caches
    # it, with the item's hook already looked up.
    converter.register_structure_hook_factory(
        _is_tuple_of,
        functools.partial(_tuple_hook, converter, detailed=detailed),
    )

    if hand_written and not strict and not detailed:
        register_fast_hooks(converter, option=_option, label=_label)
    else:
        # Strict and detailed converters must report unknown fields or
        # name the failing one: cattrs' generated hooks do, ours do not.
        _register_generated_hooks(converter)
    converter.register_unstructure_hook(
        TicketDraft,
        make_dict_unstructure_fn(
            TicketDraft,
            converter,
            template_id=field_override(rename="templateId"),
        ),
    )

    return converter


def _register_generated_hooks(converter: cattrs.Converter) -> None:
    # Innermost first: the hook cattrs generates for a class captures the
    # hooks of its fields when it is made.
    for cls in (
        Website,
        Question,
        Template,
        Article,
        Faq,
        SupportPage,
        TicketCreated,
        Attachment,
        Message,
        Answer,
    ):
        generated = converter.get_structure_hook(cls)
        converter.register_structure_hook(cls, _objects_only(generated))

    ticket = make_dict_structure_fn(
        Ticket,
        converter,
        status=field_override(struct_hook=_label),
        priority=field_override(struct_hook=_label),
    )

    def structure_ticket(value: Any, _: type) -> Ticket:
        if not isinstance(value, Mapping):
            raise _not_an_object(value)
        if "subject" in value:
            # Some deployments call the title "subject".
            value = dict(value)
            subject = value.pop("subject")
            value.setdefault("title", subject)
        return ticket(value, Ticket)

    converter.register_structure_hook(Ticket, structure_ticket)


def _objects_only(hook: Callable[[Any, Any], T]) -> Callable[[Any, Any], T]:
    """
    ``hook``, refusing anything but a JSON object.

    cattrs' generated hooks test keys with ``in``, which a string or a list
    answers too: ``"page"`` would read as a model with every field missing.
    """

    def structure(value: Any, cls: Any) -> T:
        if not isinstance(value, Mapping):
            raise _not_an_object(value)
        return hook(value, cls)

    return structure


def _not_an_object(value: Any) -> TypeError:
    msg = f"expected an object, got {type(value).__name__}"

    return TypeError(msg)


@functools.cache
def _converter(*, strict: bool, detailed: bool) -> cattrs.Converter:
    return make_converter(strict=strict, detailed=detailed)


def _describe(error: BaseException) -> str:
    if isinstance(error, cattrs.ClassValidationError):
        notes = cattrs.transform_error(error)
        return "; ".join(notes[:5])
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        return f"unknown fields {sorted(error.extra_fields)}"
    return str(error) or type(error).__name__


def decode(data: Any, cls: type[T], *, strict: bool = False) -> T:
    """
    Turn already-parsed JSON into ``cls``.

    Raises `DecodeError` with a readable account of what did not fit.
    """
    with contextlib.suppress(Exception):
        return _converter(strict=strict, detailed=False).structure(data, cls)
    # The fast pass gives up on anything unusual. The detailed converter
    # has the last word: it decodes what cattrs' own hooks accept, and
    # otherwise says which field did not fit.
    try:
        return _converter(strict=strict, detailed=True).structure(data, cls)
    except Exception as error:
        msg = f"does not fit {cls.__name__}: {_describe(error)}"
    raise DecodeError(msg) from None


def unstructure(value: Any) -> Any:
    """Turn a model or draft into JSON-ready Python data."""
    return _converter(strict=False, detailed=False).unstructure(value)
