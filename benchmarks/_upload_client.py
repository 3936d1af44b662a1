"""
One upload, in a fresh process, measuring that process's peak memory.

``python -m benchmarks._upload_client CASE --file ... --url ... --api-key
... --token ...`` sends the file as a reply attachment the way CASE says,
and prints one JSON line: the resident memory before the upload, its high
water mark after, the bytes the case held in memory on purpose (the whole
file, for the cases that start from ``bytes``) and the seconds it took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from vicket_async import FileUpload, VicketClient

__all__ = ["CASES", "main"]

CHUNK = 256 * 1024
CONTENT = "A large attachment, sent by the upload benchmark."
FILENAME = "benchmark.bin"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = Path(args.file)
    reset = _reset_peak()
    baseline = _status_kib("VmRSS") if reset else _peak_kib()
    held = 0
    data = b""
    if args.case in ("ours_bytes", "aiohttp_bytes"):
        data = path.read_bytes()
        held = len(data)
    upload = CASES[args.case]
    started = time.perf_counter()
    asyncio.run(upload(args, path, data))
    seconds = time.perf_counter() - started
    result = {
        "case": args.case,
        "baseline_kib": baseline,
        "peak_kib": _peak_kib(),
        "held_bytes": held,
        "seconds": seconds,
        "peak_reset": reset,
    }
    sys.stdout.write(json.dumps(result) + "\n")

    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._upload_client"
    )
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--file", required=True)
    parser.add_argument("--url", required=True, help="the sandbox's origin")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--token", required=True)

    return parser


def _status_kib(field: str) -> int | None:
    try:
        status = Path("/proc/self/status").read_text("ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])

    return None


def _peak_kib() -> int:
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    return usage // 1024 if sys.platform == "darwin" else usage


def _reset_peak() -> bool:
    """Reset the high water mark to the current size, where Linux can."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False

    return True


def _client(args: argparse.Namespace) -> VicketClient:
    return VicketClient(
        api_key=args.api_key,
        base_url=args.url,
        # One request, sent at once, whatever the budgets would allow.
        rate_limits={"reply": None},
    )


async def _ours_path(args: argparse.Namespace, path: Path, _: bytes) -> None:
    async with _client(args) as client:
        await client.reply(args.token, CONTENT, attachments=[FileUpload(path)])


async def _ours_bytes(args: argparse.Namespace, _: Path, data: bytes) -> None:
    async with _client(args) as client:
        upload = FileUpload(data, filename=FILENAME)
        await client.reply(args.token, CONTENT, attachments=[upload])


async def _ours_stream(args: argparse.Namespace, path: Path, _: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                yield chunk

    async with _client(args) as client:
        upload = FileUpload(chunks(), filename=FILENAME)
        await client.reply(args.token, CONTENT, attachments=[upload])


async def _aiohttp_file(
    args: argparse.Namespace, path: Path, _: bytes
) -> None:
    with path.open("rb") as file:
        await _aiohttp_post(args, file)


async def _aiohttp_bytes(
    args: argparse.Namespace, _: Path, data: bytes
) -> None:
    await _aiohttp_post(args, data)


async def _aiohttp_post(args: argparse.Namespace, value: object) -> None:
    form = aiohttp.FormData()
    form.add_field("data", orjson.dumps({"content": CONTENT}).decode())
    form.add_field(
        "files",
        value,
        filename=FILENAME,
        content_type="application/octet-stream",
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            f"{args.url}/api/v1/public/support/ticket/messages",
            params={"token": args.token},
            headers={"X-Api-Key": args.api_key},
            data=form,
        ) as response,
    ):
        body = await response.read()
        if response.status != 201:
            msg = f"the reply answered {response.status}: {body[:200]!r}"
            raise RuntimeError(msg)


Upload = Callable[[argparse.Namespace, Path, bytes], Coroutine[Any, Any, None]]
CASES: dict[str, Upload] = {
    "ours_path": _ours_path,
    "ours_bytes": _ours_bytes,
    "ours_stream": _ours_stream,
    "aiohttp_file": _aiohttp_file,
    "aiohttp_bytes": _aiohttp_bytes,
}


if __name__ == "__main__":
    sys.exit(main())
