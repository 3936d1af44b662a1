"""
A real browser on the example support page, against the sandbox.

Headless Chromium fills in the bug report form, a screenshot file included,
and submits it through the proxy. The test then finds the ticket in the
sandbox, opens the link from the email in the browser, reads the thread and
posts a reply.

It needs Debian's ``chromium`` and ``chromium-driver`` packages and the
``selenium`` package. Without them it is skipped, except when the ``CI``
environment variable is set: there it must run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from vicket_async.sandbox import Sandbox

from .test_examples import running, sandbox_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EMAIL = "browser-user@example.com"
DESCRIPTION = "The save button does nothing after I edit a draft"
REPLY = "It also happens in a private window"
#: Seconds the page may take to answer a click.
WAIT = 30


def _missing() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return (
            f"{' and '.join(missing)} not found: install Debian's chromium "
            f"and chromium-driver packages"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install .[test])"
    return None


if (_reason := _missing()) is not None and not os.environ.get("CI"):
    pytest.skip(_reason, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture
def profile() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="vicket-chromium-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def browser(profile: Path) -> AsyncIterator[WebDriver]:
    driver = await asyncio.to_thread(_start_chromium, profile)
    try:
        yield driver
    finally:
        await asyncio.to_thread(driver.quit)


def _start_chromium(profile: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,2400",
    ):
        options.add_argument(flag)
    # A driver path given outright keeps Selenium from looking one up
    # online.
    service = Service(executable_path=str(CHROMEDRIVER))

    return webdriver.Chrome(service=service, options=options)


def _fill_bug_report(driver: WebDriver, url: str, screenshot: Path) -> str:
    """Submit the bug report form; returns the status line it shows."""
    driver.get(url)
    form = driver.find_element(
        By.CSS_SELECTOR, 'form[data-template="tpl_bug"]'
    )

    def field(question: str) -> Any:
        return form.find_element(
            By.CSS_SELECTOR, f'[data-question="{question}"]'
        )

    form.find_element(By.NAME, "email").send_keys(EMAIL)
    form.find_element(By.NAME, "subject").send_keys("Cannot save drafts")
    field("q_description").send_keys(DESCRIPTION)
    Select(field("q_browser")).select_by_value("firefox")
    field("q_reproducible").click()
    # Typing into a date input depends on the browser's locale; setting
    # the value is what a date picker does in the end.
    driver.execute_script(
        "arguments[0].value = '2026-03-01'", field("q_first_seen")
    )
    field("q_screenshot").send_keys(str(screenshot))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    status = form.find_element(By.CSS_SELECTOR, ".status")
    WebDriverWait(driver, WAIT).until(
        lambda _: status.text and status.text != "Sending…"
    )

    return str(status.text)


def _read_thread_and_reply(driver: WebDriver, link: str) -> str:
    """Open the emailed link, check the thread, reply; returns the thread."""
    driver.get(link)
    thread = driver.find_element(By.ID, "thread")
    WebDriverWait(driver, WAIT).until(lambda _: DESCRIPTION in thread.text)
    reply = driver.find_element(By.ID, "reply")
    WebDriverWait(driver, WAIT).until(expected_conditions.visibility_of(reply))
    reply.find_element(By.NAME, "content").send_keys(REPLY)
    reply.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, WAIT).until(lambda _: REPLY in thread.text)

    return str(thread.text)


async def test_support_page_in_a_real_browser(
    vicket_sandbox: Sandbox, browser: WebDriver, tmp_path: Path
) -> None:
    screenshot = tmp_path / "screenshot.png"
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 400
    screenshot.write_bytes(content)
    state = vicket_sandbox.state

    async with running(
        "support_page.py",
        "--port",
        "0",
        ready="SUPPORT_PAGE_URL=",
        env=sandbox_env(vicket_sandbox),
    ) as example:
        state.link_template = example.url + "ticket?token={token}"
        # Selenium blocks; it runs in a thread so that the sandbox, in this
        # event loop, keeps answering the example's requests.
        status = await asyncio.to_thread(
            _fill_bug_report, browser, example.url, screenshot
        )
        assert status.startswith("Thank you!"), status

        [ticket] = state.tickets_for(EMAIL)
        answers = {a.question_id: a for a in ticket.answers}
        assert answers["q_description"].answer == DESCRIPTION
        assert answers["q_browser"].answer == "firefox"
        assert answers["q_reproducible"].answer is True
        assert answers["q_first_seen"].answer == "2026-03-01"
        [file] = answers["q_screenshot"].attachments
        assert file.original_filename == "screenshot.png"
        assert file.size == len(content)
        assert file.sha256 == hashlib.sha256(content).hexdigest()

        mail = state.latest_email(EMAIL)
        assert mail is not None
        assert mail.link.startswith(example.url + "ticket?token=")
        thread = await asyncio.to_thread(
            _read_thread_and_reply, browser, mail.link
        )

    assert "Cannot save drafts" in thread
    assert ticket.messages[-1].content == REPLY
    assert mail.token not in example.output
