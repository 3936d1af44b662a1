"""
The import engine: rows in, tickets out, every step in the journal.

Each row is looked up in the journal and checked against its template
without I/O; a row to send then waits in line for a dispatcher, which
commits it as ``sending`` only as the client's ``create_ticket`` budget is
about to have room, and starts its request the moment it has. Committing
so late keeps the window in which a crash leaves a row ambiguous down to
the request itself, rather than the minutes a row can spend in line under
a 10-per-minute limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import os
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Iterable,
    Mapping,
)
from pathlib import Path
from typing import Any, Final, TypeAlias

import aiohttp
import attrs

from .._client import Response, VicketClient
from .._models import SupportPage, TicketCreated
from ..exceptions import (
    AnswerValidationError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    TransportError,
    UnexpectedResponseError,
    UnsafeRedirectError,
    UploadError,
    VicketError,
)
from ._errors import ImportHaltedError
from ._journal import IN_FLIGHT_REASON, Entry, Journal, JournalThread
from ._rows import Row, RowFile
from ._tickets import Draft, Resolver, content_key

__all__ = ["RowOutcome", "RowState", "Rows", "import_tickets"]

_Item: TypeAlias = "Row | Mapping[str, Any]"
Rows: TypeAlias = "Iterable[_Item] | AsyncIterable[_Item]"

#: After this many rows in a row end in a transport or server failure, the
#: import stops: the server is down, and going on only fills the journal
#: with failures (or worse, ambiguous rows).
MAX_FAILURE_STREAK: Final = 10
#: How early, in seconds, a row may be committed as sending before its
#: budget slot frees: twice the recent commit time, within these bounds.
#: A crash in that moment leaves an unsent row ambiguous, so it stays short.
_MIN_LEAD: Final = 0.01
_MAX_LEAD: Final = 0.25
#: Statuses that say the server did not process the request.
_NOT_PROCESSED: Final = frozenset({429, 503})

_CHANGED_ADVICE: Final = (
    "it is not sent again. Rows are matched by their number, so adding or "
    "removing rows above it also shows up as a change: add new rows at the "
    "end of the file, or put them in a new file (with its own journal)"
)


class RowState(enum.StrEnum):
    """
    Where a row stands.

    The journal holds ``pending`` (checked, not sent yet), ``sending``
    (its request may be in flight), ``done``, ``failed`` (certainly not
    created; retried by the next run), ``skipped`` (invalid; checked again
    by the next run) and ``ambiguous`` (may or may not have been created;
    never sent again unless asked). ``changed`` appears only in outcomes:
    the row was sent before, with other content.
    """

    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    AMBIGUOUS = "ambiguous"
    CHANGED = "changed"


@attrs.frozen(kw_only=True)
class RowOutcome:
    """
    What became of one row.

    ``key`` is the hash of the row's content that the journal keeps.
    ``earlier`` is true when the state comes from an earlier run and
    nothing was done now. ``email_limit_reached`` and ``warning`` are what
    the server said when it created the ticket. In a dry run, ``pending``
    means the row would be sent.
    """

    row: int
    state: RowState
    key: str
    reason: str | None = None
    email_limit_reached: bool = False
    warning: str | None = None
    email: str | None = None
    title: str | None = None
    earlier: bool = False


_Call: TypeAlias = "asyncio.Future[Response[TicketCreated]]"


@attrs.frozen
class _Job:
    """A checked row on its way to the server."""

    row: int
    key: str
    draft: Draft


#: A row in line, and where the dispatcher puts its request (None: stop).
_Waiting: TypeAlias = "tuple[_Job, asyncio.Future[_Call | None]]"


async def import_tickets(
    rows: Rows,
    *,
    client: VicketClient,
    journal: str | os.PathLike[str] | None,
    template: str | None = None,
    column_map: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    page: SupportPage | None = None,
    dry_run: bool = False,
    concurrency: int = 4,
    shard: tuple[int, int] | None = None,
    resend_ambiguous: bool = False,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[RowOutcome]:
    """
    Create a ticket for each row, yielding each row's `RowOutcome`.

    Outcomes come as rows complete, not in row order. Running the same
    import again with the same journal resumes it: rows already done are
    not sent again, failed rows are retried, and rows that may have reached
    the server are reported ``ambiguous`` and left alone unless
    ``resend_ambiguous`` is true.

    Args:
        rows: `Row` objects (as `read_rows` yields them) or mappings of
            column name to value, numbered from 1 in order; sync or async.
        client: the client to send with; its ``create_ticket`` budget sets
            the pace.
        journal: the journal file, created when missing. Required unless
            ``dry_run``.
        template: the template (id or exact name) for rows naming none.
        column_map: column name to ``email``, ``title``, ``template``, a
            question id or label, or ``""`` to ignore the column.
        base_dir: where relative paths of FILE answers start; defaults to
            the input file's folder when ``rows`` comes from `read_rows`.
        page: the support page, if already loaded; else ``init`` is called.
        dry_run: check every row and send nothing; the journal, if it
            exists, is read but not written.
        concurrency: requests in flight at most.
        shard: ``(i, n)`` to take only rows whose number modulo ``n`` is
            ``i - 1``.
        resend_ambiguous: send rows that may have been created already.
        stop: set it to stop cleanly: no new sends, requests in flight
            finish and are journaled, then the iteration ends.

    Raises:
        ConfigurationError: bad arguments, or a template or column map
            target that matches nothing.
        JournalError: the journal is in use or belongs to another import.
        InputFileError: the input cannot be read any further.
        ImportHaltedError: the import stopped itself (refused API key, server
            failing); raised after the outcomes of the rows in flight.
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        msg = f"concurrency must be 1 or more, not {concurrency!r}"
        raise ConfigurationError(msg)
    if shard is not None:
        check_shard(shard)
    if journal is None and not dry_run:
        msg = "a real import needs a journal, to resume without duplicates"
        raise ConfigurationError(msg)
    if base_dir is None and isinstance(rows, RowFile):
        base_dir = rows.path.parent
    if page is None:
        page = await client.init()
    resolver = Resolver(
        page, template=template, column_map=column_map, base_dir=base_dir
    )
    book = _open_journal(journal, readonly=dry_run)
    try:
        if book is not None:
            await book.claim("origin", client.base_url, "the API at")
            where = "all" if shard is None else f"{shard[0]}/{shard[1]}"
            await book.claim("shard", where, "shard")
            if not dry_run:
                await book.recover_in_flight()
        run = _Run(
            client=client,
            journal=book,
            resolver=resolver,
            dry_run=dry_run,
            concurrency=concurrency,
            shard=shard,
            resend_ambiguous=resend_ambiguous,
        )
        async with (
            run.watching(stop),
            contextlib.aclosing(run.outcomes(rows)) as outcomes,
        ):
            async for outcome in outcomes:
                yield outcome
    finally:
        if book is not None:
            await book.aclose()


