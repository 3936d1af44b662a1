"""
The import journal: one SQLite file recording every row's fate.

Ticket creation has no idempotency key, so the journal is what keeps an
interrupted import from sending a row twice. The rule: a row is committed
as ``sending`` before its request goes out, and as ``done``, ``failed`` or
``ambiguous`` when the answer (or the error) is in. Those commits are
durable (WAL with ``synchronous=FULL``) before anything else happens. A row
still ``sending`` when a run starts was in flight when a previous run died:
it may have reached the server, so it becomes ``ambiguous``. States that
only record what a local check found (``pending``, ``skipped``) are
committed in batches, since losing them costs only a re-check.

The connection holds SQLite's exclusive lock for its whole life, so two
imports can never work from one journal at once; the operating system
releases the lock when a process dies, however it dies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeAlias, TypeVar

import attrs

from ._errors import JournalError

__all__ = ["Entry", "Journal", "JournalThread", "Note", "default_journal_path"]

_SCHEMA_VERSION: Final = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rows (
    row INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    email_limit_reached INTEGER NOT NULL DEFAULT 0,
    warning TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT NOT NULL,
    updated TEXT NOT NULL,
    sent TEXT
);
"""
#: Notes are written once this many gather, or with the next commit.
_BATCH_ROWS: Final = 1000
#: Rows read ahead from the journal at a time.
_BLOCK_ROWS: Final = 1000
#: What a journal left ``sending`` by a dead run says about those rows.
IN_FLIGHT_REASON: Final = (
    "the request was in flight when an earlier run stopped; it may or may "
    "not have created the ticket"
)


#: A state to record in the next commit: row, key, state, reason.
Note: TypeAlias = tuple[int, str, str, str | None]


@attrs.frozen
class Entry:
    """What the journal knows about one row."""

    row: int
    key: str
    state: str
    reason: str | None
    email_limit_reached: bool
    warning: str | None


