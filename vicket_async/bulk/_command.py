"""
The ``vicket import`` command: a survey, a confirmation, then the sends.

A run reads the input twice. The survey checks every row without sending
anything, which is all a dry run does, and counts the rows that would be
sent: that is how many emails the import causes, which the user confirms.
The second pass sends. Each pass has its own event loop, so that the
confirmation prompt is an ordinary blocking read that Ctrl-C interrupts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

import attrs

from .._client import VicketClient
from .._models import SupportPage
from .._protocol.budget import RateLimit
from ..exceptions import ConfigurationError, VicketError
from ._engine import RowOutcome, RowState, import_tickets
from ._errors import ImportHaltedError, InputFileError, JournalError
from ._journal import default_journal_path
from ._progress import Progress, duration
from ._report import ReportWriter, Tally, summary_lines
from ._rows import Format, RowFile, read_rows
from ._tickets import Resolver

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ClientFactory",
    "ImportCommand",
    "make_client",
    "resume_arguments",
    "run_import",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

#: Problems printed during a real run before pointing to the report.
_MAX_NOTES: Final = 50

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class ImportCommand:
    """Everything ``vicket import`` was asked to do."""

    path: Path
    format: Format | None = None
    encoding: str = "utf-8-sig"
    delimiter: str | None = None
    template: str | None = None
    column_map: Mapping[str, str] = attrs.field(factory=dict)
    api_key: str | None = None
    base_url: str | None = None
    dry_run: bool = False
    yes: bool = False
    journal: Path | None = None
    report: Path | None = None
    shard: tuple[int, int] | None = None
    resend_ambiguous: bool = False
    concurrency: int = 4
    rate_limit: RateLimit | None = None
    #: More keyword arguments for `VicketClient`, such as a shared
    #: ``budget_store``.
    client_options: Mapping[str, Any] = attrs.field(factory=dict)
    #: The command line to show for resuming, without the API key.
    resume: tuple[str, ...] = ()

    @property
    def journal_path(self) -> Path:
        return self.journal or default_journal_path(self.path, self.shard)


ClientFactory = Callable[[ImportCommand], VicketClient]


def make_client(command: ImportCommand) -> VicketClient:
    """
    The client the command sends with.

    This is the one place the command builds its client. Shards on several
    machines share one key's budget only through a shared budget store:
    pass it in ``client_options`` (``{"budget_store": ...}``), or pass
    another factory to `run_import`.
    """
    options = dict(command.client_options)
    if command.rate_limit is not None:
        limits = dict(options.get("rate_limits") or {})
        limits["create_ticket"] = command.rate_limit
        options["rate_limits"] = limits

    return VicketClient(
        api_key=command.api_key, base_url=command.base_url, **options
    )


@attrs.define
class _Console:
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    def out(self, text: str) -> None:
        self.stdout.write(f"{text}\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(f"{text}\n")
        self.stderr.flush()

    def error(self, text: str) -> None:
        self.err(f"vicket import: error: {text}")


@attrs.define
class _Survey:
    page: SupportPage
    limit: RateLimit | None
    tally: Tally

    @property
    def to_send(self) -> int:
        return self.tally.states[RowState.PENDING]


@attrs.frozen
class _Aborted:
    """The second Ctrl-C cut the run short."""


def run_import(
    command: ImportCommand,
    *,
    client_factory: ClientFactory = make_client,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``vicket import`` and return its exit status."""
    console = _Console(
        stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    )
    try:
        rows = read_rows(
            command.path,
            format=command.format,
            encoding=command.encoding,
            delimiter=command.delimiter,
        )
    except InputFileError as error:
        console.error(str(error))
        return EXIT_USAGE
    report = None
    if command.report is not None:
        try:
            report = ReportWriter(command.report)
        except OSError as error:
            reason = error.strerror or error
            console.error(
                f"cannot write the report {command.report}: {reason}"
            )
            return EXIT_USAGE
    try:
        return _run(command, rows, client_factory, console, report)
    except KeyboardInterrupt:
        # Where no signal handler could be installed, Ctrl-C lands here.
        console.err("Interrupted.")
        _say_resume(command, console)
        return EXIT_INTERRUPTED
    finally:
        if report is not None:
            report.close()


