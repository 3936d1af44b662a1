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

import datetime as dt
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs

from ._errors import JournalError

__all__ = ["Entry", "Journal", "default_journal_path"]

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
#: Batched writes are committed after this many rows or seconds.
_BATCH_ROWS: Final = 1000
_BATCH_SECONDS: Final = 1.0
#: What a journal left ``sending`` by a dead run says about those rows.
IN_FLIGHT_REASON: Final = (
    "the request was in flight when an earlier run stopped; it may or may "
    "not have created the ticket"
)


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
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=0.5
            )
        except sqlite3.Error as error:
            msg = f"cannot open the journal {self.path}: {error}"
            raise JournalError(msg) from None
        self._in_batch = False
        self._batch_rows = 0
        self._batch_started = 0.0
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
        """Commit whatever is batched and release the journal."""
        try:
            self.flush()
        finally:
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
            self._durably(lambda: self._set_meta(key, value))
        elif known is None:
            return
        elif known != value:
            msg = (
                f"the journal {self.path} was written for {what} {known!r}, "
                f"not {value!r}; use another --journal for this import"
            )
            raise JournalError(msg)

    def lookup(self, row: int) -> Entry | None:
        found = self._db.execute(
            "SELECT key, state, reason, email_limit_reached, warning "
            "FROM rows WHERE row = ?",
            (row,),
        ).fetchone()
        if found is None:
            return None
        key, state, reason, limit_reached, warning = found

        return Entry(row, key, state, reason, bool(limit_reached), warning)

    def note(
        self, row: int, key: str, state: str, reason: str | None = None
    ) -> None:
        """Record a state that a crash may lose, in the current batch."""
        if not self._in_batch:
            self._db.execute("BEGIN")
            self._in_batch = True
            self._batch_rows = 0
            self._batch_started = time.monotonic()
        self._write(row, key, state, reason)
        self._batch_rows += 1
        if (
            self._batch_rows >= _BATCH_ROWS
            or time.monotonic() - self._batch_started >= _BATCH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Commit the batched writes."""
        if self._in_batch:
            self._in_batch = False
            self._db.execute("COMMIT")

    def mark_sending(self, row: int, key: str) -> None:
        """Durably record that the row's request is about to go out."""

        def write() -> None:
            self._write(row, key, "sending", None, sent=True)

        self._durably(write)

    def finish(
        self,
        row: int,
        key: str,
        state: str,
        reason: str | None = None,
        *,
        email_limit_reached: bool = False,
        warning: str | None = None,
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

        self._durably(write)

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

        self._durably(write)

        return count

    def counts(self) -> dict[str, int]:
        """How many rows the journal holds in each state."""
        return {
            str(state): int(count)
            for state, count in self._db.execute(
                "SELECT state, count(*) FROM rows GROUP BY state"
            )
        }

    def _durably(self, write: Callable[[], object]) -> None:
        if not self._in_batch:
            self._db.execute("BEGIN IMMEDIATE")
        self._in_batch = False
        try:
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
