"""
Decoding a large ``/init`` answer into models.

The same JSON bytes go through the stdlib's and orjson's parsers alone
(the floor), through our ``decode(orjson.loads(body), SupportPage)``, and
through the models a user would write with pydantic v2 or msgspec instead.
Every case runs once per round, in a rotating order; the garbage collector
is left on, as in an application, but a full collection runs before each
timed call and the result is freed after the clock stops, so that no case
pays for another's garbage.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from vicket_async import SupportPage
from vicket_async._protocol.codec import decode, make_converter

from ._common import (
    Column,
    Report,
    format_duration,
    format_ratio,
    median,
    ratio,
    sized,
)
from ._payload import init_body

DESCRIPTION = "decoding a large /init answer: ours, pydantic v2, msgspec"

#: Ours may take at most this many times as long as pydantic v2.
TARGET = 1.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_argument_group("payload (full default / quick default)")
    size.add_argument(
        "--templates", type=int, help="ticket templates (300 / 20)"
    )
    size.add_argument(
        "--questions", type=int, help="questions per template (20 / 20)"
    )
    size.add_argument("--articles", type=int, help="articles (300 / 20)")
    size.add_argument(
        "--article-bytes", type=int, help="HTML bytes per article (3000)"
    )
    size.add_argument("--faqs", type=int, help="FAQs (200 / 20)")
    parser.add_argument(
        "--repeats", type=int, help="timed calls per case (30 / 3)"
    )


def run(args: argparse.Namespace) -> Report:
    quick = args.quick
    params = {
        "templates": sized(args.templates, full=300, quick=20, is_quick=quick),
        "questions": sized(args.questions, full=20, quick=20, is_quick=quick),
        "articles": sized(args.articles, full=300, quick=20, is_quick=quick),
        "article_bytes": sized(
            args.article_bytes, full=3000, quick=3000, is_quick=quick
        ),
        "faqs": sized(args.faqs, full=200, quick=20, is_quick=quick),
    }
    repeats = sized(args.repeats, full=30, quick=3, is_quick=quick)
    body = init_body(**params)
    params["payload_bytes"] = len(body)
    params["repeats"] = repeats

    cases = _cases(body)
    _check(cases, params["templates"])
    times = _time(cases, repeats)

    report = Report(
        name="decode",
        title="decode: a large /init answer into models",
        params=params,
        quick=quick,
        columns=[
            Column("label", "case"),
            Column("median_s", "median", format_duration),
            Column("min_s", "best", format_duration),
            Column("mb_per_s", "MB/s", lambda value: f"{value:.0f}"),
            Column("vs_pydantic", "vs pydantic v2", format_ratio),
        ],
    )
    reference = median(times["pydantic"])
    for key, label, _ in cases:
        middle = median(times[key])
        report.rows.append(
            {
                "case": key,
                "label": label,
                "median_s": middle,
                "min_s": min(times[key]),
                "mb_per_s": len(body) / middle / 1e6,
                "vs_pydantic": ratio(middle, reference),
            }
        )
    ours = ratio(median(times["ours"]), reference)
    report.notes.extend(
        [
            "times are per payload, for bytes in and models out; 'vs "
            "pydantic v2' divides each median by pydantic's (lower is "
            "faster)",
            "the pydantic models carry the same tolerance as ours (string "
            "options, null lists, open enums); the msgspec structs keep "
            "string options and question types as plain text",
            "cattrs' generated hooks: the same converter and coercions as "
            "ours, with the hooks cattrs generates for the models instead "
            "of our hand-written ones",
        ]
    )
    report.summary = _verdict(ours, quick=quick)
    report.summary["hand_written_vs_generated"] = ratio(
        median(times["ours_structure"]), median(times["cattrs_generated"])
    )

    return report


def _cases(body: bytes) -> list[tuple[str, str, Callable[[], Any]]]:
    # Imported here: the peer libraries are needed only to benchmark.
    import msgspec

    from ._peers import MsgspecSupportPage, PydanticSupportPage

    parsed = orjson.loads(body)
    detailed = make_converter(detailed=True)
    generated = make_converter(hand_written=False)
    msgspec_decoder = msgspec.json.Decoder(MsgspecSupportPage)

    return [
        ("json", "json.loads (parse only)", lambda: json.loads(body)),
        ("orjson", "orjson.loads (parse only)", lambda: orjson.loads(body)),
        (
            "ours",
            "ours: decode(orjson.loads(body))",
            lambda: decode(orjson.loads(body), SupportPage),
        ),
        (
            "ours_structure",
            "ours: decode() of parsed data",
            lambda: decode(parsed, SupportPage),
        ),
        (
            "cattrs_generated",
            "cattrs' generated hooks, parsed data",
            lambda: generated.structure(parsed, SupportPage),
        ),
        (
            "ours_detailed",
            "ours, detailed converter (errors)",
            lambda: detailed.structure(orjson.loads(body), SupportPage),
        ),
        (
            "pydantic",
            "pydantic v2 model_validate_json",
            lambda: PydanticSupportPage.model_validate_json(body),
        ),
        (
            "msgspec",
            "msgspec.json.decode into Structs",
            lambda: msgspec_decoder.decode(body),
        ),
    ]


def _check(
    cases: list[tuple[str, str, Callable[[], Any]]], templates: int
) -> None:
    """Make sure every model decoder read the whole payload."""
    for key, _, call in cases:
        result = call()
        if key in ("json", "orjson"):
            count = len(result["templates"])
        else:
            count = len(result.templates)
        if count != templates:
            msg = f"{key} decoded {count} templates, not {templates}"
            raise AssertionError(msg)


def _time(
    cases: list[tuple[str, str, Callable[[], Any]]], repeats: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {key: [] for key, _, _ in cases}
    for round_ in range(repeats):
        # A rotating order, so that no case always follows the same one.
        shift = round_ % len(cases)
        for key, _, call in cases[shift:] + cases[:shift]:
            gc.collect()
            started = time.perf_counter()
            result = call()
            times[key].append(time.perf_counter() - started)
            del result

    return times


def _verdict(ours: float | None, *, quick: bool) -> dict[str, Any]:
    met = None if ours is None or quick else ours <= TARGET
    if ours is None:
        line = "ours / pydantic v2: no figure"
    else:
        line = f"ours / pydantic v2 = {ours:.2f}x (target: at most {TARGET}x)"
        if quick:
            line += ": not judged in quick mode"
        else:
            line += ": met" if met else ": NOT met"

    return {
        "ours_vs_pydantic": ours,
        "target": TARGET,
        "target_met": met,
        "verdicts": [line],
    }
