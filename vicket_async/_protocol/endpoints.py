"""The five endpoints, how their URLs are built, and how tokens are hidden."""

from __future__ import annotations

import enum
import ipaddress
import re
from urllib.parse import quote, urlsplit

API_PREFIX = "/api/v1/public/support"
DEFAULT_BASE_URL = "https://api.vicket.app"
REDACTED = "[redacted]"


class Endpoint(enum.Enum):
    """
    One endpoint of the public support API.

    The value is the name of the client method that calls it, which is also
    the key used for rate limits.
    """

    INIT = "init"
    CREATE_TICKET = "create_ticket"
    GET_TICKET = "get_ticket"
    REPLY = "reply"
    GET_ARTICLE = "get_article"

    @property
    def method(self) -> str:
        return _ROUTES[self][0]

    @property
    def path(self) -> str:
        return _ROUTES[self][1]

    @property
    def label(self) -> str:
        """What error messages and logs call it: ``"GET /init"``."""
        return f"{self.method} {self.path}"

    @property
    def is_write(self) -> bool:
        return self.method == "POST"


_ROUTES: dict[Endpoint, tuple[str, str]] = {
    Endpoint.INIT: ("GET", "/init"),
    Endpoint.CREATE_TICKET: ("POST", "/tickets"),
    Endpoint.GET_TICKET: ("GET", "/ticket"),
    Endpoint.REPLY: ("POST", "/ticket/messages"),
    Endpoint.GET_ARTICLE: ("GET", "/articles/{slug}"),
}


def build_url(
    base_url: str,
    endpoint: Endpoint,
    *,
    token: str | None = None,
    slug: str | None = None,
) -> str:
    """
    Join the base URL, the API prefix and the endpoint's path.

    The slug is percent-encoded as one path segment and the token as one
    query value, so neither can reach another path or add a parameter.
    """
    path = endpoint.path
    if slug is not None:
        segment = quote(slug, safe="")
        if not segment.strip("."):
            # "." and ".." would be read as the current or parent folder.
            segment = segment.replace(".", "%2E")
        path = path.replace("{slug}", segment)
    url = f"{base_url.rstrip('/')}{API_PREFIX}{path}"
    if token is not None:
        url = f"{url}?token={quote(token, safe='')}"

    return url


_TOKEN_IN_QUERY = re.compile(r"(?i)([?&]token=)[^&#\s\"'<>]*")


def redact_url(url: str) -> str:
    """Hide the value of any ``token`` query parameter."""
    return _TOKEN_IN_QUERY.sub(rf"\g<1>{REDACTED}", url)


def redact_text(text: str, secrets: tuple[str, ...]) -> str:
    """Hide token query values and each of ``secrets`` inside ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, REDACTED)

    return redact_url(text)


def origin_of(url: str) -> tuple[str, str, int]:
    """The (scheme, host, port) triple that decides where the key may go."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)

    return scheme, (parts.hostname or "").lower(), port


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    """
    Return ``base_url`` without a trailing slash, or explain what is wrong.

    Raises ``ValueError`` with a message meant for a person.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = (
            f"base_url must be an http(s) origin such as "
            f"{DEFAULT_BASE_URL!r}, got {redact_url(base_url)!r}"
        )
        raise ValueError(msg)
    if parts.query or parts.fragment:
        msg = "base_url must not carry a query string or a fragment"
        raise ValueError(msg)
    if (
        parts.scheme == "http"
        and not allow_insecure_http
        and not is_loopback_host(parts.hostname)
    ):
        msg = (
            f"refusing plain http to {parts.hostname}: the API key would "
            f"travel unencrypted. Use https, or pass "
            f"allow_insecure_http=True if you really mean it"
        )
        raise ValueError(msg)

    return base_url.rstrip("/")