def check_shard(shard: tuple[int, int]) -> None:
    """Raise `ConfigurationError` unless ``shard`` is ``(i, n)``, 1<=i<=n."""
    index, count = shard
    if not 1 <= index <= count:
        msg = f"shard {index}/{count}: the index must be 1 to {count}"
        raise ConfigurationError(msg)


def _open_journal(
    path: str | os.PathLike[str] | None, *, readonly: bool
) -> JournalThread | None:
    if path is None:
        return None
    if readonly and not Path(path).exists():
        return None

    return JournalThread(Journal(path, readonly=readonly))


async def _each(rows: Rows) -> AsyncIterator[Row]:
    number = 0
    if isinstance(rows, AsyncIterable):
        async for item in rows:
            number += 1
            yield item if isinstance(item, Row) else Row(number, item)
    else:
        for item in rows:
            number += 1
            yield item if isinstance(item, Row) else Row(number, item)


class _Run:
    """One pass over the rows."""

    def __init__(
        self,
        *,
        client: VicketClient,
        journal: JournalThread | None,
        resolver: Resolver,
        dry_run: bool,
        concurrency: int,
        shard: tuple[int, int] | None,
        resend_ambiguous: bool,
    ) -> None:
        self._client = client
        self._journal = journal
        self._resolver = resolver
        self._dry_run = dry_run
        self._concurrency = concurrency
        self._shard = shard
        self._resend = resend_ambiguous
        self._waiting: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._halted: str | None = None
        self._streak = 0
        self._commit_seconds = _MIN_LEAD / 2

    @contextlib.asynccontextmanager
    async def watching(
        self, stop: asyncio.Event | None
    ) -> AsyncIterator[None]:
        """Pass the caller's stop event on to this run while it lasts."""
        if stop is None:
            yield
            return
        if stop.is_set():
            self._stop.set()
        watcher = asyncio.create_task(self._watch(stop))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stop.set()

    async def outcomes(self, rows: Rows) -> AsyncGenerator[RowOutcome]:
        inflight: set[asyncio.Task[RowOutcome | None]] = set()
        dispatcher = None
        if not self._dry_run:
            dispatcher = asyncio.create_task(self._dispatch())
        try:
            seen = 0
            last = 0
            async for row in _each(rows):
                if self._stop.is_set():
                    break
                if row.number <= last:
                    # The journal reads ahead in row order, and a number
                    # seen twice could send its row twice.
                    msg = (
                        f"row numbers must increase: row {row.number} came "
                        f"after row {last}"
                    )
                    raise ConfigurationError(msg)
                last = row.number
                if self._shard is not None:
                    index, count = self._shard
                    if row.number % count != index - 1:
                        continue
                seen += 1
                if seen % 500 == 0:
                    # Checking rows never waits; let signals and timers in.
                    await asyncio.sleep(0)
                outcome, job = await self._plan(row)
                if outcome is not None:
                    yield outcome
                    continue
                assert job is not None
                while len(inflight) >= self._concurrency:
                    for found in await _first(inflight):
                        yield found
                if self._stop.is_set():
                    break
                inflight.add(asyncio.create_task(self._send(job)))
                for found in _finished(inflight):
                    yield found
            while inflight:
                for found in await _first(inflight):
                    yield found
        except GeneratorExit:
            # The caller stopped reading: send nothing new, but let the
            # requests in flight finish, so that their rows are journaled.
            self._stop.set()
            await asyncio.gather(*inflight, return_exceptions=True)
            raise
        except BaseException:
            # Cancelled (or failing): requests in flight are cut off, and
            # their rows stay "sending", to be reported ambiguous later.
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)
            raise
        finally:
            if dispatcher is not None:
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher
        if self._halted is not None:
            raise ImportHaltedError(self._halted)

    async def _plan(self, row: Row) -> tuple[RowOutcome | None, _Job | None]:
        """A row's outcome when it is not to be sent now, else its job."""
        if row.problem is not None:
            key = _problem_key(row.problem)
        else:
            key = content_key(row.fields)
        entry = None
        if self._journal is not None:
            entry = await self._journal.lookup(row.number)
        if entry is not None:
            kept = self._kept(row, key, entry)
            if kept is not None:
                return self._identified(row, kept), None
        if row.problem is not None:
            problems: tuple[str, ...] = (row.problem,)
            email = title = None
            draft = None
        else:
            resolved = self._resolver.resolve(row.fields)
            problems = resolved.problems
            email, title, draft = (
                resolved.email,
                resolved.title,
                resolved.draft,
            )
        if draft is None:
            reason = "; ".join(problems)
            if self._journal is not None and not self._dry_run:
                await self._journal.note(row.number, key, "skipped", reason)
            outcome = RowOutcome(
                row=row.number,
                state=RowState.SKIPPED,
                key=key,
                reason=reason,
                email=email,
                title=title,
            )
            return outcome, None
        if self._dry_run:
            outcome = RowOutcome(
                row=row.number,
                state=RowState.PENDING,
                key=key,
                reason=_retry_note(entry),
                email=email,
                title=title,
            )
            return outcome, None
        if self._journal is not None:
            await self._journal.note(row.number, key, "pending")

        return None, _Job(row.number, key, draft)

    def _identified(self, row: Row, outcome: RowOutcome) -> RowOutcome:
        """The outcome with the row's reporter and title, for the report."""
        if row.problem is not None:
            return outcome
        email, title = self._resolver.identify(row.fields)

        return attrs.evolve(outcome, email=email or None, title=title or None)

    def _kept(self, row: Row, key: str, entry: Entry) -> RowOutcome | None:
        """The outcome of a row an earlier run settled, if it stays so."""
        state = entry.state
        if state not in ("done", "sending", "ambiguous"):
            return None
        if entry.key != key:
            if state == "done":
                reason = (
                    f"the row changed since it was sent; {_CHANGED_ADVICE}"
                )
            else:
                reason = (
                    f"the row changed since an earlier run tried to send it "
                    f"(that request may have created a ticket); "
                    f"{_CHANGED_ADVICE}"
                )
            return RowOutcome(
                row=row.number,
                state=RowState.CHANGED,
                key=key,
                reason=reason,
                earlier=True,
            )
        if state == "done":
            return RowOutcome(
                row=row.number,
                state=RowState.DONE,
                key=key,
                email_limit_reached=entry.email_limit_reached,
                warning=entry.warning,
                earlier=True,
            )
        if self._resend:
            return None

        return RowOutcome(
            row=row.number,
            state=RowState.AMBIGUOUS,
            key=key,
            reason=(
                entry.reason
                if state == "ambiguous" and entry.reason
                else IN_FLIGHT_REASON
            ),
            earlier=True,
        )

    async def _send(self, job: _Job) -> RowOutcome | None:
        """Send one row; None when the run stopped before it went out."""
        journal = self._journal
        assert journal is not None
        draft = job.draft
        ticket: asyncio.Future[_Call | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((job, ticket))
        self._wake.set()
        try:
            call = await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                launched = ticket.result()
                if launched is not None:
                    launched.cancel()
            raise
        if call is None:
            return None
        try:
            response = await call
        except VicketError as error:
            state, reason, warning = _judge(error)
            self._note_failure(error, state)
            await journal.finish(
                job.row, job.key, state, reason, warning=warning
            )
            return RowOutcome(
                row=job.row,
                state=RowState(state),
                key=job.key,
                reason=reason,
                warning=warning,
                email=draft.email,
                title=draft.title,
            )
        self._streak = 0
        created = response.data
        await journal.finish(
            job.row,
            job.key,
            "done",
            email_limit_reached=created.email_limit_reached,
            warning=created.warning,
        )

        return RowOutcome(
            row=job.row,
            state=RowState.DONE,
            key=job.key,
            email_limit_reached=created.email_limit_reached,
            warning=created.warning,
            email=draft.email,
            title=draft.title,
        )

    async def _dispatch(self) -> None:
        """
        Hand rows to the server as the budget frees, committed beforehand.

        Rows wait here in order. The commit of ``sending`` starts just
        before the next budget slot frees (about twice the time recent
        commits took), so that it overlaps the wait rather than delaying
        the request; rows for slots that are free together are committed
        together. A crash in that moment leaves rows that never went out
        ambiguous, which is why the lead stays short.
        """
        journal = self._journal
        assert journal is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                lead = min(_MAX_LEAD, max(_MIN_LEAD, 2 * self._commit_seconds))
                if not await self._budget_ready(lead=lead):
                    for _, ticket in self._waiting:
                        if not ticket.done():
                            ticket.set_result(None)
                    self._waiting.clear()
                    break
                batch = self._take_batch(await self._free_slots())
                if not batch:
                    continue
                started = loop.time()
                await journal.mark_sending(
                    [(job.row, job.key) for job, _ in batch]
                )
                took = loop.time() - started
                self._commit_seconds += (took - self._commit_seconds) / 4
                for job, ticket in batch:
                    # Committed as sending: it goes out now, stop or not.
                    await self._until_free()
                    call = asyncio.ensure_future(self._create(job.draft))
                    if ticket.cancelled():
                        call.cancel()
                        continue
                    ticket.set_result(call)
                    # One turn of the loop lets the call take its slot
                    # before the next row looks at the budget.
                    await asyncio.sleep(0)

    def _take_batch(self, free: int) -> list[_Waiting]:
        batch: list[_Waiting] = []
        while self._waiting and len(batch) < max(1, free):
            job, ticket = self._waiting.popleft()
            if not ticket.done():
                batch.append((job, ticket))

        return batch

    def _create(
        self, draft: Draft
    ) -> Coroutine[Any, Any, Response[TicketCreated]]:
        return self._client.with_response.create_ticket(
            email=draft.email,
            title=draft.title,
            template=draft.template,
            answers=draft.answers,
        )

    async def _budget_ready(self, *, lead: float = 0.0) -> bool:
        """
        Wait until a ticket may go out within ``lead`` seconds.

        Returns False, at once, when the run is told to stop.
        """
        while not self._stop.is_set():
            wait = await self._budget_wait()
            if wait <= lead:
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait - lead):
                    await self._stop.wait()

        return False

    async def _until_free(self) -> None:
        """Wait for the next budget slot, whatever the stop event says."""
        # The slot frees on the clock: there is no event to wait for.
        while (wait := await self._budget_wait()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)

    async def _budget_wait(self) -> float:
        status = (await self._client.budget_status()).get("create_ticket")

        return 0.0 if status is None else status.next_free_in

    async def _free_slots(self) -> int:
        """How many tickets may go out at once right now."""
        status = (await self._client.budget_status()).get("create_ticket")
        if status is None:
            return len(self._waiting)
        if status.next_free_in > 0:
            return 0

        return status.remaining

    def _note_failure(self, error: VicketError, state: str) -> None:
        if isinstance(error, AuthenticationError):
            self._halt(f"the API key was refused ({error})")
            return
        status = _status(error)
        refused = isinstance(error, APIError | UnexpectedResponseError) and (
            status is None or status in _NOT_PROCESSED or status >= 500
        )
        if (
            state == "ambiguous"
            or refused
            or isinstance(error, TransportError)
        ):
            self._streak += 1
        else:
            self._streak = 0
        if self._streak >= MAX_FAILURE_STREAK:
            self._halt(
                f"{self._streak} rows in a row could not be sent; the last "
                f"error: {error}"
            )

    def _halt(self, reason: str) -> None:
        if self._halted is None:
            self._halted = reason
        self._stop.set()


