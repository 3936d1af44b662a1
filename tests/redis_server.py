"""A real redis-server for the tests: CI's, or one started here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require_or_skip(what: str) -> None:
    """Skip on a developer's machine; fail in CI, where it must be there."""
    if os.environ.get("VICKET_REQUIRE_SERVICES"):
        pytest.fail(f"{what} is required here but missing")
    pytest.skip(f"{what} is not installed")


@contextmanager
def redis_server(port: int | None = None) -> Iterator[str]:
    """Run a throwaway redis-server on loopback; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        require_or_skip("redis-server")
        raise AssertionError  # pragma: no cover - skip or fail raised
    port = port or free_port()
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), 0.2):
                        break
                except OSError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)
