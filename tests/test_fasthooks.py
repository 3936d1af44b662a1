"""
The hand-written hooks of the fast converter against cattrs' own.

Every answer goes through the hand-written hooks first; when they give up,
the converter with cattrs' generated hooks decides. So whatever the fast
hooks accept, cattrs' hooks must accept too, with equal models: on the
reference's examples and on thousands of variants of them.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from vicket_async import (
    Answer,
    Article,
    Message,
    Option,
    Question,
    SupportPage,
    Ticket,
    TicketCreated,
)
from vicket_async._protocol import codec
from vicket_async._protocol.fasthooks import builder

from . import spec_examples

FAST = codec.make_converter()
GENERATED = codec.make_converter(hand_written=False)

#: Values that a field may hold instead of its own: each variant of an
#: answer puts one of them in one place, or leaves the field out.
REPLACEMENTS: tuple[Any, ...] = (
    None,
    7,
    2.5,
    "7",
    "",
    "x",
    True,
    [],
    ["x"],
    {},
    {"label": "L"},
    "2026-03-08T10:00:00Z",
)


def _data(document: str | dict[str, Any]) -> Any:
    parsed = json.loads(document) if isinstance(document, str) else document
    return copy.deepcopy(parsed["data"])


def _rich_page() -> dict[str, Any]:
    """An init answer with every field and both forms of option."""
    return {
        "website": {"name": "Shop"},
        "templates": [
            {
                "id": "tpl_1",
                "name": "Order",
                "description": "About an order",
                "icon": "box",
                "questions": [
                    {
                        "id": "q_size",
                        "label": "Size",
                        "type": "SELECT",
                        "required": True,
                        "order": 2,
                        "options": ["S", {"value": "m", "label": "M"}],
                    },
                    {"id": "q_when", "label": "When", "type": "DATE"},
                ],
            }
        ],
        "articles": [
            {
                "id": "art_1",
                "title": "Returns",
                "slug": "returns",
                "content": "<p>30 days</p>",
                "category": "Orders",
                "type": "article",
            }
        ],
        "faqs": [{"id": "faq_1", "question": "Ship?", "answer": "Yes."}],
    }


def _rich_ticket() -> dict[str, Any]:
    ticket: dict[str, Any] = _data(spec_examples.TICKET_INTEGRATION)
    ticket["title"] = "Both title and subject"
    ticket["answers"] = [
        {
            "id": "ans_1",
            "question_label": "Receipt",
            "answer": None,
            "attachments": [{"id": "att_2", "url": "https://f.example/2"}],
        },
        {"question_label": "Agreed", "answer": True},
        {"question_label": "Count", "answer": 3},
        {"question_label": "Tags", "answer": ["a", "b"]},
    ]
    return ticket


CORPUS: list[tuple[str, type, Any]] = [
    ("spec init", SupportPage, _data(spec_examples.INIT)),
    ("integration init", SupportPage, _data(spec_examples.INIT_INTEGRATION)),
    ("articles", SupportPage, _data(spec_examples.ARTICLES_INTEGRATION)),
    ("rich init", SupportPage, _rich_page()),
    ("spec ticket", Ticket, _data(spec_examples.TICKET)),
    ("integration ticket", Ticket, _data(spec_examples.TICKET_INTEGRATION)),
    ("rich ticket", Ticket, _rich_ticket()),
    ("created", TicketCreated, _data(spec_examples.TICKET_CREATED)),
    ("message", Message, _data(spec_examples.MESSAGE)),
    ("article", Article, _data(spec_examples.ARTICLE)),
]


def _outcome(converter: Any, data: Any, cls: type) -> tuple[str, Any]:
    try:
        return "decoded", converter.structure(data, cls)
    except Exception as error:
        return "failed", type(error).__name__


def _decoded(data: Any, cls: type) -> tuple[str, Any]:
    try:
        return "decoded", codec.decode(copy.deepcopy(data), cls)
    except codec.DecodeError:
        return "failed", "DecodeError"


_DROP = object()


def _variants(data: Any) -> Iterator[tuple[str, Any]]:
    """Copies of ``data``, each with one field replaced or left out."""
    for path in _paths(data):
        *parents, key = path
        for replacement in (_DROP, *REPLACEMENTS):
            variant = copy.deepcopy(data)
            holder = variant
            for step in parents:
                holder = holder[step]
            if replacement is _DROP:
                if isinstance(holder, list):
                    continue
                del holder[key]
            else:
                holder[key] = replacement
            yield f"{path} = {replacement!r}", variant


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[Any]:
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


class TestAgreement:
    @pytest.mark.parametrize(
        ("cls", "data"),
        [(cls, data) for _, cls, data in CORPUS],
        ids=[name for name, _, _ in CORPUS],
    )
    def test_examples(self, cls: type, data: Any) -> None:
        fast: object = FAST.structure(copy.deepcopy(data), cls)

        assert fast == GENERATED.structure(copy.deepcopy(data), cls)
        assert type(fast) is cls

    @pytest.mark.parametrize(
        ("cls", "data"),
        [(cls, data) for _, cls, data in CORPUS],
        ids=[name for name, _, _ in CORPUS],
    )
    def test_every_variant(self, cls: type, data: Any) -> None:
        disagreements = []
        outcomes = set()
        for where, variant in _variants(data):
            fast = _outcome(FAST, copy.deepcopy(variant), cls)
            generated = _outcome(GENERATED, copy.deepcopy(variant), cls)
            decoded = _decoded(variant, cls)
            outcomes.add(fast[0])
            if fast[0] == "decoded" and fast != generated:
                disagreements.append((where, "fast", fast, generated))
            if decoded[0] != generated[0] or (
                decoded[0] == "decoded" and decoded != generated
            ):
                disagreements.append((where, "decode", decoded, generated))

        assert disagreements == []
        # The variants reach both sides of the decision.
        assert outcomes == {"decoded", "failed"} or cls is TicketCreated

    def test_wrong_shapes_fail_in_both(self) -> None:
        value: object
        for value in (None, [], "page", 3):
            assert _outcome(FAST, value, SupportPage)[0] == "failed"
            assert _outcome(GENERATED, value, SupportPage)[0] == "failed"
            assert _decoded(value, SupportPage)[0] == "failed"

    def test_text_where_an_object_belongs_is_refused(self) -> None:
        with pytest.raises(codec.DecodeError, match=r"\$\.website"):
            codec.decode({"website": "My site", "templates": []}, SupportPage)
        with pytest.raises(codec.DecodeError, match="expected an object"):
            codec.decode("page", SupportPage)

    def test_decode_names_the_field_after_the_fast_pass_fails(self) -> None:
        data = _rich_page()
        data["templates"][0]["questions"][1]["order"] = "second"

        with pytest.raises(codec.DecodeError, match=r"questions\[1\]\.order"):
            codec.decode(data, SupportPage)


@attrs.frozen(kw_only=True)
class _Checked:
    size: int = attrs.field(validator=attrs.validators.gt(0))
    name: str = "x"


@attrs.frozen(kw_only=True)
class _Counted:
    size: int
    seen: list[int] = attrs.field(factory=list, eq=False)

    def __attrs_post_init__(self) -> None:
        self.seen.append(self.size)


class TestBuilder:
    def test_builds_what_init_builds(self) -> None:
        build = builder(Question)
        options = (Option(value="a", label="A"),)

        built = build("q", "Size", "SELECT", True, 2, options)
        made = Question(
            id="q",
            label="Size",
            type="SELECT",
            required=True,
            order=2,
            options=options,
        )

        assert type(built) is Question
        assert built == made
        assert hash(built) == hash(made)
        assert repr(built) == repr(made)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            built.label = "changed"  # type: ignore[misc]

    def test_every_model_can_be_built(self) -> None:
        when = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
        build = builder(Message)

        message = build("m", "hi", "agent", None, when, ())

        assert message == Message(
            id="m", content="hi", author_type="agent", created_at=when
        )
        assert builder(Answer)("Q", True, None, ()) == Answer(
            question_label="Q", answer=True
        )

    def test_a_class_with_a_validator_goes_through_init(self) -> None:
        build = builder(_Checked)

        assert build(3, "y") == _Checked(size=3, name="y")
        with pytest.raises(ValueError, match="size"):
            build(0, "y")

    def test_a_class_with_a_post_init_hook_goes_through_init(self) -> None:
        counted = builder(_Counted)(5, [])

        assert counted.seen == [5]

    def test_too_few_values_fail(self) -> None:
        with pytest.raises(TypeError):
            builder(Question)("q", "Size")
