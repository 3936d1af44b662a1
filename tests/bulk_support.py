"""Helpers for the bulk import tests: input files, a sandbox process."""

from __future__ import annotations

import csv
import http.client
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import orjson

ROOT = Path(__file__).resolve().parent.parent
FEATURE_COLUMNS = ("email", "title", "q_idea", "q_contact_ok")


def feature_rows(
    count: int, *, start: int = 1, tag: str = "Idea"
) -> list[dict[str, str]]:
    """Valid rows for the demo template ``tpl_feature``."""
    return [
        {
            "email": f"user{number}@example.com",
            "title": f"{tag} {number}",
            "q_idea": f"an idea numbered {number}",
            "q_contact_ok": "yes" if number % 2 else "no",
        }
        for number in range(start, start + count)
    ]


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str] = FEATURE_COLUMNS,
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(dict(row))

    return path


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    with path.open("wb") as file:
        for row in rows:
            file.write(orjson.dumps(dict(row)) + b"\n")

    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def child_env(**extra: str) -> dict[str, str]:
    """An environment in which a child imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.pop("VICKET_API_KEY", None)
    env.pop("VICKET_BASE_URL", None)
    env.update(extra)

    return env


class SandboxProcess:
    """``python -m vicket_async.sandbox`` in a process of its own."""

    def __init__(self, *, time_scale: float, email_limit: int = 1000) -> None:
        self._args = [
            "--port=0",
            f"--time-scale={time_scale:g}",
            f"--email-limit={email_limit}",
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[str] = io.StringIO()
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> Self:
        # The sandbox prints a line per email it sends; a file takes them
        # all without ever making the sandbox wait for a reader.
        self._output = tempfile.TemporaryFile("w+", encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "vicket_async.sandbox", *self._args],
            stdout=self._output,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=child_env(),
        )
        deadline = time.monotonic() + 30
        while not (self.base_url and self.api_key):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                msg = "the sandbox process did not start"
                raise RuntimeError(msg)
            time.sleep(0.05)
            self._output.seek(0)
            for line in self._output.read().splitlines():
                key, _, value = line.strip().partition("=")
                if key == "VICKET_SANDBOX_URL":
                    self.base_url = value
                elif key == "VICKET_SANDBOX_API_KEY":
                    self.api_key = value

        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._output.close()

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        where = urllib.parse.urlsplit(self.base_url)
        connection = http.client.HTTPConnection(
            where.hostname or "127.0.0.1", where.port, timeout=30
        )
        try:
            body = None if payload is None else orjson.dumps(payload)
            connection.request(method, f"/_sandbox/{path}", body=body)
            answer = connection.getresponse()
            return orjson.loads(answer.read())["data"]
        finally:
            connection.close()

    def tickets(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "tickets"))

    def reset(self) -> None:
        self.control("POST", "reset")

    def env(self) -> dict[str, str]:
        return child_env(
            VICKET_API_KEY=self.api_key, VICKET_BASE_URL=self.base_url
        )
