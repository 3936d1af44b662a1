from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from aioresponses import aioresponses

from .aioresponses_compat import mocked_aiohttp
from .redis_server import redis_server

BASE_URL = "https://api.vicket.app"
API = f"{BASE_URL}/api/v1/public/support"
API_KEY = "vk_test_key_do_not_leak_7f3a"


@pytest.fixture
def mock_api() -> Iterator[aioresponses]:
    with mocked_aiohttp() as mock:
        yield mock


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """CI's Redis server when it provides one, else one started here."""
    url = os.environ.get("VICKET_TEST_REDIS_URL")
    if url:
        yield url
        return
    with redis_server() as started:
        yield started
