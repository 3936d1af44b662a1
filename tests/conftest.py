from __future__ import annotations

from collections.abc import Iterator

import pytest
from aioresponses import aioresponses

from .aioresponses_compat import mocked_aiohttp

BASE_URL = "https://api.vicket.app"
API = f"{BASE_URL}/api/v1/public/support"
API_KEY = "vk_test_key_do_not_leak_7f3a"


@pytest.fixture
def mock_api() -> Iterator[aioresponses]:
    with mocked_aiohttp() as mock:
        yield mock
