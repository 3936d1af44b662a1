"""Helpers for the bulk import tests: input files, a sandbox process."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from vicket_async import sandbox

ROOT = Path(__file__).resolve().parent.parent
FEATURE_COLUMNS = ("email", "title", "q_idea", "q_contact_ok")


def feature_rows(
    count: int, *, start: int = 1, tag: str = "Idea"
) -> list[dict[str, str]]:
    """Valid rows for the demo template ``tpl_feature``."""
    return [
        {
            "email": f"user{number}@example.com",
            "title": f"{tag} {number}",
            "q_idea": f"an idea numbered {number}",
            "q_contact_ok": "yes" if number % 2 else "no",
        }
        for number in range(start, start + count)
    ]


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str] = FEATURE_COLUMNS,
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(dict(row))

    return path


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    with path.open("wb") as file:
        for row in rows:
            file.write(orjson.dumps(dict(row)) + b"\n")

    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def child_env(**extra: str) -> dict[str, str]:
    """An environment in which a child imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.pop("VICKET_API_KEY", None)
    env.pop("VICKET_BASE_URL", None)
    env.update(extra)

    return env


class SandboxProcess(sandbox.SandboxProcess):
    """The sandbox in a process of its own, with helpers for these tests."""

    def __init__(self, *, time_scale: float, email_limit: int = 1000) -> None:
        super().__init__(
            f"--time-scale={time_scale:g}", f"--email-limit={email_limit}"
        )

    def tickets(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "tickets"))

    def reset(self) -> None:
        self.control("POST", "reset")

    def env(self) -> dict[str, str]:
        return child_env(
            VICKET_API_KEY=self.api_key, VICKET_BASE_URL=self.base_url
        )
