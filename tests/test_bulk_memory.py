"""A dry run over a large file keeps its memory flat."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bulk_support import (
    FEATURE_COLUMNS,
    ROOT,
    SandboxProcess,
    feature_rows,
    write_csv,
)

LARGE = 200_000
SMALL = 2_000
#: Peak memory of the whole process, interpreter and libraries included:
#: the figure promised for a dry run of any size. What the libraries take
#: varies between installs; flatness is the growth check below.
CEILING_MIB = 100
#: How much more the large file may take than the small one.
GROWTH_MIB = 8


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(time_scale=600) as running:
        yield running


def _generate(path: Path, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(FEATURE_COLUMNS)
        for number in range(1, count + 1):
            email = f"user{number}@example.com"
            if number % 1000 == 0:
                email = "not an address"
            writer.writerow(
                [email, f"Ticket {number}", f"idea {number}", "yes"]
            )

    return path


def _peak_rss(sandbox: SandboxProcess, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "tests/bulk_rss.py", "import", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=sandbox.env(),
        timeout=300,
        check=False,
    )
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("PEAK_RSS_KIB="), done.stderr

    return int(last.partition("=")[2]) // 1024, done.stdout


def test_a_large_dry_run_stays_flat(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    large = _generate(tmp_path / "large.csv", LARGE)
    small = _generate(tmp_path / "small.csv", SMALL)
    # A journal from an earlier run makes the dry run look every row up.
    journal = tmp_path / "journal.sqlite"
    head = write_csv(tmp_path / "head.csv", feature_rows(20))
    common = ["--template", "tpl_feature", "--journal", str(journal)]
    command = [sys.executable, "-m", "vicket_async", "import", str(head)]
    sent = subprocess.run(
        [*command, *common, "--yes", "--rate-limit", "10/0.1"],
        capture_output=True,
        cwd=ROOT,
        env=sandbox.env(),
        timeout=120,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr

    small_mib, _ = _peak_rss(sandbox, str(small), *common, "--dry-run")
    large_mib, output = _peak_rss(sandbox, str(large), *common, "--dry-run")

    assert f"row {LARGE}: skipped: email: 'not an address'" in output
    assert "to send       199780" in output
    assert large_mib < CEILING_MIB, f"{large_mib} MiB"
    assert large_mib - small_mib < GROWTH_MIB, (small_mib, large_mib)
