"""Where the API lives and the names the sandbox gives its endpoints."""

from __future__ import annotations

__all__ = ["ANY_ENDPOINT", "API_PREFIX", "ENDPOINTS", "check_endpoint"]

API_PREFIX = "/api/v1/public/support"
# The names used by the request log, rate limits and fault injection.
ENDPOINTS = ("init", "create_ticket", "get_ticket", "reply", "article")
ANY_ENDPOINT = "*"


def check_endpoint(endpoint: str, *, allow_any: bool = False) -> str:
    """Return *endpoint* if it names an endpoint, else raise ValueError."""
    if endpoint in ENDPOINTS or (allow_any and endpoint == ANY_ENDPOINT):
        return endpoint
    known = ", ".join(ENDPOINTS)
    if allow_any:
        known += f" or {ANY_ENDPOINT!r} for all of them"
    msg = f"unknown endpoint {endpoint!r}; use one of {known}"
    raise ValueError(msg)
