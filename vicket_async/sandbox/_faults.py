"""
Faults a test can switch on to see how a client copes with a bad day.

Each fault applies to one endpoint (or ``"*"`` for all of them) and fires
once, *times* times, or until cleared (``times=None``).  When several
faults match a request, the oldest one fires.  Faults act before the API
key and the rate limits are checked, as a proxy in front of the service
would, so a faulted request costs no rate budget.
"""

from __future__ import annotations

import random
from typing import Literal

import attrs

from ._endpoints import ANY_ENDPOINT, check_endpoint

__all__ = ["FAULT_KINDS", "Fault", "FaultInjector", "FaultKind"]

FaultKind = Literal[
    "drop",
    "status",
    "delay",
    "malformed_json",
    "html_error",
    "rate_limited",
    "redirect",
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "drop",
    "status",
    "delay",
    "malformed_json",
    "html_error",
    "rate_limited",
    "redirect",
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@attrs.define
class Fault:
    """
    One injected fault.

    ``times`` counts the firings left (``None``: until cleared) and
    ``fired`` the firings so far.
    """

    kind: FaultKind
    endpoint: str = ANY_ENDPOINT
    times: int | None = 1
    status: int | None = None
    delay: float = 0.0
    retry_after: int | None = None
    location: str | None = None
    fired: int = 0

    def matches(self, endpoint: str) -> bool:
        """Whether this fault applies to *endpoint*."""
        return self.endpoint in (ANY_ENDPOINT, endpoint)

    def to_json(self) -> dict[str, object]:
        """The fault as JSON-ready data."""
        return attrs.asdict(self)


class FaultInjector:
    """The faults switched on in a sandbox, and optional latency jitter."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._jitter: tuple[float, float] | None = None

    def __repr__(self) -> str:
        kinds = [f"{f.kind}@{f.endpoint}" for f in self._faults]

        return f"<FaultInjector active={kinds} jitter={self._jitter}>"

    @property
    def active(self) -> list[Fault]:
        """The faults still armed, oldest first."""
        return list(self._faults)

    def add(
        self,
        kind: FaultKind,
        endpoint: str = ANY_ENDPOINT,
        *,
        times: int | None = 1,
        status: int | None = None,
        delay: float = 0.0,
        retry_after: int | None = None,
        location: str | None = None,
    ) -> Fault:
        """Arm a fault of any kind; the helpers below read better."""
        if kind not in FAULT_KINDS:
            names = ", ".join(FAULT_KINDS)
            msg = f"unknown fault kind {kind!r}; use one of {names}"
            raise ValueError(msg)
        check_endpoint(endpoint, allow_any=True)
        _check_times(times)
        if delay < 0:
            msg = f"a delay cannot be negative: {delay!r}"
            raise ValueError(msg)
        if retry_after is not None and retry_after < 0:
            msg = f"Retry-After cannot be negative: {retry_after!r}"
            raise ValueError(msg)
        if kind == "redirect" and not location:
            msg = "a redirect fault needs a location"
            raise ValueError(msg)
        fault = Fault(
            kind=kind,
            endpoint=endpoint,
            times=times,
            status=_default_status(kind, status),
            delay=delay,
            retry_after=retry_after,
            location=location,
        )
        self._faults.append(fault)

        return fault

    def drop_connection(
        self, endpoint: str, *, times: int | None = 1
    ) -> Fault:
        """Close the connection without answering."""
        return self.add("drop", endpoint, times=times)

    def error(
        self,
        endpoint: str,
        status: int = 500,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> Fault:
        """Answer *status* (500, 502, 503, 504...) with an error envelope."""
        return self.add(
            "status",
            endpoint,
            times=times,
            status=status,
            retry_after=retry_after,
        )

    def delay(
        self, endpoint: str, seconds: float, *, times: int | None = 1
    ) -> Fault:
        """
        Hold the answer back for *seconds* of real time.

        The request is handled first, so a client that gives up waiting
        has still created its ticket or posted its reply, as happens with
        a slow real server.
        """
        return self.add("delay", endpoint, times=times, delay=seconds)

    def malformed_json(
        self, endpoint: str, *, times: int | None = 1, status: int = 200
    ) -> Fault:
        """Answer with a JSON content type and a truncated JSON body."""
        return self.add("malformed_json", endpoint, times=times, status=status)

    def html_error(
        self, endpoint: str, *, times: int | None = 1, status: int = 502
    ) -> Fault:
        """Answer with an HTML error page, as a proxy in front would."""
        return self.add("html_error", endpoint, times=times, status=status)

    def rate_limited(
        self,
        endpoint: str,
        *,
        times: int | None = 1,
        retry_after: int | None = 1,
    ) -> Fault:
        """Answer 429, with ``Retry-After`` unless *retry_after* is None."""
        return self.add(
            "rate_limited", endpoint, times=times, retry_after=retry_after
        )

    def redirect(
        self,
        endpoint: str,
        location: str,
        *,
        status: int = 302,
        times: int | None = 1,
    ) -> Fault:
        """Answer with a redirect to *location*."""
        return self.add(
            "redirect",
            endpoint,
            times=times,
            status=status,
            location=location,
        )

    def clear(self, endpoint: str | None = None) -> None:
        """Disarm every fault, or those armed for *endpoint*."""
        if endpoint is None:
            self._faults.clear()
        else:
            self._faults = [f for f in self._faults if f.endpoint != endpoint]

    @property
    def jitter(self) -> tuple[float, float] | None:
        """The latency jitter range in milliseconds, if any."""
        return self._jitter

    def set_jitter(self, min_ms: float, max_ms: float) -> None:
        """Delay every API request by a random real time in this range."""
        if not 0 <= min_ms <= max_ms:
            msg = (
                f"jitter needs 0 <= min_ms <= max_ms, got {min_ms!r} and "
                f"{max_ms!r}"
            )
            raise ValueError(msg)
        self._jitter = (min_ms, max_ms)

    def clear_jitter(self) -> None:
        """Stop delaying requests at random."""
        self._jitter = None

    def jitter_seconds(self) -> float:
        """A random delay drawn from the jitter range, in seconds."""
        if self._jitter is None:
            return 0.0
        low, high = self._jitter

        return random.uniform(low, high) / 1000

    def take(self, endpoint: str) -> Fault | None:
        """The fault to apply to a request to *endpoint*, if any."""
        for fault in self._faults:
            if fault.matches(endpoint):
                fault.fired += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault

        return None


def _check_times(times: int | None) -> None:
    if times is not None and (
        isinstance(times, bool) or not isinstance(times, int) or times < 1
    ):
        msg = f"times must be a positive integer or None, not {times!r}"
        raise ValueError(msg)


def _default_status(kind: FaultKind, status: int | None) -> int | None:
    defaults: dict[str, int] = {
        "status": 500,
        "malformed_json": 200,
        "html_error": 502,
        "rate_limited": 429,
        "redirect": 302,
    }
    if status is None:
        return defaults.get(kind)
    if kind == "redirect" and status not in _REDIRECTS:
        msg = f"a redirect status must be one of {sorted(_REDIRECTS)}"
        raise ValueError(msg)
    if kind in ("status", "html_error") and not 400 <= status <= 599:
        msg = f"an error status must be between 400 and 599, not {status}"
        raise ValueError(msg)

    return status
