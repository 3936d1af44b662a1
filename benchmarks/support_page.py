"""
The example support page under load: cached reads, and a large upload.

Three processes: the sandbox (``python -m vicket_async.sandbox``), the
example app with its proxy (``examples/support_page.py``) and this one,
which plays the visitors. The figures:

- page loads: many visitors open the support page at once; the app renders
  each page from ``init``, and the sandbox counts how many ``init`` requests
  reached it. With the cache, that is one per time to live.
- a cached ``init``: the latency of ``client.init()`` in this process once
  the answer is cached.
- a large upload: a ticket with one file streamed through the proxy; the
  proxy's memory is the high water mark (VmHWM) of the app's process,
  reset just before the upload, against its resident size before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

from vicket_async import VicketClient

from ._common import (
    ROOT,
    Column,
    Report,
    child_command,
    child_env,
    format_duration,
    median,
    percentile,
    sized,
)

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = "support page: upstream init calls, cached init, proxy memory"

MIB = 1024 * 1024
BOUNDARY = "benchSupportPage0b4d"
#: The proxy may hold at most this much more while it streams an upload.
MEMORY_TARGET_MIB = 64
#: Seconds a child process may take to print its address.
START_TIMEOUT = 60.0
TTL = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--page-loads",
        type=int,
        help="concurrent page loads (1000 / quick 50)",
    )
    parser.add_argument(
        "--init-calls",
        type=int,
        help="cached init calls timed, in process (20000 / quick 200)",
    )
    parser.add_argument(
        "--upload-mib",
        type=int,
        help="size of the uploaded file in MiB (500 / quick 8)",
    )


def run(args: argparse.Namespace) -> Report:
    quick = args.quick
    params = {
        "page_loads": sized(
            args.page_loads, full=1000, quick=50, is_quick=quick
        ),
        "init_calls": sized(
            args.init_calls, full=20_000, quick=200, is_quick=quick
        ),
        "upload_mib": sized(
            args.upload_mib, full=500, quick=8, is_quick=quick
        ),
        "ttl_s": TTL,
    }
    with _sandbox() as (base_url, api_key):
        limit = params["upload_mib"] + 16
        with _support_page(base_url, api_key, limit) as (page_url, pid):
            rows = asyncio.run(
                _measure(params, base_url, api_key, page_url, pid)
            )

    return _report(rows, params, quick=quick)


async def _measure(
    params: dict[str, Any],
    base_url: str,
    api_key: str,
    page_url: str,
    pid: int,
) -> list[dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await _clear_requests(http, base_url)
        loads = await _page_loads(http, page_url, params["page_loads"])
        loads["upstream_init"] = await _count_init(http, base_url)
        cached = await _cached_init(base_url, api_key, params["init_calls"])
        upload = await _upload(
            http, base_url, page_url, pid, params["upload_mib"]
        )

    return [loads, cached, upload]


# The measurements.


async def _page_loads(
    http: aiohttp.ClientSession, page_url: str, count: int
) -> dict[str, Any]:
    async def load() -> float:
        started = time.perf_counter()
        async with http.get(page_url) as response:
            await response.read()
            if response.status != 200:
                msg = f"the page answered {response.status}"
                raise RuntimeError(msg)
        return time.perf_counter() - started

    started = time.perf_counter()
    latencies = await asyncio.gather(*(load() for _ in range(count)))
    seconds = time.perf_counter() - started

    return {
        "case": "page_loads",
        "label": f"{count} concurrent page loads",
        "count": count,
        "seconds": seconds,
        "median_s": median(latencies),
        "p99_s": percentile(latencies, 0.99),
    }


async def _cached_init(
    base_url: str, api_key: str, count: int
) -> dict[str, Any]:
    async with VicketClient(api_key=api_key, base_url=base_url) as client:
        await client.init()
        latencies = []
        clock = time.perf_counter
        for _ in range(count):
            started = clock()
            await client.init()
            latencies.append(clock() - started)

    return {
        "case": "cached_init",
        "label": "cached client.init(), in process",
        "count": count,
        "median_s": median(latencies),
        "p99_s": percentile(latencies, 0.99),
    }


async def _upload(
    http: aiohttp.ClientSession,
    base_url: str,
    page_url: str,
    pid: int,
    size_mib: int,
) -> dict[str, Any]:
    email = "upload-bench@example.com"
    size = size_mib * MIB
    before = _status_kib(pid, "VmRSS")
    reset = _reset_peak(pid)
    started = time.perf_counter()
    async with http.post(
        page_url + "support-api/tickets",
        data=_ticket_form(email, size),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    ) as response:
        answer = await response.read()
        if response.status != 201:
            msg = f"the upload answered {response.status}: {answer[:300]!r}"
            raise RuntimeError(msg)
    seconds = time.perf_counter() - started
    peak = _status_kib(pid, "VmHWM")
    received = await _received_size(http, base_url, email)
    if received != size:
        msg = f"the sandbox received {received} bytes, not {size}"
        raise RuntimeError(msg)

    return {
        "case": "upload",
        "label": f"{size_mib} MiB ticket upload via the proxy",
        "count": 1,
        "seconds": seconds,
        "mib_per_s": size_mib / seconds,
        "peak_mib": None if peak is None else peak / 1024,
        "increase_mib": (
            None
            if peak is None or before is None or not reset
            else (peak - before) / 1024
        ),
    }


async def _ticket_form(email: str, size: int) -> AsyncIterator[bytes]:
    """A bug report whose screenshot is ``size`` generated bytes."""
    data = {
        "email": email,
        "title": "A large screenshot",
        "templateId": "tpl_bug",
        "answers": {
            "q_description": "See the attached file",
            "q_browser": "firefox",
            "q_screenshot": "__isFile:true",
        },
    }
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="data"\r\n\r\n'
    ).encode() + orjson.dumps(data)
    yield (
        f"\r\n--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="files[q_screenshot]"; '
        f'filename="screenshot.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    # Random bytes, so that nothing on the way could compress them.
    block = random.Random(0).randbytes(256 * 1024)
    sent = 0
    while sent < size:
        chunk = block[: size - sent]
        sent += len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


# The sandbox and the app, each in a process of its own.


@contextlib.contextmanager
def _sandbox() -> Iterator[tuple[str, str]]:
    command = child_command(
        "vicket_async.sandbox", "--port=0", "--rate-limit-mode=off"
    )
    with _child(command, "VICKET_SANDBOX_URL=") as (process, url):
        key = _read_line(process, "VICKET_SANDBOX_API_KEY=")
        yield url, key


@contextlib.contextmanager
def _support_page(
    base_url: str, api_key: str, max_upload_mib: int
) -> Iterator[tuple[str, int]]:
    env = {"VICKET_BASE_URL": base_url, "VICKET_API_KEY": api_key}
    command = [
        sys.executable,
        str(ROOT / "examples" / "support_page.py"),
        "--port=0",
        f"--max-upload-mib={max_upload_mib}",
    ]
    with _child(command, "SUPPORT_PAGE_URL=", env=env) as (process, url):
        yield url, process.pid


@contextlib.contextmanager
def _child(
    command: list[str], ready: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**child_env(), **(env or {})},
    )
    try:
        # The children print little after this line (the sandbox, one
        # email), far less than a pipe holds, so nobody needs to read it.
        yield process, _read_line(process, ready)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stdout(process: subprocess.Popen[str]) -> IO[str]:
    assert process.stdout is not None
    return process.stdout


def _read_line(process: subprocess.Popen[str], prefix: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = _stdout(process).readline()
        if not line:
            msg = f"{process.args!r} exited before printing {prefix}"
            raise RuntimeError(msg)
        if line.startswith(prefix):
            return line.strip()[len(prefix) :]
    msg = f"{process.args!r} did not print {prefix} in time"
    raise RuntimeError(msg)


async def _clear_requests(http: aiohttp.ClientSession, base_url: str) -> None:
    async with http.delete(f"{base_url}/_sandbox/requests") as response:
        await response.read()


async def _count_init(http: aiohttp.ClientSession, base_url: str) -> int:
    url = f"{base_url}/_sandbox/requests?endpoint=init"
    async with http.get(url) as response:
        return len((await response.json())["data"])


async def _received_size(
    http: aiohttp.ClientSession, base_url: str, email: str
) -> int:
    url = f"{base_url}/_sandbox/tickets?email={email}"
    async with http.get(url) as response:
        [ticket] = (await response.json())["data"]
    for answer in ticket["answers"]:
        for attachment in answer["attachments"]:
            return int(attachment["size"])

    return 0


def _status_kib(pid: int, field: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text("ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])

    return None


def _reset_peak(pid: int) -> bool:
    """Reset a process's high water mark to its current size (Linux)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False

    return True


