"""
The sandbox in a process of its own, for tests that span processes.

A bulk import killed mid-run, or several workers sharing one budget, need a
server that outlives the process under test. `SandboxProcess` starts
``python -m vicket_async.sandbox --port 0`` with the options given, reads
the URL and key it prints, offers its control routes, and stops it on exit.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
from types import TracebackType
from typing import IO, Any, Self

__all__ = ["SandboxProcess"]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


class SandboxProcess:
    """
    Run ``python -m vicket_async.sandbox`` for the length of a ``with``.

    ``options`` are command-line options of the sandbox, such as
    ``"--time-scale", "60"``. Inside the block, ``base_url`` and
    ``api_key`` say where it listens, and `control` calls its control
    routes under ``/_sandbox/``.
    """

    def __init__(self, *options: str) -> None:
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[str] | None = None
        self.base_url = ""
        self.api_key = ""

    def __repr__(self) -> str:
        where = self.base_url if self._process is not None else "not running"
        return f"<SandboxProcess {where}>"

    def __enter__(self) -> Self:
        # The sandbox prints a line for every email it sends. A file takes
        # them all; a pipe nobody reads would fill and stall the server.
        self._output = tempfile.TemporaryFile("w+", encoding="utf-8")
        # The command is this interpreter and the caller's options.
        self._process = subprocess.Popen(  # noqa: S603
            self.command(),
            stdout=self._output,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not (self.base_url and self.api_key):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                msg = "the sandbox process exited before it listened"
                raise RuntimeError(msg)
            time.sleep(0.02)
            self._output.seek(0)
            for line in self._output.read().splitlines():
                name, _, value = line.strip().partition("=")
                if name == "VICKET_SANDBOX_URL":
                    self.base_url = value
                elif name == "VICKET_SANDBOX_API_KEY":
                    self.api_key = value

        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def command(self) -> list[str]:
        """The command line that starts the sandbox."""
        return [
            sys.executable,
            "-m",
            "vicket_async.sandbox",
            "--port",
            "0",
            *self.options,
        ]

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        """
        Call a control route, such as ``control("GET", "tickets")``.

        Returns the ``data`` of its answer. Blocking on purpose: it serves
        test code in any context, with or without an event loop.
        """
        where = urllib.parse.urlsplit(self.base_url)
        connection = http.client.HTTPConnection(
            where.hostname or "127.0.0.1", where.port, timeout=30
        )
        try:
            body = None if payload is None else json.dumps(payload)
            headers = {"Content-Type": "application/json"} if body else {}
            connection.request(
                method, f"/_sandbox/{path}", body=body, headers=headers
            )
            answer = connection.getresponse()
            document = json.loads(answer.read())
        finally:
            connection.close()
        if answer.status >= 400:
            msg = f"{method} /_sandbox/{path}: {answer.status} {document}"
            raise RuntimeError(msg)

        return document.get("data")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._output is not None:
            self._output.close()
            self._output = None
