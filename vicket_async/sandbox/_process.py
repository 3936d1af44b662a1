"""
The sandbox in a process of its own, for tests that span processes.

A bulk import killed mid-run, or several workers sharing one budget, need a
server that outlives the process under test. `SandboxProcess` starts
``python -m vicket_async.sandbox --port 0`` with the options given, reads
the URL and key it prints, and stops it on exit.
"""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType
from typing import Self

__all__ = ["SandboxProcess"]

_STOP_TIMEOUT = 10.0


class SandboxProcess:
    """
    Run ``python -m vicket_async.sandbox`` for the length of a ``with``.

    ``options`` are command-line options of the sandbox, such as
    ``"--time-scale", "60"``. Inside the block, ``base_url`` and
    ``api_key`` say where it listens; its control routes under
    ``/_sandbox/`` reach its state.
    """

    def __init__(self, *options: str) -> None:
        self._options = options
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = ""

    def __repr__(self) -> str:
        where = self.base_url if self._process is not None else "not running"
        return f"<SandboxProcess {where}>"

    def __enter__(self) -> Self:
        # The command is this interpreter and the caller's options.
        process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "vicket_async.sandbox",
                "--port",
                "0",
                *self._options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        for _ in range(2):
            name, _, value = process.stdout.readline().strip().partition("=")
            if name == "VICKET_SANDBOX_URL":
                self.base_url = value
            elif name == "VICKET_SANDBOX_API_KEY":
                self.api_key = value
        if not self.base_url:
            self.stop()
            msg = "the sandbox process exited before it listened"
            raise RuntimeError(msg)

        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
