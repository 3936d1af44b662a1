"""
Killing the importer at random moments loses no row and sends none twice.

The sandbox runs in its own process on a clock 120 times faster than real
time, with its rate limits on, so a "minute" lasts half a second and the
importer keeps to ``--rate-limit 10/0.5``. The importer is killed with
SIGKILL again and again, at moments drawn at random, then run to the end.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bulk_support import (
    ROOT,
    SandboxProcess,
    feature_rows,
    read_jsonl,
    write_csv,
)

ROWS = 250
KILLS = 12
#: Rows that no run may send: their email is not an address.
INVALID = frozenset(range(7, ROWS + 1, 25))


@pytest.fixture
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(time_scale=120) as running:
        yield running


def _command(source: Path, sandbox: SandboxProcess, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vicket_async",
        "import",
        str(source),
        "--template",
        "tpl_feature",
        "--rate-limit",
        "10/0.5",
        "--concurrency",
        "4",
        "--base-url",
        sandbox.base_url,
        "--yes",
        *extra,
    ]


def test_killed_imports_resume_without_loss_or_duplicates(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    seed = int(os.environ.get("VICKET_CRASH_SEED", time.time_ns() % 10**6))
    chance = random.Random(seed)
    rows = feature_rows(ROWS)
    for number in INVALID:
        rows[number - 1]["email"] = f"broken-{number}"
    source = write_csv(tmp_path / "tickets.csv", rows)
    log = (tmp_path / "importer.log").open("w")

    kills = 0
    while kills < KILLS:
        importer = subprocess.Popen(
            _command(source, sandbox),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env=sandbox.env(),
        )
        time.sleep(chance.uniform(0.3, 1.8))
        if importer.poll() is not None:
            # It finished before the blow landed: everything is sent.
            break
        importer.send_signal(signal.SIGKILL)
        importer.wait()
        kills += 1

    report = tmp_path / "report.jsonl"
    for _ in range(5):
        final = subprocess.run(
            _command(source, sandbox, "--report", str(report)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env=sandbox.env(),
            timeout=120,
            check=False,
        )
        states = {line["row"]: line["state"] for line in read_jsonl(report)}
        # A 429 the client could not wait out leaves a row failed; the next
        # run sends it.
        if "failed" not in states.values():
            break
    log.close()

    context = f"seed {seed}, log {tmp_path / 'importer.log'}"
    assert kills >= 10, f"only {kills} kills landed ({context})"
    assert final.returncode in (0, 1), context
    assert sorted(states) == list(range(1, ROWS + 1)), context
    ambiguous = {row for row, state in states.items() if state == "ambiguous"}
    assert {row for row, s in states.items() if s == "skipped"} == INVALID
    assert set(states.values()) <= {"done", "skipped", "ambiguous"}, context
    assert final.returncode == (1 if INVALID or ambiguous else 0)

    created = Counter(
        (ticket["reporter_email"], ticket["title"])
        for ticket in sandbox.tickets()
    )
    expected = {
        (row["email"], row["title"]): number
        for number, row in enumerate(rows, 1)
    }
    assert set(created) <= set(expected), context
    for identity, number in expected.items():
        if number in INVALID:
            assert created[identity] == 0, f"row {number} ({context})"
        elif number in ambiguous:
            assert created[identity] <= 1, f"row {number} ({context})"
        else:
            assert created[identity] == 1, f"row {number} ({context})"