# The report.


def _report(
    rows: list[dict[str, Any]], params: dict[str, Any], *, quick: bool
) -> Report:
    loads, cached, upload = rows
    upstream = loads["upstream_init"]
    windows = max(1, int(loads["seconds"] // TTL) + 1)
    calls_met = upstream <= windows
    increase = upload.get("increase_mib")
    memory_met = increase is not None and increase <= MEMORY_TARGET_MIB
    verdicts = [
        f"upstream init calls for {loads['count']} page loads: {upstream} "
        f"(target: at most {windows}, one per {TTL:g} s time to live): "
        f"{'met' if calls_met else 'NOT met'}",
        f"proxy memory while streaming {params['upload_mib']} MiB: "
        + (
            "not measured (no /proc)"
            if increase is None
            else f"+{increase:.1f} MiB (target: at most "
            f"{MEMORY_TARGET_MIB} MiB): {'met' if memory_met else 'NOT met'}"
        ),
    ]
    notes = [
        "The cached init figures are the client's own work: no request "
        "leaves the process. Each page load renders the page from such a "
        "cached init in the app's process.",
        "The upload streams through the proxy: it holds one chunk of the "
        "file at a time and hands it on to Vicket before reading the next.",
    ]
    report = Report(
        name="support_page",
        title="the support page: cached reads and a streamed upload",
        params=params,
        quick=quick,
        columns=[
            Column("label", "case"),
            Column("count", "count"),
            Column("upstream_init", "upstream init"),
            Column("median_s", "median", format_duration),
            Column("p99_s", "p99", format_duration),
            Column("seconds", "total", format_duration),
            Column("peak_mib", "proxy peak MiB", lambda v: f"{v:.1f}"),
            Column("increase_mib", "proxy +MiB", lambda v: f"{v:.1f}"),
            Column("mib_per_s", "MiB/s", lambda v: f"{v:.0f}"),
        ],
        rows=rows,
        notes=notes,
    )
    report.summary = {
        "upstream_init_calls": upstream,
        "cached_init_median_s": cached["median_s"],
        "cached_init_p99_s": cached["p99_s"],
        "proxy_upload_increase_mib": increase,
        "verdicts": verdicts,
        # Quick mode proves the benchmark runs; it judges no figures.
        "target_met": None if quick else calls_met and memory_met,
    }

    return report
