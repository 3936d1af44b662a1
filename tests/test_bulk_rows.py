"""Reading import files, resolving rows into tickets, the journal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import vicket_async.bulk
from tests.bulk_support import read_jsonl
from vicket_async import (
    ConfigurationError,
    Option,
    Question,
    QuestionType,
    SupportPage,
    Template,
)
from vicket_async.bulk import (
    InputFileError,
    JournalError,
    Row,
    RowOutcome,
    RowState,
    read_rows,
)
from vicket_async.bulk._journal import (
    Journal,
    JournalThread,
    default_journal_path,
)
from vicket_async.bulk._report import ReportWriter
from vicket_async.bulk._tickets import Resolver, content_key


def test_public_names() -> None:
    assert sorted(vicket_async.bulk.__all__) == [
        "ImportHaltedError",
        "InputFileError",
        "JournalError",
        "Row",
        "RowFile",
        "RowOutcome",
        "RowState",
        "default_journal_path",
        "import_tickets",
        "read_rows",
    ]
    assert vicket_async.bulk.RowOutcome.__module__ == "vicket_async.bulk"


class TestReadRows:
    def test_csv_rows_are_numbered_after_the_header(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "in.csv"
        path.write_text(
            "\ufeffemail,title\r\na@example.com,One\r\n\r\n"
            'b@example.com,"Two\nlines"\r\n',
            encoding="utf-8",
        )

        rows = list(read_rows(path))

        assert rows == [
            Row(1, {"email": "a@example.com", "title": "One"}),
            Row(3, {"email": "b@example.com", "title": "Two\nlines"}),
        ]
        # Reading again gives the same rows.
        assert list(read_rows(path)) == rows

    def test_a_row_wider_than_the_header_is_a_problem(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "in.csv"
        path.write_text("email,title\na,b,c\nd,e,\n", encoding="utf-8")

        rows = list(read_rows(path))

        assert rows[0].problem == (
            "the row has 3 cells but the header names 2 columns"
        )
        assert rows[1] == Row(2, {"email": "d", "title": "e"})

    def test_tsv_and_other_delimiters(self, tmp_path: Path) -> None:
        tsv = tmp_path / "in.tsv"
        tsv.write_text("email\ttitle\na\tb\n", encoding="utf-8")
        semi = tmp_path / "in.txt"
        semi.write_text("email;title\na;b\n", encoding="utf-8")

        (row,) = read_rows(tsv)
        assert row.fields == {"email": "a", "title": "b"}
        (row,) = read_rows(semi, format="csv", delimiter=";")
        assert row.fields == {"email": "a", "title": "b"}

    def test_json_lines_are_numbered_by_line(self, tmp_path: Path) -> None:
        path = tmp_path / "in.jsonl"
        path.write_text(
            '{"email": "a", "q_ok": true}\n\n[1, 2]\n{broken\n',
            encoding="utf-8",
        )

        rows = list(read_rows(path))

        assert rows[0] == Row(1, {"email": "a", "q_ok": True})
        assert rows[1] == Row(
            3, problem="the line holds a list, not an object"
        )
        assert rows[2].number == 4
        assert str(rows[2].problem).startswith("the line is not valid JSON")

    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            ("in.xlsx", "", "cannot tell the format"),
            ("in.csv", "", "the first line must be a header"),
            ("in.csv", "a,b,a\n", "the column 'a' appears twice"),
        ],
    )
    def test_unusable_files(
        self, tmp_path: Path, name: str, content: str, message: str
    ) -> None:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")

        with pytest.raises(InputFileError, match=message):
            read_rows(path)

    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(InputFileError, match="cannot read"):
            read_rows(tmp_path / "nope.csv")

    def test_text_in_another_encoding(self, tmp_path: Path) -> None:
        path = tmp_path / "in.csv"
        path.write_bytes(b"email,title\na,b\nc,Caf\xe9\n")

        with pytest.raises(InputFileError, match="is not utf-8-sig text"):
            list(read_rows(path))
        rows = read_rows(path, encoding="latin-1")
        assert list(rows)[1].fields == {"email": "c", "title": "Caf\xe9"}

    def test_reading_is_lazy(self, tmp_path: Path) -> None:
        path = tmp_path / "in.csv"
        path.write_text("email\n" + "a\n" * 1000, encoding="utf-8")
        rows = iter(read_rows(path))

        assert next(rows).number == 1
        path.unlink()
        # The open file keeps going; nothing was read ahead into memory.
        assert sum(1 for _ in rows) == 999


def test_content_key_ignores_what_does_not_matter() -> None:
    key = content_key({"email": "a@example.com", "title": "Hi\r\nthere"})

    assert key == content_key(
        {"title": " Hi\nthere ", "email": "a@example.com", "extra": ""}
    )
    assert key != content_key({"email": "a@example.com", "title": "Hi"})


def _page() -> SupportPage:
    bug = Template(
        id="tpl_bug",
        name="Bug Report",
        questions=(
            Question(
                id="q_text",
                label="Describe it",
                type=QuestionType.TEXTAREA,
                required=True,
            ),
            Question(
                id="q_browser",
                label="Browser",
                type=QuestionType.SELECT,
                options=(
                    Option(value="ff", label="Firefox"),
                    Option(value="edge", label="Edge"),
                ),
            ),
            Question(id="q_ok", label="OK?", type=QuestionType.CHECKBOX),
            Question(id="q_when", label="When", type=QuestionType.DATE),
            Question(id="q_file", label="Screenshot", type=QuestionType.FILE),
        ),
    )
    other = Template(
        id="tpl_other",
        name="Other",
        questions=(
            Question(id="q_note", label="Note", type=QuestionType.TEXT),
        ),
    )

    return SupportPage(templates=(bug, other))


def _row(**fields: Any) -> dict[str, Any]:
    return {"email": "a@example.com", "title": "Title", **fields}


class TestResolver:
    def test_values_become_what_each_question_takes(
        self, tmp_path: Path
    ) -> None:
        resolver = Resolver(_page(), template="Bug Report", base_dir=tmp_path)

        resolved = resolver.resolve(
            _row(
                q_text="broken",
                Browser="FIREFOX",
                q_ok="Yes",
                When="2026-03-01T10:00:00Z",
                q_file="",
            )
        )

        assert resolved.problems == ()
        assert resolved.draft is not None
        assert resolved.draft.answers == {
            "q_text": "broken",
            "q_browser": "ff",
            "q_ok": True,
            "q_when": dt.date(2026, 3, 1),
        }

    def test_file_paths_start_at_the_base_dir(self, tmp_path: Path) -> None:
        (tmp_path / "a.png").write_bytes(b"png")
        resolver = Resolver(_page(), template="tpl_bug", base_dir=tmp_path)

        resolved = resolver.resolve(_row(q_text="x", q_file="a.png"))

        assert resolved.draft is not None
        assert resolved.draft.answers["q_file"] == tmp_path / "a.png"

    def test_precedence_map_then_reserved_then_id_then_label(self) -> None:
        resolver = Resolver(
            _page(),
            template="tpl_bug",
            column_map={
                "Reporter": "email",
                "Details": "Describe it",
                "Notes": "",
            },
        )

        resolved = resolver.resolve(
            {
                "Reporter": "mapped@example.com",
                "EMAIL": "column@example.com",
                "Title": "Hello",
                "Details": "from the map",
                "q_text": "from the id column",
                "Describe it": "from the label column",
                "Browser": "edge",
                "Notes": "ignored",
            }
        )

        assert resolved.draft is not None
        assert resolved.draft.email == "mapped@example.com"
        assert resolved.draft.title == "Hello"
        assert resolved.draft.answers == {
            "q_text": "from the map",
            "q_browser": "edge",
        }

    def test_an_id_column_beats_a_label_column(self) -> None:
        resolver = Resolver(_page(), template="tpl_bug")

        resolved = resolver.resolve(
            _row(q_text="by id", **{"Describe it": "by label"})
        )

        assert resolved.draft is not None
        assert resolved.draft.answers == {"q_text": "by id"}

    def test_a_row_may_name_its_template(self) -> None:
        resolver = Resolver(_page(), template="tpl_bug")

        other = resolver.resolve(_row(template="Other", Note="hi"))
        unknown = resolver.resolve(_row(template="Nope"))

        assert other.draft is not None
        assert other.draft.template.id == "tpl_other"
        assert unknown.problems == (
            "template: no template 'Nope'; the templates are: tpl_bug "
            "(Bug Report), tpl_other (Other)",
        )

    def test_every_problem_is_listed_with_its_column(self) -> None:
        resolver = Resolver(
            _page(),
            template="tpl_bug",
            column_map={"Browser used": "q_browser"},
        )

        resolved = resolver.resolve(
            {
                "email": "nope",
                "title": "",
                "Browser used": "Opera",
                "q_ok": "maybe",
            }
        )

        assert resolved.draft is None
        assert resolved.problems == (
            "email: 'nope' is not an email address",
            "title: the title is empty",
            "q_browser (Browser): 'Opera' is not one of the options "
            "('ff', 'edge') (column 'Browser used')",
            "q_ok (OK?): a CHECKBOX question takes True or False",
            "q_text (Describe it): is required",
        )

    def test_a_mapped_column_the_template_lacks(self) -> None:
        resolver = Resolver(_page(), column_map={"B": "q_browser"})

        resolved = resolver.resolve(_row(template="tpl_other", B="ff"))

        assert resolved.problems == (
            "column 'B': template 'tpl_other' has no question 'q_browser'",
        )

    def test_no_template_at_all(self) -> None:
        resolved = Resolver(_page()).resolve(_row())

        assert resolved.problems[0].startswith(
            "template: the row names no template"
        )

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"template": "Nope"}, "no template 'Nope'"),
            ({"column_map": {"X": "q_nope"}}, "no template has a question"),
            (
                {"column_map": {"X": "q_ok", "Y": "OK?"}},
                "the columns 'X' and 'Y' both map to question 'q_ok'",
            ),
        ],
    )
    def test_bad_settings(self, options: Any, message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            Resolver(_page(), **options)

    def test_ignored_columns(self) -> None:
        resolver = Resolver(_page(), column_map={"Who": "email"})

        ignored = resolver.ignored_columns(
            ["Who", "Title", "q_ok", "Note", "Created at"]
        )

        assert ignored == ["Created at"]


class TestJournal:
    def test_default_paths(self) -> None:
        assert default_journal_path(Path("d/t.csv")) == Path(
            "d/t.csv.vicket-journal.sqlite"
        )
        assert default_journal_path(Path("t.csv"), (2, 4)) == Path(
            "t.csv.shard-2-of-4.vicket-journal.sqlite"
        )

    def test_states_survive_reopening(self, tmp_path: Path) -> None:
        path = tmp_path / "j.sqlite"
        book = Journal(path)
        book.note(
            [(1, "k1", "skipped", "bad email"), (2, "k2", "pending", None)]
        )
        book.mark_sending([(3, "k3")])
        book.finish(4, "k4", "done", warning="slow", email_limit_reached=True)
        book.close()

        book = Journal(path)
        recovered = book.recover_in_flight()
        counts = book.counts()
        entry = book.lookup(4)
        third = book.lookup(3)
        book.close()

        assert recovered == 1
        assert counts == {
            "skipped": 1,
            "pending": 1,
            "ambiguous": 1,
            "done": 1,
        }
        assert entry is not None
        assert (entry.state, entry.warning, entry.email_limit_reached) == (
            "done",
            "slow",
            True,
        )
        assert third is not None
        assert "in flight" in str(third.reason)

    async def test_notes_never_overwrite_a_later_state(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "j.sqlite"
        book = JournalThread(Journal(path))
        await book.note(1, "k1", "pending")
        await book.note(2, "k2", "skipped", "bad")
        await book.mark_sending([(1, "k1")])
        await book.note(3, "k3", "pending")
        await book.finish(1, "k1", "done")
        await book.aclose()

        book = JournalThread(Journal(path))
        entries = [await book.lookup(row) for row in (1, 2, 3, 4)]
        await book.aclose()

        assert [e and e.state for e in entries] == [
            "done",
            "skipped",
            "pending",
            None,
        ]

    def test_a_read_only_journal_is_not_written(self, tmp_path: Path) -> None:
        path = tmp_path / "j.sqlite"
        Journal(path).close()
        book = Journal(path, readonly=True)
        book.claim("shard", "all", "shard")
        book.close()

        book = Journal(path)
        assert book.meta("shard") is None
        book.close()

    def test_not_a_journal(self, tmp_path: Path) -> None:
        path = tmp_path / "j.sqlite"
        path.write_text("hello", encoding="utf-8")

        with pytest.raises(JournalError, match="is not an import journal"):
            Journal(path)


def test_report_lines(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path) as report:
        report.write(
            RowOutcome(
                row=3,
                state=RowState.SKIPPED,
                key="abc",
                reason="title: the title is empty",
                email="a@example.com",
            )
        )

    assert read_jsonl(path) == [
        {
            "row": 3,
            "key": "abc",
            "state": "skipped",
            "reason": "title: the title is empty",
            "email_limit_reached": False,
            "warning": None,
            "earlier": False,
            "email": "a@example.com",
            "title": None,
        }
    ]
