"""``vicket import`` against a sandbox in its own process."""

from __future__ import annotations

import argparse
import io
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bulk_support import (
    ROOT,
    SandboxProcess,
    feature_rows,
    read_jsonl,
    write_csv,
    write_jsonl,
)
from vicket_async._cli import _parser, main

#: A sandbox minute lasts 0.1 s, so rate limits never slow these tests.
FAST = "10/0.1"


class Terminal(io.StringIO):
    """Standard input that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxProcess]:
    with SandboxProcess(time_scale=600) as running:
        yield running


@pytest.fixture
def sandbox(
    server: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> SandboxProcess:
    server.reset()
    monkeypatch.setenv("VICKET_API_KEY", server.api_key)
    monkeypatch.setenv("VICKET_BASE_URL", server.base_url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    return server


def vicket(*args: str) -> int:
    return main(["import", *args, "--rate-limit", FAST])


def ticket_titles(sandbox: SandboxProcess) -> list[str]:
    return sorted(ticket["title"] for ticket in sandbox.tickets())


def import_parser() -> argparse.ArgumentParser:
    commands = next(
        action
        for action in _parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser = commands.choices["import"]
    assert isinstance(parser, argparse.ArgumentParser)

    return parser


class TestHelp:
    def test_every_option_is_explained_with_an_example(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(["import", "--help"])
        text = capsys.readouterr().out

        assert status == 0
        parser = import_parser()
        epilog = str(parser.epilog)
        options = [
            option
            for action in parser._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
        ]
        assert len(options) == 16
        for option in options:
            assert option in text
            assert option in epilog, f"no example uses {option}"
        for words in ("resume", "ambiguous", "exit status", "130"):
            assert words in text

    def test_the_help_fits_79_columns(self) -> None:
        parser = import_parser()
        text = f"{parser.description}\n{parser.epilog}"

        assert max(len(line) for line in text.splitlines()) <= 79

    def test_demo_is_still_there(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["demo", "--help"]) == 0
        assert "sandbox" in capsys.readouterr().out


class TestDryRun:
    def test_a_clean_file(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        source = write_csv(tmp_path / "in.csv", feature_rows(3))

        status = vicket(str(source), "--template", "tpl_feature", "--dry-run")

        out = capsys.readouterr().out
        assert status == 0
        assert "nothing was sent" in out
        assert "A real run would send 3 tickets" in out
        assert sandbox.tickets() == []
        assert not Path(f"{source}.vicket-journal.sqlite").exists()

    def test_every_problem_with_its_row_number(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        rows = feature_rows(4)
        rows[1]["email"] = "nobody"
        rows[3]["q_contact_ok"] = "later"
        rows[3]["title"] = ""
        source = write_csv(tmp_path / "in.csv", rows)
        report = tmp_path / "report.jsonl"

        status = vicket(
            str(source),
            "--template",
            "Feature Request",
            "--dry-run",
            "--report",
            str(report),
        )

        out = capsys.readouterr().out
        assert status == 1
        assert "row 2: skipped: email: 'nobody' is not an email address" in out
        assert "row 4: skipped: title: the title is empty" in out
        assert "q_contact_ok (May we contact you about it?)" in out
        assert {line["row"]: line["state"] for line in read_jsonl(report)} == {
            1: "pending",
            2: "skipped",
            3: "pending",
            4: "skipped",
        }
        requests = sandbox.control("GET", "requests?endpoint=create_ticket")
        assert requests == []


class TestRealRun:
    def test_sends_resumes_and_reports(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        rows = feature_rows(6)
        source = write_csv(tmp_path / "in.csv", rows)
        report = tmp_path / "report.jsonl"

        first = vicket(str(source), "--template", "tpl_feature", "--yes")
        second = vicket(
            str(source), "--template", "tpl_feature", "--report", str(report)
        )

        captured = capsys.readouterr()
        assert (first, second) == (0, 0)
        assert "Sending 6 tickets at up to 10 per 0.1 s" in captured.err
        assert "created by earlier runs" in captured.out
        assert ticket_titles(sandbox) == sorted(r["title"] for r in rows)
        lines = sorted(read_jsonl(report), key=lambda line: line["row"])
        assert [line["state"] for line in lines] == ["done"] * 6
        assert all(line["earlier"] for line in lines)
        assert lines[0]["email"] == "user1@example.com"
        assert lines[0]["title"] == "Idea 1"
        assert Path(f"{source}.vicket-journal.sqlite").exists()

    def test_invalid_rows_make_a_partial_run(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        rows = feature_rows(3)
        rows[2]["email"] = "nobody"
        source = write_csv(tmp_path / "in.csv", rows)

        status = vicket(str(source), "--template", "tpl_feature", "--yes")

        captured = capsys.readouterr()
        assert status == 1
        assert "row 3: skipped: email: 'nobody'" in captured.err
        assert "skipped            1" in captured.out
        assert ticket_titles(sandbox) == ["Idea 1", "Idea 2"]

    def test_json_lines_with_mapped_columns(
        self, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        source = write_jsonl(
            tmp_path / "export.jsonl",
            [
                {
                    "Reporter": "ada@example.com",
                    "Subject": "Dark mode",
                    "Form": "Feature Request",
                    "Idea": "a dark theme",
                    "May we contact you about it?": True,
                }
            ],
        )

        status = vicket(
            str(source),
            "--map",
            "Reporter=email",
            "--map",
            "Subject=title",
            "--map",
            "Form=template",
            "--map",
            "Idea=q_idea",
            "--yes",
        )

        assert status == 0
        (ticket,) = sandbox.tickets()
        assert ticket["reporter_email"] == "ada@example.com"
        assert ticket["template_id"] == "tpl_feature"
        answers = {a["question_id"]: a["answer"] for a in ticket["answers"]}
        assert answers == {"q_idea": "a dark theme", "q_contact_ok": True}

    def test_shards_take_turns_with_their_own_journals(
        self, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        rows = feature_rows(9)
        source = write_csv(tmp_path / "in.csv", rows)
        common = [str(source), "--template", "tpl_feature", "--yes"]

        assert vicket(*common, "--shard", "1/2") == 0
        assert len(sandbox.tickets()) == 4
        assert vicket(*common, "--shard", "2/2") == 0

        assert ticket_titles(sandbox) == sorted(r["title"] for r in rows)
        for index in (1, 2):
            journal = (
                tmp_path / f"in.csv.shard-{index}-of-2.vicket-journal.sqlite"
            )
            assert journal.exists()


class TestConfirmation:
    def test_refused_without_a_terminal_or_yes(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        source = write_csv(tmp_path / "in.csv", feature_rows(2))

        status = vicket(str(source), "--template", "tpl_feature")

        err = capsys.readouterr().err
        assert status == 2
        assert "2 emails will go out" in err
        assert "add --yes to confirm" in err
        assert sandbox.tickets() == []

    @pytest.mark.parametrize(("answer", "status"), [("y\n", 0), ("\n", 2)])
    def test_asked_on_a_terminal(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        answer: str,
        status: int,
    ) -> None:
        monkeypatch.setattr(sys, "stdin", Terminal(answer))
        source = write_csv(tmp_path / "in.csv", feature_rows(2))

        assert vicket(str(source), "--template", "tpl_feature") == status

        assert "Continue? [y/N]" in capsys.readouterr().err
        assert len(sandbox.tickets()) == (2 if status == 0 else 0)

    def test_nothing_to_send_asks_nothing(
        self, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        source = write_csv(tmp_path / "in.csv", feature_rows(2))
        assert vicket(str(source), "--template", "tpl_feature", "--yes") == 0

        assert vicket(str(source), "--template", "tpl_feature") == 0


class TestUsageErrors:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--shard", "3/2"], "I must be from 1 to N"),
            (["--shard", "x"], "is not I/N"),
            (["--rate-limit", "0/60"], "CALLS/SECONDS"),
            (["--map", "no-equals"], "is not COLUMN=TARGET"),
            (["--concurrency", "0"], "1 or more"),
            (["--format", "xlsx"], "invalid choice"),
        ],
    )
    def test_bad_arguments(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        args: list[str],
        message: str,
    ) -> None:
        source = write_csv(tmp_path / "in.csv", feature_rows(1))

        assert main(["import", str(source), *args]) == 2
        assert message in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["missing.csv"], "cannot read"),
            (["in.csv", "--template", "Nope"], "no template 'Nope'"),
            (["in.csv", "--map", "A=q_nope"], "no template has a question"),
            (["in.csv", "--report", "no/such/dir/r.jsonl"], "cannot write"),
        ],
    )
    def test_unusable_inputs(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        args: list[str],
        message: str,
    ) -> None:
        write_csv(tmp_path / "in.csv", feature_rows(1))
        monkeypatch.chdir(tmp_path)

        assert vicket(*args, "--yes") == 2
        assert message in capsys.readouterr().err
        assert sandbox.tickets() == []

    def test_no_api_key(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.delenv("VICKET_API_KEY", raising=False)
        source = write_csv(tmp_path / "in.csv", feature_rows(1))

        assert vicket(str(source), "--dry-run") == 2
        assert "no API key" in capsys.readouterr().err

    def test_a_wrong_api_key_fails(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        source = write_csv(tmp_path / "in.csv", feature_rows(1))

        status = vicket(str(source), "--api-key", "vk_wrong", "--dry-run")

        assert status == 1
        assert "401" in capsys.readouterr().err


def _start(
    source: Path, sandbox: SandboxProcess, *args: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vicket_async",
            "import",
            str(source),
            "--template",
            "tpl_feature",
            "--api-key",
            sandbox.api_key,
            "--base-url",
            sandbox.base_url,
            "--yes",
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=sandbox.env(),
    )


def _wait_for_sends(sandbox: SandboxProcess, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(sandbox.tickets()) < count:
        assert time.monotonic() < deadline, "the import sent nothing"
        time.sleep(0.05)


class TestInterrupt:
    def test_ctrl_c_stops_cleanly_and_says_how_to_resume(
        self, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        rows = feature_rows(30)
        source = write_csv(tmp_path / "in.csv", rows)
        # Two tickets a second: the import is still busy when stopped.
        importer = _start(source, sandbox, "--rate-limit", "2/1")
        _wait_for_sends(sandbox, 3)
        importer.send_signal(signal.SIGINT)
        out, err = importer.communicate(timeout=30)

        assert importer.returncode == 130
        assert "Stopping: no new tickets are sent" in err
        assert "To resume, run (from the same directory):" in err
        resume = (
            f"vicket import {source} --template tpl_feature --base-url "
            f"{sandbox.base_url} --yes --rate-limit 2/1"
        )
        assert f"  {resume}\n" in err
        assert sandbox.api_key not in err + out
        sent = len(sandbox.tickets())
        assert 3 <= sent < 30

        status = vicket(str(source), "--template", "tpl_feature", "--yes")

        assert status == 0
        assert ticket_titles(sandbox) == sorted(r["title"] for r in rows)

    def test_a_second_ctrl_c_aborts_at_once(
        self,
        sandbox: SandboxProcess,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        rows = feature_rows(5)
        source = write_csv(tmp_path / "in.csv", rows)
        # The server creates each ticket, then takes its time to answer.
        fault = {"kind": "delay", "endpoint": "create_ticket", "delay": 30}
        sandbox.control("POST", "faults", {**fault, "times": None})
        importer = _start(source, sandbox, "--concurrency", "1")
        _wait_for_sends(sandbox, 1)
        importer.send_signal(signal.SIGINT)
        time.sleep(0.3)
        importer.send_signal(signal.SIGINT)
        _, err = importer.communicate(timeout=10)

        assert importer.returncode == 130
        assert "Aborted." in err
        assert "To resume, run" in err
        sandbox.control("DELETE", "faults")

        status = vicket(str(source), "--template", "tpl_feature", "--yes")

        captured = capsys.readouterr()
        assert status == 1
        assert "row 1: ambiguous: the request was in flight" in captured.err
        assert "--resend-ambiguous" in captured.err
        assert ticket_titles(sandbox) == sorted(r["title"] for r in rows)