def _run(
    command: ImportCommand,
    rows: RowFile,
    client_factory: ClientFactory,
    console: _Console,
    report: ReportWriter | None,
) -> int:
    try:
        survey = _in_loop(
            lambda stop: _survey(
                command, rows, client_factory, console, report, stop
            ),
            console,
        )
    except (ConfigurationError, InputFileError, JournalError) as error:
        console.error(str(error))
        return EXIT_USAGE
    except VicketError as error:
        console.error(str(error))
        return EXIT_FAILED
    if isinstance(survey, _Aborted) or survey[1]:
        console.err("Interrupted; nothing was sent.")
        return EXIT_INTERRUPTED
    found = survey[0]
    if command.dry_run:
        return _dry_run_summary(command, found, console)
    refused = _confirm(command, found, console)
    if refused is not None:
        return refused
    try:
        sent = _in_loop(
            lambda stop: _send(
                command, rows, client_factory, console, report, found, stop
            ),
            console,
        )
    except (ConfigurationError, InputFileError, JournalError) as error:
        console.error(str(error))
        _say_resume(command, console)
        return EXIT_USAGE
    except VicketError as error:
        console.error(str(error))
        _say_resume(command, console)
        return EXIT_FAILED
    if isinstance(sent, _Aborted):
        console.err(
            "Aborted. Rows whose request was in flight will be reported as "
            "ambiguous by the next run."
        )
        _say_resume(command, console)
        return EXIT_INTERRUPTED
    (tally, halted), stopped = sent

    return _closing(command, tally, halted, stopped, console)


def _in_loop(
    work: Callable[[asyncio.Event], Awaitable[T]], console: _Console
) -> tuple[T, bool] | _Aborted:
    """
    Run ``work`` in a new event loop, with Ctrl-C and SIGTERM handled.

    The first signal sets the stop event ``work`` receives; the second
    cancels it. Returns its result and whether it was asked to stop.
    """

    async def main() -> tuple[T, bool] | _Aborted:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        presses = 0

        def on_signal() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                stop.set()
                console.err(
                    "\nStopping: no new tickets are sent; requests in flight "
                    "finish and are recorded. Press Ctrl-C again to abort at "
                    "once."
                )
            else:
                task.cancel()

        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal)
                installed.append(signum)
        try:
            result = await work(stop)
        except asyncio.CancelledError:
            if presses < 2:
                raise
            task.uncancel()
            return _Aborted()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

        return result, stop.is_set()

    return asyncio.run(main())


async def _survey(
    command: ImportCommand,
    rows: RowFile,
    client_factory: ClientFactory,
    console: _Console,
    report: ReportWriter | None,
    stop: asyncio.Event,
) -> _Survey:
    async with client_factory(command) as client:
        page = await client.init()
        resolver = Resolver(
            page,
            template=command.template,
            column_map=command.column_map,
            base_dir=command.path.parent,
        )
        _warn_columns(command, rows, resolver, console)
        status = (await client.budget_status()).get("create_ticket")
        survey = _Survey(
            page, None if status is None else status.limit, Tally()
        )
        async for outcome in import_tickets(
            rows,
            client=client,
            journal=command.journal_path,
            template=command.template,
            column_map=command.column_map,
            base_dir=command.path.parent,
            page=page,
            dry_run=True,
            concurrency=command.concurrency,
            shard=command.shard,
            resend_ambiguous=command.resend_ambiguous,
            stop=stop,
        ):
            survey.tally.add(outcome)
            if command.dry_run:
                if report is not None:
                    report.write(outcome)
                if outcome.reason and outcome.state is not RowState.PENDING:
                    console.out(_problem_line(outcome))

    return survey


def _warn_columns(
    command: ImportCommand,
    rows: RowFile,
    resolver: Resolver,
    console: _Console,
) -> None:
    if not rows.columns:
        return
    ignored = resolver.ignored_columns(rows.columns)
    if ignored:
        names = ", ".join(repr(name) for name in ignored)
        console.err(
            f"note: these columns match no question and are ignored: "
            f"{names} (use --map to use them)"
        )
    missing = [name for name in command.column_map if name not in rows.columns]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        console.err(
            f"note: --map names columns the file does not have: {names}"
        )


def _problem_line(outcome: RowOutcome) -> str:
    return f"row {outcome.row}: {outcome.state.value}: {outcome.reason}"


def _budget_text(limit: RateLimit | None, count: int) -> str:
    if limit is None:
        return "with no rate limit"
    # The first window's calls go out at once; each later window's wait.
    seconds = (count - 1) // limit.calls * limit.window
    pace = f"at up to {limit.calls} per {limit.period:g} s"
    if seconds < 1:
        return f"{pace}, right away"

    return f"{pace}, in about {duration(seconds)}"


def _dry_run_summary(
    command: ImportCommand, survey: _Survey, console: _Console
) -> int:
    tally = survey.tally
    console.out(f"Dry run of {command.path}: nothing was sent.")
    for line in summary_lines(tally, dry_run=True):
        console.out(line)
    if survey.to_send:
        console.out(
            f"A real run would send {survey.to_send} tickets "
            f"{_budget_text(survey.limit, survey.to_send)}."
        )

    return EXIT_OK if tally.clean else EXIT_FAILED


