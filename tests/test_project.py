"""The project's own promises: its commands and its public names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import vicket_async
from vicket_async._cli import main

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", readme)


def test_readme_opens_with_two_commands() -> None:
    first, second = readme_commands()[:2]

    assert first.startswith("python3 -m venv .venv")
    assert first.endswith("vicket demo")
    assert second.startswith("python3 -m venv .venv")
    assert second.endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()

    assert ci[-1] == readme_commands()[1]


def test_public_names_are_pinned() -> None:
    names = vicket_async.__all__

    assert names[:-1] == sorted(names[:-1])
    assert names[-1] == "__version__"
    for name in names:
        assert getattr(vicket_async, name) is not None
    assert {"VicketClient", "FileUpload", "RateLimit", "VicketError"} <= set(
        names
    )


def test_the_demo_walks_through_every_endpoint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["demo"])
    out = capsys.readouterr().out

    assert status == 0
    for step in ("1. init", "2. create_ticket", "4. get_ticket", "5. reply"):
        assert step in out
    assert "6. get_article" in out
    assert out.rstrip().endswith("Done: every endpoint answered.")
