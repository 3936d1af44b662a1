"""
Hand-written structure hooks for the models that answers are made of.

Decoding an answer is mostly building models: a 55 KB ``init`` answer holds
some 250 of them. The hooks that cattrs generates gather the fields in a
dict and call the attrs ``__init__`` by keyword, and the ``__init__`` of a
frozen attrs class sets every field through ``object.__setattr__``. The
hooks here read each JSON object directly and build the model with
`builder`, which fills the slots of a new instance in one generated
function; together this decodes about twice as fast.

They serve only the tolerant converter's fast pass, and do what its
generated hooks do: the same coercions (``str()``, ``bool()``, ``int()``
and the converter's own hooks for enums, labels, timestamps and lists),
defaults for missing fields, unknown fields ignored. On anything unusual
they raise, and the detailed converter, with cattrs' generated hooks,
decodes the answer again: it has the last word, and names the field that
did not fit. A test checks that whatever these hooks accept, cattrs' hooks
accept too, with equal results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs

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

__all__ = ["builder", "register_fast_hooks"]

T = TypeVar("T", bound=attrs.AttrsInstance)
Hook = Callable[[Any, Any], Any]

_MISSING: Any = object()


def builder(cls: type[T]) -> Callable[..., T]:
    """
    A function that makes a ``cls`` from its field values, in field order.

    For a slotted attrs class whose ``__init__`` only stores the values
    (no validators, converters or init hooks), the function stores them
    in the slots of a new instance directly, which costs about half as
    much as the ``__init__`` of a frozen class. For any other class it
    calls ``__init__``, so that nothing the class checks is skipped.
    """
    fields = attrs.fields(cls)
    if not _only_stores(cls):
        aliases = [field.alias for field in fields]

        def build_by_init(*values: Any) -> T:
            return cls(**dict(zip(aliases, values, strict=True)))

        return build_by_init

    names = [field.name for field in fields]
    # Generated code, as attrs and cattrs do it: a loop over the fields
    # would cost as much as the __init__ it replaces.
    lines = [f"def build({', '.join(names)}):", "    instance = new(cls)"]
    lines += [f"    set_{name}(instance, {name})" for name in names]
    lines.append("    return instance")
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for name in names:
        # The slot's descriptor stores past the frozen __setattr__.
        namespace[f"set_{name}"] = cls.__dict__[name].__set__
    filename = f"<vicket_async builder for {cls.__qualname__}>"
    exec(compile("\n".join(lines), filename, "exec"), namespace)  # noqa: S102
    build: Callable[..., T] = namespace["build"]

    return build


def _only_stores(cls: type) -> bool:
    """Whether the attrs ``__init__`` of ``cls`` does nothing but store."""
    slots = cls.__dict__.get("__slots__", ())
    if any(
        hasattr(cls, hook)
        for hook in ("__attrs_pre_init__", "__attrs_post_init__")
    ):
        return False

    return all(
        field.name in slots
        and field.init
        and field.validator is None
        and field.converter is None
        for field in attrs.fields(cls)
    )


def _build(cls: type[T], *names: str) -> Callable[..., T]:
    """`builder` for ``cls``, checked against the fields a hook passes."""
    fields = tuple(field.name for field in attrs.fields(cls))
    if fields != names:
        # A hook below spells out the fields: it must follow the model.
        msg = (
            f"the hook for {cls.__name__} passes {names}, but the model "
            f"has the fields {fields}"
        )
        raise RuntimeError(msg)

    return builder(cls)


def _items(structure: Callable[[Any], T]) -> Callable[[Any], tuple[T, ...]]:
    """
    A hook for ``tuple[X, ...]`` from the hook for X; ``null`` reads as ().

    The hooks here take the value alone, so ``map`` can call them without
    the frame of a list comprehension.
    """

    def structure_items(value: Any) -> tuple[T, ...]:
        if type(value) is list:
            return tuple(map(structure, value)) if value else ()
        if value is None:
            return ()
        if isinstance(value, list | tuple):
            return tuple(map(structure, value))
        msg = f"expected a list, got {type(value).__name__}"
        raise TypeError(msg)

    return structure_items


def register_fast_hooks(
    converter: cattrs.Converter, *, option: Hook, label: Hook
) -> None:
    """
    Register the hand-written hooks on the tolerant fast converter.

    The converter must already have its hooks for enums, timestamps,
    optional text and answer values; the hooks here call them for all but
    the common case. ``option`` reads an option given as an object, and
    ``label`` a ticket's status or priority.
    """

    def hook(tp: Any) -> Hook:
        return converter.get_structure_hook(tp)

    optional_text = hook(str | None)
    build_option = _build(Option, "value", "label")

    def structure_option(value: Any) -> Option:
        if type(value) is str:
            return build_option(value, value)
        result: Option = option(value, Option)

        return result

    options = _items(structure_option)
    kinds = dict(QuestionType._value2member_map_)
    kind = hook(QuestionType | str)
    build_question = _build(
        Question, "id", "label", "type", "required", "order", "options"
    )

    def structure_question(value: Any) -> Question:
        # The common cases inline: text that is already text, a type this
        # release knows, flags that are already booleans.
        id_, label, raw_kind = value["id"], value["label"], value["type"]
        if type(raw_kind) is str:
            raw_kind = kinds.get(raw_kind, raw_kind)
        else:
            raw_kind = kind(raw_kind, None)
        required = value.get("required", False)
        order = value.get("order", 0)

        return build_question(
            id_ if type(id_) is str else str(id_),
            label if type(label) is str else str(label),
            raw_kind,
            required if type(required) is bool else bool(required),
            order if type(order) is int else int(order),
            options(value.get("options")),
        )

    questions = _items(structure_question)
    build_template = _build(
        Template, "id", "name", "description", "icon", "questions"
    )

    def structure_template(value: Any) -> Template:
        return build_template(
            str(value["id"]),
            str(value["name"]),
            optional_text(value.get("description"), None),
            optional_text(value.get("icon"), None),
            questions(value.get("questions")),
        )

    build_article = _build(
        Article, "id", "title", "slug", "content", "category", "type"
    )

    def structure_article(value: Any) -> Article:
        return build_article(
            optional_text(value.get("id"), None),
            str(value.get("title", "")),
            str(value["slug"]),
            str(value.get("content", "")),
            optional_text(value.get("category"), None),
            optional_text(value.get("type"), None),
        )

    build_faq = _build(Faq, "question", "answer", "id")

    def structure_faq(value: Any) -> Faq:
        return build_faq(
            str(value["question"]),
            str(value.get("answer", "")),
            optional_text(value.get("id"), None),
        )

    build_website = _build(Website, "name")

    def structure_website(value: Any) -> Website:
        return build_website(optional_text(value.get("name"), None))

    build_page = _build(
        SupportPage, "website", "templates", "articles", "faqs"
    )
    default_website = SupportPage().website
    templates = _items(structure_template)
    articles = _items(structure_article)
    faqs = _items(structure_faq)

    def structure_page(value: Any) -> SupportPage:
        website = value.get("website", _MISSING)

        return build_page(
            default_website
            if website is _MISSING
            else structure_website(website),
            templates(value.get("templates")),
            articles(value.get("articles")),
            faqs(value.get("faqs")),
        )

    build_created = _build(TicketCreated, "email_limit_reached", "warning")

    def structure_created(value: Any) -> TicketCreated:
        return build_created(
            bool(value.get("email_limit_reached", False)),
            optional_text(value.get("warning"), None),
        )

    hooks: dict[type, Callable[[Any], Any]] = {
        Option: structure_option,
        Question: structure_question,
        Template: structure_template,
        Article: structure_article,
        Faq: structure_faq,
        Website: structure_website,
        SupportPage: structure_page,
        TicketCreated: structure_created,
    }
    hooks.update(_thread_hooks(hook, optional_text, label))
    for cls, structure in hooks.items():
        # cattrs passes the type as well; the hooks here do not need it.
        converter.register_structure_hook(cls, _ignoring_type(structure))


def _ignoring_type(structure: Callable[[Any], T]) -> Callable[[Any, Any], T]:
    def hook(value: Any, _: Any) -> T:
        return structure(value)

    return hook


def _thread_hooks(
    hook: Callable[[Any], Hook], optional_text: Hook, label: Hook
) -> dict[type, Callable[[Any], Any]]:
    """The hooks for a ticket's thread: tickets, messages and answers."""
    build_attachment = _build(
        Attachment, "id", "url", "original_filename", "mime_type"
    )

    def structure_attachment(value: Any) -> Attachment:
        return build_attachment(
            optional_text(value.get("id"), None),
            optional_text(value.get("url"), None),
            optional_text(value.get("original_filename"), None),
            optional_text(value.get("mime_type"), None),
        )

    attachments = _items(structure_attachment)
    timestamp = hook(dt.datetime)
    authors = dict(AuthorType._value2member_map_)
    author = hook(AuthorType | str)
    build_message = _build(
        Message,
        "id",
        "content",
        "author_type",
        "author_name",
        "created_at",
        "attachments",
    )

    def structure_message(value: Any) -> Message:
        # The common cases inline, as for questions.
        id_, content = value["id"], value.get("content", "")
        raw_author = value.get("author_type", _MISSING)
        if type(raw_author) is str:
            raw_author = authors.get(raw_author, raw_author)
        elif raw_author is _MISSING:
            raw_author = AuthorType.REPORTER
        else:
            raw_author = author(raw_author, None)
        author_name = value.get("author_name")
        created = value.get("created_at")

        return build_message(
            id_ if type(id_) is str else str(id_),
            content if type(content) is str else str(content),
            raw_author,
            None if author_name is None else str(author_name),
            None if created is None else timestamp(created, None),
            attachments(value.get("attachments")),
        )

    answer_value = hook(str | bool | None)
    build_answer = _build(
        Answer, "question_label", "answer", "id", "attachments"
    )

    def structure_answer(value: Any) -> Answer:
        return build_answer(
            str(value.get("question_label", "")),
            answer_value(value.get("answer"), None),
            optional_text(value.get("id"), None),
            attachments(value.get("attachments")),
        )

    build_ticket = _build(
        Ticket,
        "id",
        "title",
        "status",
        "priority",
        "messages",
        "answers",
        "token",
    )
    messages = _items(structure_message)
    answers = _items(structure_answer)

    def structure_ticket(value: Any) -> Ticket:
        # Some deployments call the title "subject"; "title" wins.
        title = value.get("title", _MISSING)
        if title is _MISSING:
            title = value.get("subject", "")

        return build_ticket(
            str(value["id"]),
            str(title),
            label(value.get("status"), None),
            label(value.get("priority"), None),
            messages(value.get("messages")),
            answers(value.get("answers")),
            optional_text(value.get("token"), None),
        )

    return {
        Attachment: structure_attachment,
        Message: structure_message,
        Answer: structure_answer,
        Ticket: structure_ticket,
    }
