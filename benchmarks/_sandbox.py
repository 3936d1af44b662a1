"""
A sandbox in a child process, and the set-up requests a benchmark needs.

The sandbox runs in its own process so that its CPU time and memory do not
mix with the client's. Set-up goes through plain aiohttp and the control
endpoints under ``/_sandbox``, so that it does not depend on the client
being measured.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from ._common import ROOT, child_command, child_env

__all__ = [
    "OpenTicket",
    "SandboxProcess",
    "clear_logs",
    "open_ticket",
    "ticket_body",
]

API_PREFIX = "/api/v1/public/support"
_START_TIMEOUT = 60.0


class SandboxProcess:
    """
    ``python -m benchmarks._sandbox_server`` as a context manager.

    The keyword arguments size the generated website; see that module.
    """

    def __init__(self, **site: int | str) -> None:
        self._args = [
            f"--{name.replace('_', '-')}={value}"
            for name, value in site.items()
        ]
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> Self:
        process = subprocess.Popen(
            child_command("benchmarks._sandbox_server", *self._args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        self._process = process
        assert process.stdout is not None
        try:
            for _ in range(2):
                line = process.stdout.readline()
                if not line:
                    msg = (
                        f"the sandbox process exited with status "
                        f"{process.wait(_START_TIMEOUT)} before it listened"
                    )
                    raise RuntimeError(msg)
                key, _, value = line.strip().partition("=")
                if key == "VICKET_SANDBOX_URL":
                    self.base_url = value
                elif key == "VICKET_SANDBOX_API_KEY":
                    self.api_key = value
        except BaseException:
            self._stop()
            raise

        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        # Closing its standard input is the sandbox's signal to stop.
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def cpu_seconds(self) -> float | None:
        """CPU time the sandbox process used so far (Linux only)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text("ascii")
            fields = stat.rpartition(")")[2].split()
        except OSError:
            return None
        # utime and stime, fields 14 and 15 of proc(5), counted after the
        # command name, which may itself hold spaces.
        ticks = int(fields[11]) + int(fields[12])

        return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class OpenTicket:
    """A ticket created for a benchmark, and what it took to create it."""

    token: str
    ticket_id: str
    template_id: str
    answers: dict[str, Any]
    init_bytes: int


def _answer(question: dict[str, Any]) -> Any:
    kind = question["type"]
    if kind == "CHECKBOX":
        return True
    if kind == "DATE":
        return dt.date(2026, 3, 8).isoformat()
    if kind == "SELECT":
        option = question["options"][0]
        return option if isinstance(option, str) else option["value"]

    return "Benchmark answer"


def ticket_body(
    email: str, template_id: str, answers: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body of ``POST /tickets``."""
    return {
        "email": email,
        "title": "Benchmark ticket",
        "templateId": template_id,
        "answers": answers,
    }


async def open_ticket(
    sandbox: SandboxProcess, *, email: str, agent_replies: int = 0
) -> OpenTicket:
    """
    Create a ticket and read its token from the sandbox's outbox.

    The ticket uses the first template, answering its required questions
    that are not files; *agent_replies* messages are added to its thread.
    """
    headers = {"X-Api-Key": sandbox.api_key}
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        async with session.get(
            f"{sandbox.api_url}/init", headers=headers
        ) as response:
            body = await response.read()
        page = orjson.loads(body)["data"]
        template = page["templates"][0]
        answers = {
            question["id"]: _answer(question)
            for question in template["questions"]
            if question["required"] and question["type"] != "FILE"
        }
        async with session.post(
            f"{sandbox.api_url}/tickets",
            json=ticket_body(email, template["id"], answers),
            headers=headers,
        ):
            pass
        async with session.get(
            f"{sandbox.base_url}/_sandbox/outbox", params={"to": email}
        ) as response:
            mail = (await response.json())["data"][-1]
        for index in range(agent_replies):
            async with session.post(
                f"{sandbox.base_url}/_sandbox/tickets/"
                f"{mail['ticket_id']}/agent-reply",
                json={"content": f"<p>Agent reply number {index + 1}</p>"},
            ):
                pass

    return OpenTicket(
        token=mail["token"],
        ticket_id=mail["ticket_id"],
        template_id=template["id"],
        answers=answers,
        init_bytes=len(body),
    )


async def clear_logs(sandbox: SandboxProcess) -> None:
    """Empty the sandbox's request log and outbox between cases."""
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        for path in ("requests", "outbox"):
            async with session.delete(f"{sandbox.base_url}/_sandbox/{path}"):
                pass
