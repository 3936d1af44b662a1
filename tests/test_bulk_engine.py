"""`import_tickets` against an in-process sandbox: journal, resume, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.bulk_support import feature_rows, write_csv
from vicket_async import RateLimit, RetryPolicy, VicketClient
from vicket_async.bulk import (
    ImportHaltedError,
    JournalError,
    Row,
    RowOutcome,
    RowState,
    import_tickets,
    read_rows,
)
from vicket_async.bulk._engine import Rows
from vicket_async.bulk._journal import Journal
from vicket_async.bulk._tickets import content_key
from vicket_async.sandbox import Sandbox

pytestmark = pytest.mark.vicket_sandbox(time_scale=600)

#: Ten tickets per sandbox minute, which lasts 0.1 s at this time scale.
FAST = {"create_ticket": RateLimit(10, 0.1), "init": RateLimit(30, 0.1)}


def client_for(sandbox: Sandbox, **options: Any) -> VicketClient:
    options.setdefault("rate_limits", FAST)
    return VicketClient(
        api_key=sandbox.api_key, base_url=sandbox.base_url, **options
    )


async def run(
    rows: Rows,
    sandbox: Sandbox,
    journal: Path | None,
    **options: Any,
) -> list[RowOutcome]:
    options.setdefault("template", "tpl_feature")
    async with client_for(sandbox, **options.pop("client", {})) as client:
        return [
            outcome
            async for outcome in import_tickets(
                rows, client=client, journal=journal, **options
            )
        ]


async def drain(
    outcomes: AsyncIterator[RowOutcome], into: list[RowOutcome]
) -> None:
    async for outcome in outcomes:
        into.append(outcome)


def by_row(outcomes: Iterable[RowOutcome]) -> dict[int, RowOutcome]:
    found: dict[int, RowOutcome] = {}
    for outcome in outcomes:
        assert outcome.row not in found, f"row {outcome.row} came twice"
        found[outcome.row] = outcome

    return found


def titles(sandbox: Sandbox) -> list[str]:
    return sorted(ticket.title for ticket in sandbox.state.all_tickets())


def create_requests(sandbox: Sandbox) -> int:
    return len(sandbox.state.requests_for("create_ticket"))


class TestDryRun:
    async def test_checks_every_row_and_sends_nothing(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows: list[dict[str, Any]] = feature_rows(3)
        rows[1]["email"] = "not an email"
        rows[2]["q_contact_ok"] = "perhaps"
        journal = tmp_path / "journal.sqlite"

        outcomes = by_row(
            await run(rows, vicket_sandbox, journal, dry_run=True)
        )

        assert outcomes[1].state is RowState.PENDING
        assert outcomes[2].state is RowState.SKIPPED
        assert "'not an email' is not an email address" in str(
            outcomes[2].reason
        )
        assert outcomes[3].state is RowState.SKIPPED
        assert "q_contact_ok" in str(outcomes[3].reason)
        assert create_requests(vicket_sandbox) == 0
        assert not journal.exists()

    async def test_needs_no_journal(self, vicket_sandbox: Sandbox) -> None:
        outcomes = await run(
            feature_rows(2), vicket_sandbox, None, dry_run=True
        )

        assert [o.state for o in outcomes] == [RowState.PENDING] * 2

    async def test_real_run_needs_a_journal(
        self, vicket_sandbox: Sandbox
    ) -> None:
        with pytest.raises(ValueError, match="needs a journal"):
            await run(feature_rows(1), vicket_sandbox, None)


class TestSending:
    async def test_creates_one_ticket_per_valid_row(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows: list[dict[str, Any]] = feature_rows(12)
        rows[4]["title"] = ""
        journal = tmp_path / "journal.sqlite"

        outcomes = by_row(await run(rows, vicket_sandbox, journal))

        assert len(outcomes) == 12
        assert outcomes[5].state is RowState.SKIPPED
        assert outcomes[5].reason == "title: the title is empty"
        done = [n for n, o in outcomes.items() if o.state is RowState.DONE]
        assert sorted(done) == [n for n in range(1, 13) if n != 5]
        assert titles(vicket_sandbox) == sorted(
            row["title"] for row in rows if row["title"]
        )
        ticket = vicket_sandbox.state.tickets_for("user1@example.com")[0]
        answers = {a.question_id: a.answer for a in ticket.answers}
        assert answers == {
            "q_idea": "an idea numbered 1",
            "q_contact_ok": True,
        }

    async def test_second_run_sends_nothing_again(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows = feature_rows(5)
        journal = tmp_path / "journal.sqlite"
        await run(rows, vicket_sandbox, journal)

        again = await run(rows, vicket_sandbox, journal)

        assert all(o.state is RowState.DONE and o.earlier for o in again)
        assert create_requests(vicket_sandbox) == 5
        assert len(titles(vicket_sandbox)) == 5

    async def test_file_answers_are_relative_to_the_input(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        (tmp_path / "shots").mkdir()
        (tmp_path / "shots" / "blank.png").write_bytes(b"\x89PNG fake")
        source = write_csv(
            tmp_path / "bugs.csv",
            [
                {
                    "email": "ada@example.com",
                    "title": "Export broken",
                    "Describe the issue": "Nothing happens",
                    "Browser": "Firefox",
                    "q_screenshot": "shots/blank.png",
                },
                {
                    "email": "bob@example.com",
                    "title": "Also broken",
                    "Describe the issue": "Blank page",
                    "Browser": "edge",
                    "q_screenshot": "shots/missing.png",
                },
            ],
            columns=(
                "email",
                "title",
                "Describe the issue",
                "Browser",
                "q_screenshot",
            ),
        )

        outcomes = by_row(
            await run(
                read_rows(source),
                vicket_sandbox,
                tmp_path / "journal.sqlite",
                template="Bug Report",
                base_dir=tmp_path,
            )
        )

        assert outcomes[1].state is RowState.DONE
        assert outcomes[2].state is RowState.SKIPPED
        assert "missing.png is not a readable file" in str(outcomes[2].reason)
        ticket = vicket_sandbox.state.tickets_for("ada@example.com")[0]
        answers = {a.question_id: a for a in ticket.answers}
        assert answers["q_browser"].answer == "firefox"
        shot = answers["q_screenshot"].attachments[0]
        assert shot.original_filename == "blank.png"

    async def test_async_rows_and_row_objects(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        async def rows() -> AsyncIterator[Row]:
            for number, fields in zip((7, 9), feature_rows(2), strict=True):
                yield Row(number, fields)

        outcomes = by_row(
            await run(rows(), vicket_sandbox, tmp_path / "j.sqlite")
        )

        assert sorted(outcomes) == [7, 9]
        assert outcomes[7].key == content_key(feature_rows(1)[0])

    async def test_row_numbers_must_increase(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows = [Row(2, feature_rows(1)[0]), Row(2, feature_rows(1)[0])]

        with pytest.raises(ValueError, match="row 2 came after row 2"):
            await run(rows, vicket_sandbox, tmp_path / "j.sqlite")
        assert len(titles(vicket_sandbox)) <= 1

    async def test_server_warnings_are_kept(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        vicket_sandbox.state.email_limit = 1
        rows = feature_rows(2)
        rows[1]["email"] = rows[0]["email"]
        journal = tmp_path / "journal.sqlite"

        outcomes = by_row(await run(rows, vicket_sandbox, journal))
        again = by_row(await run(rows, vicket_sandbox, journal))

        assert [o.email_limit_reached for o in outcomes.values()].count(
            True
        ) == 1
        assert again == {
            n: RowOutcome(
                row=n,
                state=RowState.DONE,
                key=o.key,
                email_limit_reached=o.email_limit_reached,
                warning=o.warning,
                email=o.email,
                title=o.title,
                earlier=True,
            )
            for n, o in outcomes.items()
        }


class TestResume:
    async def test_a_clean_stop_resumes_where_it_stopped(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows = feature_rows(40)
        journal = tmp_path / "journal.sqlite"
        stop = asyncio.Event()
        first: list[RowOutcome] = []
        async with client_for(vicket_sandbox) as client:
            async for outcome in import_tickets(
                rows,
                client=client,
                journal=journal,
                template="tpl_feature",
                stop=stop,
            ):
                first.append(outcome)
                if len(first) == 15:
                    stop.set()

        assert 15 <= len(first) < 40
        assert all(o.state is RowState.DONE for o in first)
        assert len(titles(vicket_sandbox)) == len(first)

        second = by_row(await run(rows, vicket_sandbox, journal))

        assert sorted(second) == list(range(1, 41))
        assert {n for n, o in second.items() if o.earlier} == {
            o.row for o in first
        }
        assert all(o.state is RowState.DONE for o in second.values())
        assert titles(vicket_sandbox) == sorted(r["title"] for r in rows)

    async def test_a_row_left_sending_is_ambiguous_and_not_resent(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows = feature_rows(4)
        journal = tmp_path / "journal.sqlite"
        await run(rows[:1], vicket_sandbox, journal)
        # A run that died while row 2 was in flight leaves it like this.
        book = Journal(journal)
        book.mark_sending([(2, content_key(rows[1]))])
        book.close()

        outcomes = by_row(await run(rows, vicket_sandbox, journal))

        assert outcomes[2].state is RowState.AMBIGUOUS
        assert "in flight when an earlier run stopped" in str(
            outcomes[2].reason
        )
        assert outcomes[3].state is RowState.DONE
        assert "Idea 2" not in titles(vicket_sandbox)

        again = by_row(await run(rows, vicket_sandbox, journal))
        assert again[2].state is RowState.AMBIGUOUS
        assert again[2].earlier

        resent = by_row(
            await run(rows, vicket_sandbox, journal, resend_ambiguous=True)
        )
        assert resent[2].state is RowState.DONE
        assert not resent[2].earlier
        assert titles(vicket_sandbox).count("Idea 2") == 1

    async def test_a_changed_row_is_reported_not_resent(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows = feature_rows(3)
        journal = tmp_path / "journal.sqlite"
        await run(rows, vicket_sandbox, journal)
        rows[1]["title"] = "Idea 2, edited"
        # Cosmetic differences are not changes.
        rows[2]["q_idea"] = f"  {rows[2]['q_idea']}  "

        outcomes = by_row(await run(rows, vicket_sandbox, journal))

        assert outcomes[2].state is RowState.CHANGED
        assert "changed since it was sent" in str(outcomes[2].reason)
        assert "new file" in str(outcomes[2].reason)
        assert outcomes[3].state is RowState.DONE
        assert create_requests(vicket_sandbox) == 3

    async def test_failed_rows_are_retried_by_the_next_run(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        vicket_sandbox.state.faults.add(
            "status", "create_ticket", status=400, times=1
        )
        journal = tmp_path / "journal.sqlite"
        rows = feature_rows(3)

        first = by_row(await run(rows, vicket_sandbox, journal, concurrency=1))
        second = by_row(await run(rows, vicket_sandbox, journal))

        assert first[1].state is RowState.FAILED
        assert "400" in str(first[1].reason)
        assert second[1].state is RowState.DONE
        assert not second[1].earlier
        assert titles(vicket_sandbox) == ["Idea 1", "Idea 2", "Idea 3"]

    async def test_invalid_rows_are_checked_again(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows: list[dict[str, Any]] = feature_rows(2)
        rows[0]["q_contact_ok"] = "dunno"
        journal = tmp_path / "journal.sqlite"
        first = by_row(await run(rows, vicket_sandbox, journal))
        rows[0]["q_contact_ok"] = "no"

        second = by_row(await run(rows, vicket_sandbox, journal))

        assert first[1].state is RowState.SKIPPED
        assert second[1].state is RowState.DONE


class TestFaults:
    @pytest.mark.parametrize(
        ("kind", "status"), [("status", 502), ("status", 504), ("drop", None)]
    )
    async def test_a_request_that_may_have_arrived_is_ambiguous(
        self,
        vicket_sandbox: Sandbox,
        tmp_path: Path,
        kind: Any,
        status: int | None,
    ) -> None:
        vicket_sandbox.state.faults.add(
            kind, "create_ticket", status=status, times=1
        )
        journal = tmp_path / "journal.sqlite"
        rows = feature_rows(2)

        first = by_row(await run(rows, vicket_sandbox, journal, concurrency=1))
        second = by_row(await run(rows, vicket_sandbox, journal))

        assert first[1].state is RowState.AMBIGUOUS
        assert "may have created the ticket" in str(first[1].reason)
        assert first[2].state is RowState.DONE
        assert second[1].state is RowState.AMBIGUOUS
        assert second[1].earlier
        assert titles(vicket_sandbox) == ["Idea 2"]

    async def test_a_request_that_never_left_fails(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        async with client_for(vicket_sandbox) as client:
            page = await client.init()
        closed = VicketClient(
            api_key=vicket_sandbox.api_key,
            # Nothing listens on port 9 of the loopback interface.
            base_url="http://127.0.0.1:9",
            retry=RetryPolicy(attempts=1),
        )
        async with closed:
            outcomes = [
                outcome
                async for outcome in import_tickets(
                    feature_rows(1),
                    client=closed,
                    journal=tmp_path / "journal.sqlite",
                    template="tpl_feature",
                    page=page,
                )
            ]

        assert outcomes[0].state is RowState.FAILED
        assert "nothing was sent" in str(outcomes[0].reason)

    async def test_a_refused_key_halts_the_import(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        async with client_for(vicket_sandbox) as client:
            page = await client.init()
        outcomes: list[RowOutcome] = []
        wrong = VicketClient(
            api_key="vk_wrong", base_url=vicket_sandbox.base_url
        )
        async with wrong:
            rows = import_tickets(
                feature_rows(30),
                client=wrong,
                journal=tmp_path / "journal.sqlite",
                template="tpl_feature",
                page=page,
                concurrency=2,
            )
            with pytest.raises(ImportHaltedError, match="API key was refused"):
                await drain(rows, outcomes)

        assert 1 <= len(outcomes) <= 2
        assert all(o.state is RowState.FAILED for o in outcomes)

    async def test_a_failing_server_halts_the_import(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        vicket_sandbox.state.faults.add(
            "status", "create_ticket", status=503, times=None
        )
        outcomes: list[RowOutcome] = []
        async with client_for(
            vicket_sandbox, retry=RetryPolicy(attempts=1)
        ) as client:
            rows = import_tickets(
                feature_rows(40),
                client=client,
                journal=tmp_path / "journal.sqlite",
                template="tpl_feature",
                concurrency=1,
            )
            with pytest.raises(ImportHaltedError, match="10 rows in a row"):
                await drain(rows, outcomes)

        assert len(outcomes) == 10
        assert all(o.state is RowState.FAILED for o in outcomes)


class TestSharding:
    async def test_two_shards_cover_every_row_once(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        rows = feature_rows(21)
        one = by_row(
            await run(
                rows, vicket_sandbox, tmp_path / "1.sqlite", shard=(1, 2)
            )
        )
        two = by_row(
            await run(
                rows, vicket_sandbox, tmp_path / "2.sqlite", shard=(2, 2)
            )
        )

        assert set(one).isdisjoint(two)
        assert set(one) | set(two) == set(range(1, 22))
        assert all(n % 2 == 0 for n in one)
        assert titles(vicket_sandbox) == sorted(r["title"] for r in rows)

    async def test_a_journal_belongs_to_one_shard(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        journal = tmp_path / "journal.sqlite"
        await run(feature_rows(2), vicket_sandbox, journal, shard=(1, 2))

        with pytest.raises(JournalError, match="shard '1/2', not '2/2'"):
            await run(feature_rows(2), vicket_sandbox, journal, shard=(2, 2))

    async def test_a_bad_shard_is_refused(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        with pytest.raises(ValueError, match="the index must be 1 to 2"):
            await run(
                feature_rows(1), vicket_sandbox, tmp_path / "j", shard=(3, 2)
            )


class TestJournalGuards:
    async def test_a_journal_in_use_is_refused(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        journal = tmp_path / "journal.sqlite"
        holder = Journal(journal)
        try:
            with pytest.raises(JournalError, match="in use by another"):
                await run(feature_rows(1), vicket_sandbox, journal)
        finally:
            holder.close()

    async def test_a_journal_belongs_to_one_api(
        self, vicket_sandbox: Sandbox, tmp_path: Path
    ) -> None:
        journal = tmp_path / "journal.sqlite"
        book = Journal(journal)
        book.claim("origin", "https://api.vicket.app", "the API at")
        book.close()

        with pytest.raises(JournalError, match="another --journal"):
            await run(feature_rows(1), vicket_sandbox, journal)
        assert create_requests(vicket_sandbox) == 0
