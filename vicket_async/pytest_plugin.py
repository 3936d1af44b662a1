"""
pytest plugin: a running Vicket sandbox per test.

The ``vicket_sandbox`` fixture yields a started
:class:`vicket_async.sandbox.Sandbox` and stops it after the test.
Configure it with the ``vicket_sandbox`` marker, whose keyword arguments
go to :class:`~vicket_async.sandbox.Sandbox`::

    @pytest.mark.vicket_sandbox(time_scale=60, shape="integration")
    async def test_something(vicket_sandbox): ...

or with an indirect parameter holding a dict of the same arguments.  A
marker on a test wins over one on its class or module, and a parameter
wins over both.

The fixture is asynchronous and needs pytest-asyncio; without it this
plugin still loads, and the fixture fails with a message saying so.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from vicket_async.sandbox import Sandbox

__all__ = ["sandbox_options", "vicket_sandbox"]

_MARKER = "vicket_sandbox"
_MISSING_PYTEST_ASYNCIO = (
    "The vicket_sandbox fixture is asynchronous and needs pytest-asyncio, "
    "which is not installed. Install it, for example with "
    "'pip install vicket-async[test]' or 'pip install pytest-asyncio'."
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``vicket_sandbox`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): keyword arguments for the vicket_sandbox "
        "fixture's Sandbox, e.g. time_scale=60 or shape='integration'",
    )


def sandbox_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """
    The keyword arguments the fixture passes to ``Sandbox``.

    Markers from the module down to the test are merged, the closest
    winning; an indirect parameter (a dict) is applied last.
    """
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        if marker.args:
            msg = (
                f"@pytest.mark.{_MARKER} takes keyword arguments only, "
                f"got {marker.args!r}"
            )
            raise pytest.UsageError(msg)
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, Mapping):
            msg = (
                f"an indirect parameter of {_MARKER} must be a dict of "
                f"Sandbox arguments, got {param!r}"
            )
            raise pytest.UsageError(msg)
        options.update(param)

    return options


async def _running_sandbox(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Sandbox]:
    """A started sandbox, stopped again after the test."""
    # Imported here so that loading the plugin stays cheap for test runs
    # that never ask for a sandbox.
    from vicket_async.sandbox import Sandbox

    async with Sandbox(**sandbox_options(request)) as sandbox:
        yield sandbox


def _missing_pytest_asyncio(request: pytest.FixtureRequest) -> NoReturn:
    """Stand-in fixture that explains what is missing."""
    pytest.fail(_MISSING_PYTEST_ASYNCIO, pytrace=False)


def _load_pytest_asyncio() -> ModuleType | None:
    try:
        return importlib.import_module("pytest_asyncio")
    except ImportError:
        return None


def _make_fixture() -> Any:
    plugin = _load_pytest_asyncio()
    if plugin is None:
        return pytest.fixture(_missing_pytest_asyncio, name=_MARKER)

    return plugin.fixture(_running_sandbox, name=_MARKER)


vicket_sandbox = _make_fixture()