def _status(error: VicketError) -> int | None:
    if isinstance(error, APIError | UnexpectedResponseError):
        return error.status
    return None


async def _first(
    tasks: set[asyncio.Task[RowOutcome | None]],
) -> list[RowOutcome]:
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)

    return _finished(tasks)


def _finished(tasks: set[asyncio.Task[RowOutcome | None]]) -> list[RowOutcome]:
    done = [task for task in tasks if task.done()]
    found = []
    for task in done:
        tasks.discard(task)
        outcome = task.result()
        if outcome is not None:
            found.append(outcome)

    return found


def _problem_key(problem: str) -> str:
    return hashlib.sha256(problem.encode()).hexdigest()[:32]


def _retry_note(entry: Entry | None) -> str | None:
    if entry is None:
        return None
    if entry.state == "failed":
        return f"failed before, sent again: {entry.reason}"
    if entry.state in ("ambiguous", "sending"):
        return "may have been created before; sent again as asked"

    return None


def _never_sent(error: BaseException) -> bool:
    """Whether the request certainly never left this machine."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(
            cause,
            aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError,
        ):
            return True
        cause = cause.__cause__

    return False


def _judge(error: VicketError) -> tuple[str, str | None, str | None]:
    """The journal state, reason and warning for a failed request."""
    if isinstance(error, AnswerValidationError):
        return "skipped", str(error), None
    if isinstance(error, APIError):
        status = error.status
        if status is None or status in _NOT_PROCESSED or status < 500:
            return "failed", str(error), None
        return "ambiguous", f"{error}; it may have created the ticket", None
    if isinstance(error, UnexpectedResponseError):
        if 200 <= error.status < 300:
            warning = f"created, but the answer could not be read: {error}"
            return "done", None, warning
        if error.status < 500:
            return "failed", str(error), None
        return "ambiguous", f"{error}; it may have created the ticket", None
    if isinstance(error, UnsafeRedirectError | UploadError):
        return "failed", str(error), None
    if isinstance(error, TransportError) and _never_sent(error):
        return "failed", f"{error}; nothing was sent", None

    return "ambiguous", f"{error}; it may have created the ticket", None
