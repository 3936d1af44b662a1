"""
Each example, started by its one command in a process of its own.

The web examples print the address they serve on; the tests read it, talk
to the app over HTTP and stop it with SIGINT, as a person pressing Ctrl+C.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import orjson
import pytest

from vicket_async.sandbox import Sandbox

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EMAIL = "visitor@example.com"
#: Seconds an example may take to start and print its address.
START_TIMEOUT = 60.0


class Example:
    """A running example: its address and everything it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.url = ""
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._printed = asyncio.Condition()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, prefix: str) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    msg = f"the example exited:\n{self.output}"
                    raise AssertionError(msg)
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if line.startswith(prefix):
                    return line[len(prefix) :]

    def keep_reading(self) -> None:
        # Drain the pipe so that a chatty example never blocks on it.
        self._reader = asyncio.create_task(self._read_rest())

    async def _read_rest(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            async with self._printed:
                self.lines.append(raw.decode().rstrip("\n"))
                self._printed.notify_all()

    async def expect(self, text: str) -> None:
        """Wait until the example has printed ``text``."""
        async with asyncio.timeout(START_TIMEOUT), self._printed:
            await self._printed.wait_for(lambda: text in self.output)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(20):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        if self._reader is not None:
            await self._reader

        return code


def example_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("VICKET_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})

    return env


@contextlib.asynccontextmanager
async def running(
    script: str,
    *args: str,
    ready: str,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Example]:
    """Start ``examples/<script>`` and yield it once it printed ``ready``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=example_env(env),
    )
    example = Example(process)
    try:
        example.url = await example.wait_for_line(ready)
        example.keep_reading()
        yield example
    finally:
        await example.stop()


def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    return {
        "VICKET_BASE_URL": sandbox.base_url,
        "VICKET_API_KEY": sandbox.api_key,
    }


def feature_ticket() -> bytes:
    return orjson.dumps(
        {
            "email": EMAIL,
            "title": "Dark mode",
            "templateId": "tpl_feature",
            "answers": {"q_idea": "A dark theme", "q_contact_ok": True},
        }
    )


JSON = {"Content-Type": "application/json"}


class TestSupportPage:
    async def test_one_command_starts_it_with_a_sandbox(self) -> None:
        async with (
            running(
                "support_page.py", "--port", "0", ready="SUPPORT_PAGE_URL="
            ) as example,
            aiohttp.ClientSession() as http,
        ):
            url = example.url
            async with http.get(url) as response:
                assert response.status == 200
                page = await response.text()
            async with http.get(url + "articles/getting-started") as response:
                assert response.status == 200
                assert "Welcome to Acme" in await response.text()
            async with http.post(
                url + "support-api/tickets",
                data=feature_ticket(),
                headers=JSON,
            ) as response:
                assert response.status == 201
            # The sandbox prints its "email"; the link opens this app.
            await example.expect("EMAIL to")

        link = next(
            line.strip() for line in example.lines if "/ticket?token=" in line
        )
        assert link.startswith(url + "ticket?token=")
        for name in ("Bug Report", "Billing Question", "Feature Request"):
            assert name in page
        for control in (
            'type="text"',
            "<textarea",
            "<select",
            'type="checkbox"',
            'type="date"',
            'type="file"',
        ):
            assert control in page
        assert "How do I reset my password?" in page
        assert example.process.returncode == 0

    async def test_ticket_page_reads_through_the_proxy(
        self, vicket_sandbox: Sandbox
    ) -> None:
        async with (
            running(
                "support_page.py",
                "--port",
                "0",
                ready="SUPPORT_PAGE_URL=",
                env=sandbox_env(vicket_sandbox),
            ) as example,
            aiohttp.ClientSession() as http,
        ):
            url = example.url
            async with http.post(
                url + "support-api/tickets",
                data=feature_ticket(),
                headers=JSON,
            ) as response:
                assert response.status == 201
            token = vicket_sandbox.state.latest_token(EMAIL)
            assert token is not None
            async with http.get(
                url + "ticket", params={"token": token}
            ) as response:
                assert response.status == 200
                assert response.headers["Referrer-Policy"] == "no-referrer"
            async with http.get(
                url + "support-api/ticket", params={"token": token}
            ) as response:
                assert response.status == 200
                thread = await response.json()
            async with http.post(
                url + "support-api/ticket/messages",
                params={"token": token},
                data=orjson.dumps({"content": "More details"}),
                headers=JSON,
            ) as response:
                assert response.status == 201

        assert thread["data"]["title"] == "Dark mode"
        [ticket] = vicket_sandbox.state.tickets_for(EMAIL)
        assert ticket.messages[-1].content == "More details"
        # The access log names the paths, never the token or the key.
        assert "GET /ticket 200" in example.output
        assert token not in example.output
        assert vicket_sandbox.api_key not in example.output


@pytest.fixture
def fastapi_installed() -> None:
    # The examples extra brings these; CI installs it, so never skip there.
    if os.environ.get("CI"):
        return
    for name in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed (pip install .[examples])")


@pytest.mark.usefixtures("fastapi_installed")
class TestFastAPIApp:
    async def test_proxy_mounted_in_fastapi(
        self, vicket_sandbox: Sandbox
    ) -> None:
        async with (
            running(
                "fastapi_app.py",
                "--port",
                "0",
                ready="FASTAPI_APP_URL=",
                env=sandbox_env(vicket_sandbox),
            ) as example,
            aiohttp.ClientSession() as http,
        ):
            url = example.url
            async with http.get(url) as response:
                assert response.status == 200
                assert "/support-api/init" in await response.text()
            async with http.get(url + "support-api/init") as response:
                assert response.status == 200
                page = await response.json()
            async with http.post(url + "support-api/init") as response:
                assert response.status == 405
            async with http.get(url + "support-api/articles/nope") as response:
                assert response.status == 404
                missing = await response.json()
            async with http.post(
                url + "support-api/tickets",
                data=feature_ticket(),
                headers=JSON,
            ) as response:
                assert response.status == 201

        assert page["data"]["website"]["name"] == "Acme Support"
        assert missing["error_code"] == "article-not-found"
        assert len(vicket_sandbox.state.tickets_for(EMAIL)) == 1
        assert example.process.returncode == 0

    async def test_one_command_starts_it_with_a_sandbox(self) -> None:
        async with (
            running(
                "fastapi_app.py", "--port", "0", ready="FASTAPI_APP_URL="
            ) as example,
            aiohttp.ClientSession() as http,
            http.get(example.url + "support-api/init") as response,
        ):
            assert response.status == 200


class TestChatBot:
    async def test_budgets_keep_the_server_from_refusing(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "chat_bot.py"),
            "--conversations",
            "12",
            "--follow-ups",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=example_env(),
        )
        async with asyncio.timeout(120):
            output, _ = await process.communicate()
        text = output.decode()

        assert process.returncode == 0, text
        assert "tickets created: 12" in text
        assert "replies posted: 24" in text
        assert "429 answers from the server: 0" in text
        waited = next(
            line for line in text.splitlines() if line.startswith("calls that")
        )
        # Twelve tickets cannot fit in one window of ten: some waited.
        assert int(waited.split(":")[1].split()[0]) > 0