def _confirm(
    command: ImportCommand, survey: _Survey, console: _Console
) -> int | None:
    """None to go ahead, else the exit status of a refusal."""
    count = survey.to_send
    if count == 0 or command.yes:
        return None
    what = (
        f"This import creates {count} tickets, and Vicket emails each "
        f"reporter a link: {count} emails will go out."
    )
    skipped = survey.tally.states[RowState.SKIPPED]
    if skipped:
        what += f" {skipped} invalid rows will be skipped (see --dry-run)."
    if not console.stdin.isatty():
        console.error(
            f"{what} Refusing to go on without confirmation, as input is "
            f"not a terminal: add --yes to confirm (or --dry-run to check "
            f"the rows first)."
        )
        return EXIT_USAGE
    console.stderr.write(f"{what}\nContinue? [y/N] ")
    console.stderr.flush()
    answer = console.stdin.readline()
    if answer.strip().casefold() in ("y", "yes"):
        return None
    console.err("Nothing was sent.")

    return EXIT_USAGE


async def _send(
    command: ImportCommand,
    rows: RowFile,
    client_factory: ClientFactory,
    console: _Console,
    report: ReportWriter | None,
    survey: _Survey,
    stop: asyncio.Event,
) -> tuple[Tally, str | None]:
    tally = Tally()
    progress = Progress(
        console.stderr, to_send=survey.to_send, limit=survey.limit
    )
    if survey.to_send:
        console.err(
            f"Sending {survey.to_send} tickets "
            f"{_budget_text(survey.limit, survey.to_send)}. Ctrl-C stops "
            f"cleanly; the same command resumes."
        )
    notes = 0
    halted = None
    # A run lasts hours. A full collection walks every object the libraries
    # loaded, and the pause delays the requests due then; each budget slot
    # carries that delay into every later window. Frozen objects are not
    # walked again.
    gc.freeze()
    ticker = asyncio.create_task(_tick(progress))
    warnings = _ProgressLog(progress)
    logger = logging.getLogger("vicket_async")
    logger.addHandler(warnings)
    try:
        async with client_factory(command) as client:
            async for outcome in import_tickets(
                rows,
                client=client,
                journal=command.journal_path,
                template=command.template,
                column_map=command.column_map,
                base_dir=command.path.parent,
                page=survey.page,
                concurrency=command.concurrency,
                shard=command.shard,
                resend_ambiguous=command.resend_ambiguous,
                stop=stop,
            ):
                tally.add(outcome)
                progress.add(outcome)
                if report is not None:
                    report.write(outcome)
                if outcome.reason and outcome.state is not RowState.DONE:
                    notes += 1
                    if notes <= _MAX_NOTES:
                        progress.note(_problem_line(outcome))
                    elif notes == _MAX_NOTES + 1:
                        progress.note("(further problems are in the report)")
    except ImportHaltedError as error:
        halted = str(error)
    finally:
        gc.unfreeze()
        logger.removeHandler(warnings)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        progress.finish()

    return tally, halted


class _ProgressLog(logging.Handler):
    """Shows the client's warnings (a 429, say) above the progress line."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.WARNING)
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self._progress.note(f"warning: {record.getMessage()}")


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(0.5)
        progress.tick()


def _closing(
    command: ImportCommand,
    tally: Tally,
    halted: str | None,
    stopped: bool,
    console: _Console,
) -> int:
    console.out(f"Import of {command.path}:")
    for line in summary_lines(tally, dry_run=False):
        console.out(line)
    if halted is not None:
        console.err(f"The import stopped itself: {halted}")
        _say_resume(command, console)
        return EXIT_FAILED
    if stopped:
        console.err(
            "Stopped: the requests in flight finished and are recorded in "
            f"the journal {command.journal_path}."
        )
        _say_resume(command, console)
        return EXIT_INTERRUPTED
    failed = tally.states[RowState.FAILED]
    if failed:
        console.err(
            f"{failed} rows failed without creating a ticket; running the "
            f"same command again retries them:"
        )
        console.err(f"  {_resume_line(command)}")
    ambiguous = tally.states[RowState.AMBIGUOUS]
    if ambiguous:
        console.err(
            f"{ambiguous} rows may or may not have created a ticket (their "
            f"request was cut off). Look for them in Vicket by reporter "
            f"and title; if they are missing, run the command again with "
            f"--resend-ambiguous (it sends all of them again)."
        )

    return EXIT_OK if tally.clean else EXIT_FAILED


def _resume_line(command: ImportCommand) -> str:
    return shlex.join(command.resume) if command.resume else "the same command"


def _say_resume(command: ImportCommand, console: _Console) -> None:
    console.err("To resume, run (from the same directory):")
    console.err(f"  {_resume_line(command)}")
    if command.api_key:
        console.err("with the API key in VICKET_API_KEY or --api-key.")


def resume_arguments(argv: Sequence[str]) -> tuple[str, ...]:
    """
    The ``vicket`` command line for resuming, from the arguments given.

    The API key is left out (it must not end up in a terminal's history or
    a log), and so is ``--dry-run``.
    """
    kept: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
            continue
        if argument == "--api-key":
            skip = True
            continue
        if argument.startswith("--api-key=") or argument == "--dry-run":
            continue
        kept.append(argument)

    return ("vicket", *kept)
