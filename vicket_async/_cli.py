"""The ``vicket`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from ._protocol.budget import RateLimit
from ._version import __version__

_IMPORT_DESCRIPTION = """\
Create one ticket per row of a CSV file (with a header row) or a JSON Lines
file, at the pace the create_ticket rate limit allows (10 a minute by
default), recording every row in a journal so that the same command resumes
an interrupted import without sending any row twice.

Each row gives the reporter's email, the title, the template (a column, or
--template for the whole file; by id or exact name) and the answers. Which
column feeds what, first match wins:
  1. --map "Column=target", where target is email, title, template, a
     question id or a question's exact label (an empty target ignores the
     column);
  2. a column named email, title or template (in any case);
  3. a column named exactly as a question id of the row's template;
  4. a column named exactly as a question label of the row's template.
Other columns are ignored, with a note. Values: SELECT takes an option's
value or label (in any case), CHECKBOX yes/no, true/false, 1/0 or x, DATE
YYYY-MM-DD (a timestamp's date is taken), FILE a path relative to the
input file.

Every row is checked against its template before any budget is spent on
it; invalid rows are reported with their row number and skipped. Creating a
ticket emails its reporter, so a real run says how many emails it causes and
asks first (or needs --yes).
"""

_IMPORT_EPILOG = """\
examples:
  check a file without sending anything:
    vicket import tickets.csv --template "Bug Report" --dry-run
  map columns named otherwise; send without asking:
    vicket import export.csv --map "Reporter=email" --map "Subject=title" \\
        --map "Browser used=q_browser" --template tpl_bug --yes
  JSON Lines with a template per row, against another site:
    vicket import tickets.jsonl --api-key vk_live_... \\
        --base-url https://api.vicket.app
  a semicolon-separated file in a Windows encoding, named .txt:
    vicket import export.txt --format csv --delimiter ";" --encoding cp1252
  keep the journal elsewhere and write every row's outcome:
    vicket import tickets.csv --journal /var/lib/import.sqlite \\
        --report outcome.jsonl
  split the work over two machines sharing the budget in Redis:
    vicket import tickets.csv --shard 1/2 --redis-url redis://cache:6379
    vicket import tickets.csv --shard 2/2 --redis-url redis://cache:6379
  the same without Redis (each gets half of the budget):
    vicket import tickets.csv --shard 1/2 --rate-limit 5/60
    vicket import tickets.csv --shard 2/2 --rate-limit 5/60
  after checking in Vicket that the ambiguous rows are missing:
    vicket import tickets.csv --resend-ambiguous
  a sandbox running 60 times faster than real time:
    vicket import tickets.csv --base-url http://127.0.0.1:8080 \\
        --rate-limit 10/1 --concurrency 8

resuming:
  Run the same command again. Rows done are never sent again; failed rows
  (certainly not created: refused by the server, or never sent) are retried;
  rows whose request was cut off (a crash, a timeout, a 502) may or may not
  have created a ticket: they are reported as ambiguous and left alone
  unless --resend-ambiguous. A row whose content changed since it was sent
  is reported and not sent again. Ctrl-C stops cleanly (requests in flight
  finish and are recorded) and prints the command that resumes; a second
  Ctrl-C aborts at once.
  The journal knows rows by number: row 1 is the first record after the CSV
  header (blank lines count), or line 1 of a JSON Lines file. Add new rows
  at the end of the file, or put them in a new file.

shards and rate limits:
  Each shard keeps its own journal. The rate budget belongs to the API key:
  with --redis-url (or $VICKET_REDIS_URL) every worker, on any machine,
  spends one budget kept in Redis; without it each process keeps its own,
  so give each worker its share with --rate-limit (5/60 each for two).

exit status:
  0 every row done (a dry run: every row valid); 1 some rows invalid,
  failed, ambiguous or changed, or the import failed; 2 usage error (bad
  arguments, unreadable file, no confirmation); 130 interrupted.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicket",
        description="Tools for the Vicket public support API.",
    )
    parser.add_argument(
        "--version", action="version", version=f"vicket-async {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="walk through every endpoint against a local sandbox",
        description=(
            "Start a sandbox server in this process and call every "
            "endpoint against it, printing what each returns."
        ),
    )
    _add_import(commands)

    return parser