def default_journal_path(
    input_path: str | os.PathLike[str], shard: tuple[int, int] | None = None
) -> Path:
    """
    The journal that belongs beside an input file (and shard).

    ``tickets.csv`` gets ``tickets.csv.vicket-journal.sqlite``, and shard 2
    of 4 gets ``tickets.csv.shard-2-of-4.vicket-journal.sqlite``.
    """
    path = Path(input_path)
    suffix = "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"

    return path.with_name(f"{path.name}{suffix}.vicket-journal.sqlite")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Journal:
    """
    An open journal, locked for this process until `close`.

    Raises:
        JournalError: the file is locked by another import, or is not a
            journal of this version.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        try:
            # A `JournalThread` drives the connection from its own thread.
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=0.5,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            msg = f"cannot open the journal {self.path}: {error}"
            raise JournalError(msg) from None
        try:
            self._setup()
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" in str(error):
                msg = (
                    f"the journal {self.path} is in use by another import; "
                    f"wait for it to finish, or stop it first"
                )
            else:
                msg = f"cannot use the journal {self.path}: {error}"
            raise JournalError(msg) from None
        except sqlite3.DatabaseError as error:
            self._db.close()
            msg = f"{self.path} is not an import journal ({error})"
            raise JournalError(msg) from None
        except JournalError:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"<Journal {str(self.path)!r}>"

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        # Take the write lock now rather than at the first write, so that a
        # second import on this journal is refused before it does anything.
        db.execute("BEGIN EXCLUSIVE")
        try:
            if not self.readonly:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
            version = self._version()
            if version is None and not self.readonly:
                self._set_meta("schema", _SCHEMA_VERSION)
                version = _SCHEMA_VERSION
            if version != _SCHEMA_VERSION:
                msg = (
                    f"{self.path} is not an import journal"
                    if version is None
                    else f"the journal {self.path} has format {version}, "
                    f"this version of vicket-async reads format "
                    f"{_SCHEMA_VERSION}"
                )
                raise JournalError(msg)
            if not self.readonly:
                self._set_meta("opened", _now())
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _version(self) -> str | None:
        tables = {
            name
            for (name,) in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        if not {"meta", "rows"} <= tables:
            return None

        return self.meta("schema")

    def close(self) -> None:
        """Release the journal."""
        self._db.close()

    def meta(self, key: str) -> str | None:
        found = self._db.execute(
            "SELECT value FROM meta WHERE key = ?", (key,)
        ).fetchone()

        return None if found is None else str(found[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (key, value),
        )

    def claim(self, key: str, value: str, what: str) -> None:
        """
        Record ``value`` under ``key``, or check it matches what is there.

        Raises:
            JournalError: the journal recorded another value; ``what`` says
                in words what the value is.
        """
        known = self.meta(key)
        if known is None and not self.readonly:
            self._durably((), lambda: self._set_meta(key, value))
        elif known is not None and known != value:
            msg = (
                f"the journal {self.path} was written for {what} {known!r}, "
                f"not {value!r}; use another --journal for this import"
            )
            raise JournalError(msg)

    def lookup(self, row: int) -> Entry | None:
        return self.entries(row, row + 1).get(row)

    def entries(self, first: int, stop: int) -> dict[int, Entry]:
        """What the journal knows of the rows from ``first`` to ``stop``."""
        return {
            row: Entry(row, key, state, reason, bool(limit), warning)
            for row, key, state, reason, limit, warning in self._db.execute(
                "SELECT row, key, state, reason, email_limit_reached, "
                "warning FROM rows WHERE row >= ? AND row < ?",
                (first, stop),
            )
        }

    def note(self, notes: Sequence[Note]) -> None:
        """Record states that a crash may lose, in one commit."""
        if notes:
            self._durably(notes, lambda: None)

    def mark_sending(
        self, rows: Sequence[tuple[int, str]], notes: Sequence[Note] = ()
    ) -> None:
        """Durably record that these rows' requests are about to go out."""

        def write() -> None:
            for row, key in rows:
                self._write(row, key, "sending", None, sent=True)

        self._durably(notes, write)

    def finish(
        self,
        row: int,
        key: str,
        state: str,
        reason: str | None = None,
        *,
        email_limit_reached: bool = False,
        warning: str | None = None,
        notes: Sequence[Note] = (),
    ) -> None:
        """Durably record how a sent row ended."""

        def write() -> None:
            self._write(
                row,
                key,
                state,
                reason,
                email_limit_reached=email_limit_reached,
                warning=warning,
            )

        self._durably(notes, write)

    def recover_in_flight(self) -> int:
        """Turn rows a dead run left ``sending`` into ``ambiguous``."""
        count = 0

        def write() -> None:
            nonlocal count
            cursor = self._db.execute(
                "UPDATE rows SET state = 'ambiguous', reason = ?, "
                "updated = ? WHERE state = 'sending'",
                (IN_FLIGHT_REASON, _now()),
            )
            count = cursor.rowcount

        self._durably((), write)

        return count

    def counts(self) -> dict[str, int]:
        """How many rows the journal holds in each state."""
        return {
            str(state): int(count)
            for state, count in self._db.execute(
                "SELECT state, count(*) FROM rows GROUP BY state"
            )
        }

    def _durably(
        self, notes: Sequence[Note], write: Callable[[], object]
    ) -> None:
        """Write ``notes``, then ``write``, in one durable commit."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for row, key, state, reason in notes:
                self._write(row, key, state, reason)
            write()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _write(
        self,
        row: int,
        key: str,
        state: str,
        reason: str | None,
        *,
        email_limit_reached: bool = False,
        warning: str | None = None,
        sent: bool = False,
    ) -> None:
        now = _now()
        self._db.execute(
            "INSERT INTO rows (row, key, state, reason, email_limit_reached,"
            " warning, attempts, first_seen, updated, sent)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (row) DO UPDATE SET key = excluded.key,"
            " state = excluded.state, reason = excluded.reason,"
            " email_limit_reached = excluded.email_limit_reached,"
            " warning = excluded.warning,"
            " attempts = rows.attempts + excluded.attempts,"
            " updated = excluded.updated,"
            " sent = coalesce(excluded.sent, rows.sent)",
            (
                row,
                key,
                state,
                reason,
                int(email_limit_reached),
                warning,
                int(sent),
                now,
                now,
                now if sent else None,
            ),
        )


T = TypeVar("T")


class JournalThread:
    """
    A journal driven from the event loop, with its disk work in a thread.

    A commit with ``synchronous=FULL`` waits for the disk. On the event
    loop that wait would hold up everything else, including requests whose
    budget slot is already stamped, which then reach the server later than
    the budget believes. So every call runs in one thread of its own, in
    the order made. Lookups read a block of rows ahead; notes gather here
    and go out with the next commit, before it, so they never overwrite a
    later state of their row.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="vicket-journal"
        )
        self._notes: list[Note] = []
        self._block = -1
        self._entries: dict[int, Entry] = {}

    def __repr__(self) -> str:
        return f"<JournalThread {str(self.journal.path)!r}>"

    async def _run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()

        return await loop.run_in_executor(self._executor, call)

    def _take_notes(self) -> list[Note]:
        notes, self._notes = self._notes, []
        return notes

    async def claim(self, key: str, value: str, what: str) -> None:
        await self._run(
            functools.partial(self.journal.claim, key, value, what)
        )

    async def recover_in_flight(self) -> int:
        return await self._run(self.journal.recover_in_flight)

    async def lookup(self, row: int) -> Entry | None:
        block = row // _BLOCK_ROWS
        if block != self._block:
            first = block * _BLOCK_ROWS
            self._entries = await self._run(
                functools.partial(
                    self.journal.entries, first, first + _BLOCK_ROWS
                )
            )
            self._block = block

        return self._entries.get(row)

    async def note(
        self, row: int, key: str, state: str, reason: str | None = None
    ) -> None:
        """Record a state that a crash may lose; written in batches."""
        self._notes.append((row, key, state, reason))
        if len(self._notes) >= _BATCH_ROWS:
            await self._run(
                functools.partial(self.journal.note, self._take_notes())
            )

    async def mark_sending(self, rows: Sequence[tuple[int, str]]) -> None:
        await self._run(
            functools.partial(
                self.journal.mark_sending, rows, self._take_notes()
            )
        )

    async def finish(
        self,
        row: int,
        key: str,
        state: str,
        reason: str | None = None,
        *,
        email_limit_reached: bool = False,
        warning: str | None = None,
    ) -> None:
        await self._run(
            functools.partial(
                self.journal.finish,
                row,
                key,
                state,
                reason,
                email_limit_reached=email_limit_reached,
                warning=warning,
                notes=self._take_notes(),
            )
        )

    async def aclose(self) -> None:
        """Write the notes left, release the journal, end the thread."""
        try:
            if not self.journal.readonly:
                await self._run(
                    functools.partial(self.journal.note, self._take_notes())
                )
        finally:
            try:
                await self._run(self.journal.close)
            finally:
                self._executor.shutdown(wait=False)
