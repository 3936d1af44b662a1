"""
Who a visitor is, and how many calls each visitor may make.

A visitor is known by the address the request came from. Behind a reverse
proxy that address is the proxy's, and the visitor's is in
``X-Forwarded-For``; that header is believed only as far as the web app says
its own proxies can be trusted, since anyone can send one.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping

from .._protocol.budget import RateLimit
from ..exceptions import ConfigurationError

__all__ = [
    "DEFAULT_VISITOR_LIMITS",
    "Network",
    "TrustedProxies",
    "VisitorLimiter",
    "merge_limits",
    "trusted_networks",
    "visitor_of",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TrustedProxies = int | tuple[Network, ...]

#: Calls one visitor may make per endpoint. A ticket or a reply is rare for
#: a person, and far below the website's 10 a minute, so one visitor cannot
#: spend the budget of all the others.
DEFAULT_VISITOR_LIMITS: Mapping[str, RateLimit | None] = {
    "init": RateLimit(30, 60.0),
    "create_ticket": RateLimit(3, 60.0),
    "get_ticket": RateLimit(10, 60.0),
    "reply": RateLimit(5, 60.0),
    "get_article": RateLimit(60, 60.0),
}
#: Visitors remembered at once; the one seen least recently goes first.
MAX_VISITORS = 10_000


def trusted_networks(value: int | Iterable[str | Network]) -> TrustedProxies:
    """Check the ``trusted_proxies`` option: a hop count or networks."""
    if isinstance(value, bool):
        msg = "trusted_proxies must be a number of hops or a list of networks"
        raise ConfigurationError(msg)
    if isinstance(value, int):
        if value < 0:
            msg = f"trusted_proxies cannot be negative, got {value}"
            raise ConfigurationError(msg)
        return value
    if isinstance(value, str):
        msg = "trusted_proxies takes a list of networks, not one string"
        raise ConfigurationError(msg)
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            msg = f"trusted_proxies has {item!r}, which is not a network"
            raise ConfigurationError(msg) from None

    return tuple(networks)


def visitor_of(
    peer: str | None,
    forwarded_for: Iterable[str],
    trusted: TrustedProxies,
) -> str:
    """
    The visitor's address for the limits.

    ``forwarded_for`` holds every ``X-Forwarded-For`` header, in order. With
    a hop count ``n``, the peer and the last ``n - 1`` forwarded addresses
    are our proxies and the one before them is the visitor. With networks,
    addresses are read from the right while they belong to a trusted
    network. IPv6 visitors are grouped by their /64, the block one host
    usually gets.
    """
    chain = [
        entry.strip()
        for header in forwarded_for
        for entry in header.split(",")
        if entry.strip()
    ]
    chain.append(peer or "unknown")
    if isinstance(trusted, int):
        visitor = chain[max(len(chain) - 1 - trusted, 0)] if trusted else peer
    else:
        visitor = chain[0]
        for address in reversed(chain):
            if not _in(address, trusted):
                visitor = address
                break

    return _group(visitor or "unknown")


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False

    return any(ip in network for network in networks)


def _group(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # Not an address (a unix socket, a proxy's placeholder): use it as
        # it is, cut short so a forged header cannot grow the table's keys.
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))

    return str(ip)


class VisitorLimiter:
    """Sliding-window counts per visitor and endpoint, in this process."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_visitors: int = MAX_VISITORS,
    ) -> None:
        self.limits = dict(limits)
        self.clock = clock
        self.max_visitors = max_visitors
        self._logs: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def __repr__(self) -> str:
        return f"<VisitorLimiter tracking={len(self._logs)}>"

    def hit(self, visitor: str, endpoint: str) -> float | None:
        """
        Count one call, or refuse it.

        Returns None when the call may go ahead, else the seconds until it
        would be allowed.
        """
        limit = self.limits.get(endpoint)
        if limit is None:
            return None
        now = self.clock()
        key = (visitor, endpoint)
        stamps = self._logs.get(key)
        if stamps is None:
            stamps = self._logs[key] = deque()
        self._logs.move_to_end(key)
        while stamps and stamps[0] <= now - limit.period:
            stamps.popleft()
        if len(stamps) >= limit.calls:
            return stamps[0] + limit.period - now
        stamps.append(now)
        while len(self._logs) > self.max_visitors:
            self._logs.popitem(last=False)

        return None


def merge_limits(
    overrides: Mapping[str, RateLimit | None] | None,
) -> dict[str, RateLimit | None]:
    """The default visitor limits with ``overrides`` applied."""
    limits = dict(DEFAULT_VISITOR_LIMITS)
    for name, limit in (overrides or {}).items():
        if name not in limits:
            known = ", ".join(sorted(limits))
            msg = f"visitor_limits has an unknown endpoint {name!r} ({known})"
            raise ConfigurationError(msg)
        if limit is not None and not isinstance(limit, RateLimit):
            msg = f"visitor_limits[{name!r}] must be a RateLimit or None"
            raise ConfigurationError(msg)
        limits[name] = limit

    return limits