def _add_import(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    command = commands.add_parser(
        "import",
        help="create tickets from a CSV or JSON Lines file, resumably",
        description=_IMPORT_DESCRIPTION,
        epilog=_IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="the CSV (.csv, .tsv) or JSON Lines (.jsonl, .ndjson) file",
    )
    read = command.add_argument_group("reading the file")
    read.add_argument(
        "--format",
        choices=("csv", "tsv", "jsonl"),
        help="the file's format, when its extension does not say",
    )
    read.add_argument(
        "--encoding",
        default="utf-8-sig",
        help="the file's text encoding (default: UTF-8, with or without BOM)",
    )
    read.add_argument(
        "--delimiter",
        help='the CSV separator (default: "," for CSV, tab for TSV)',
    )
    read.add_argument(
        "--template",
        metavar="TEMPLATE",
        help="template id or exact name for rows that name none",
    )
    read.add_argument(
        "--map",
        dest="column_map",
        metavar="COLUMN=TARGET",
        action="append",
        type=_mapping,
        default=[],
        help=(
            "feed a column to email, title, template, a question id or a "
            "question label; repeatable"
        ),
    )
    api = command.add_argument_group("the API")
    api.add_argument(
        "--api-key", help="the website's API key (default: $VICKET_API_KEY)"
    )
    api.add_argument(
        "--base-url",
        help=(
            "the API origin (default: $VICKET_BASE_URL, then "
            "https://api.vicket.app)"
        ),
    )
    api.add_argument(
        "--redis-url",
        metavar="URL",
        help=(
            "keep the rate budget in this Redis server, shared by every "
            "worker and shard of the key (default: $VICKET_REDIS_URL)"
        ),
    )
    api.add_argument(
        "--rate-limit",
        metavar="CALLS/SECONDS",
        type=_rate_limit,
        help="the create_ticket budget to keep to (default: 10/60)",
    )
    api.add_argument(
        "--concurrency",
        type=_positive,
        default=4,
        help=(
            "requests in flight at most (default: 4; the rate budget sets "
            "the pace)"
        ),
    )
    run = command.add_argument_group("the run")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check every row and report every problem; send nothing",
    )
    run.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before sending (needed when input is not a terminal)",
    )
    run.add_argument(
        "--journal",
        type=Path,
        metavar="PATH",
        help="the journal (default: FILE.vicket-journal.sqlite beside FILE)",
    )
    run.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="write each row's outcome to PATH as JSON Lines",
    )
    run.add_argument(
        "--shard",
        metavar="I/N",
        type=_shard,
        help="take only rows whose number %% N is I-1, with its own journal",
    )
    run.add_argument(
        "--resend-ambiguous",
        action="store_true",
        help="send again the rows that may or may not have been created",
    )


def _mapping(text: str) -> tuple[str, str]:
    column, equals, target = text.partition("=")
    if not equals or not column.strip():
        msg = f"{text!r} is not COLUMN=TARGET (for example 'Subject=title')"
        raise argparse.ArgumentTypeError(msg)

    return column.strip(), target.strip()


def _fraction(text: str, what: str) -> tuple[str, str]:
    left, slash, right = text.partition("/")
    if not slash:
        msg = f"{text!r} is not {what}"
        raise argparse.ArgumentTypeError(msg)

    return left.strip(), right.strip()


def _shard(text: str) -> tuple[int, int]:
    index, count = _fraction(text, "I/N (for example 1/2)")
    try:
        shard = int(index), int(count)
    except ValueError:
        msg = f"{text!r} is not I/N (for example 1/2)"
        raise argparse.ArgumentTypeError(msg) from None
    if not 1 <= shard[0] <= shard[1]:
        msg = f"{text!r}: I must be from 1 to N"
        raise argparse.ArgumentTypeError(msg)

    return shard


def _rate_limit(text: str) -> RateLimit:
    calls, seconds = _fraction(text, "CALLS/SECONDS (for example 10/60)")
    try:
        return RateLimit(int(calls), float(seconds))
    except (TypeError, ValueError):
        msg = f"{text!r} is not CALLS/SECONDS, both above 0 (like 10/60)"
        raise argparse.ArgumentTypeError(msg) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"{text!r} is not a whole number of 1 or more"
        raise argparse.ArgumentTypeError(msg)

    return value


def _run_import(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .bulk._command import ImportCommand, resume_arguments, run_import

    command = ImportCommand(
        path=args.file,
        format=args.format,
        encoding=args.encoding,
        delimiter=args.delimiter,
        template=args.template,
        column_map=dict(args.column_map),
        api_key=args.api_key,
        base_url=args.base_url,
        dry_run=args.dry_run,
        yes=args.yes,
        journal=args.journal,
        report=args.report,
        shard=args.shard,
        resend_ambiguous=args.resend_ambiguous,
        concurrency=args.concurrency,
        rate_limit=args.rate_limit,
        resume=resume_arguments(argv),
        client_options={"redis_url": args.redis_url} if args.redis_url else {},
    )

    return run_import(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vicket`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:
        # argparse exits on --help and on usage errors; hand back the
        # status instead, so that callers of main() get it like any other.
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command == "demo":
        from ._demo import run_demo

        asyncio.run(run_demo())
        return 0
    if args.command == "import":
        return _run_import(args, arguments)
    parser.print_help(sys.stderr)

    return 2
