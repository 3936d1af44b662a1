"""The benchmarks still run: each one's quick mode, with tiny sizes."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _needs_peers() -> None:
    # The libraries we compare with come with the "bench" extra.
    for name in ("pydantic", "msgspec", "httpx"):
        pytest.importorskip(name)


def _run(name: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    output = tmp_path / f"{name}.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            name,
            "--quick",
            f"--json={output}",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Figures vary with machine load" in completed.stdout
    document: dict[str, Any] = orjson.loads(output.read_bytes())
    assert document["benchmark"] == name
    assert document["quick"] is True
    assert document["machine"]["versions"]["aiohttp"]
    # Quick mode proves the benchmark runs; it judges no figures.
    assert document["summary"]["target_met"] is None

    return document


def _positive(row: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = row[key]
        assert isinstance(value, int | float), (key, value)
        assert value > 0, (key, value)
        assert math.isfinite(value), (key, value)


class TestBenchmarks:
    def test_decode(self, tmp_path: Path) -> None:
        _needs_peers()
        document = _run(
            "decode",
            tmp_path,
            "--templates=3",
            "--questions=6",
            "--articles=3",
            "--faqs=3",
            "--repeats=2",
        )

        rows = {row["case"]: row for row in document["rows"]}
        assert set(rows) == {
            "json",
            "orjson",
            "ours",
            "ours_structure",
            "cattrs_generated",
            "ours_detailed",
            "pydantic",
            "msgspec",
        }
        for row in rows.values():
            _positive(row, "median_s", "min_s", "mb_per_s", "vs_pydantic")
        assert rows["pydantic"]["vs_pydantic"] == 1.0
        summary = document["summary"]
        _positive(summary, "ours_vs_pydantic", "hand_written_vs_generated")

    def test_throughput(self, tmp_path: Path) -> None:
        _needs_peers()
        document = _run(
            "throughput",
            tmp_path,
            "--duration=0.2",
            "--concurrency=4",
            "--templates=2",
            "--questions=4",
            "--articles=2",
            "--agent-replies=2",
        )

        rows = {
            (row["endpoint"], row["client"]): row for row in document["rows"]
        }
        assert set(rows) == {
            (endpoint, client)
            for endpoint in ("init", "get_ticket", "create_ticket")
            for client in ("ours", "aiohttp", "httpx")
        }
        for row in rows.values():
            _positive(
                row,
                "requests",
                "requests_per_s",
                "vs_aiohttp",
                "median_ms",
                "p99_ms",
                "client_cpu_us",
                "cpu_vs_aiohttp",
            )
        assert rows["get_ticket", "aiohttp"]["cpu_vs_aiohttp"] == 1.0
        assert set(document["summary"]["ours_cpu_vs_aiohttp"]) == {
            "init",
            "get_ticket",
            "create_ticket",
        }
        assert set(document["summary"]["ours_vs_aiohttp"]) == {
            "init",
            "get_ticket",
            "create_ticket",
        }

    @pytest.mark.skipif(
        not Path("/proc/self/status").exists(),
        reason="reads the peak memory from /proc",
    )
    def test_upload(self, tmp_path: Path) -> None:
        document = _run(
            "upload", tmp_path, "--size-mib=4", f"--tmp-dir={tmp_path}"
        )

        rows = {row["case"]: row for row in document["rows"]}
        assert set(rows) == {
            "ours_path",
            "ours_bytes",
            "ours_stream",
            "aiohttp_file",
            "aiohttp_bytes",
        }
        for row in rows.values():
            _positive(row, "peak_mib", "seconds", "mib_per_s")
        # The cases that start from bytes hold the whole file.
        assert rows["ours_bytes"]["held_mib"] == 4
        assert rows["ours_bytes"]["increase_mib"] > 3.5
        assert rows["ours_path"]["held_mib"] == 0
        # The generated file is gone.
        assert list(tmp_path.glob("vicket-bench-*")) == []


class TestBudgetBenchmarks:
    def test_ratelimit(self, tmp_path: Path) -> None:
        document = _run("ratelimit", tmp_path, "--windows=2", "--callers=20")

        rows = document["rows"]
        assert [row["client"] for row in rows] == [
            "ours",
            "aiolimiter",
            "retry",
        ]
        for row in rows:
            _positive(row, "created", "share")
            assert row["refused"] >= 0
        ours = rows[0]
        assert ours["created"] <= 10 * 2 + 10

    def test_budget_check(self, tmp_path: Path) -> None:
        document = _run("budget_check", tmp_path, "--calls=200")

        cases = [row["case"] for row in document["rows"]]
        assert cases[:3] == [
            "ours, in-process budget of 30",
            "ours, in-process budget of 10**9",
            "aiolimiter AsyncLimiter.acquire()",
        ]
        for row in document["rows"]:
            _positive(row, "median_us", "p99_us", "ratio")

    def test_shared_budget(self, tmp_path: Path) -> None:
        document = _run(
            "shared_budget", tmp_path, "--windows=1", "--callers=5"
        )

        rows = {row["case"]: row for row in document["rows"]}
        assert "per process" in rows
        for row in rows.values():
            _positive(row, "created", "share")
        if "Redis, shared" in rows:
            assert rows["Redis, shared"]["refused"] == 0


class TestAppBenchmarks:
    def test_support_page(self, tmp_path: Path) -> None:
        document = _run(
            "support_page",
            tmp_path,
            "--page-loads=20",
            "--init-calls=50",
            "--upload-mib=2",
        )

        assert document["rows"]
        assert document["summary"]["verdicts"]

    def test_import(self, tmp_path: Path) -> None:
        document = _run("bulk_import", tmp_path)

        assert document["rows"]
        assert document["summary"]["verdicts"]
