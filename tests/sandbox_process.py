"""A sandbox in a process of its own, for tests that span processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import attrs


@attrs.frozen
class RunningSandbox:
    base_url: str
    api_key: str


@contextmanager
def sandbox_process(*options: str) -> Iterator[RunningSandbox]:
    """Start ``python -m vicket_async.sandbox --port 0 OPTIONS``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vicket_async.sandbox",
            "--port",
            "0",
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        values = {}
        for _ in range(2):
            name, _, value = process.stdout.readline().strip().partition("=")
            values[name] = value
        yield RunningSandbox(
            base_url=values["VICKET_SANDBOX_URL"],
            api_key=values["VICKET_SANDBOX_API_KEY"],
        )
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
