"""
A faithful in-memory Vicket server, for tests, demos and benchmarks.

:class:`Sandbox` serves the public support API on a loopback port from
memory: the five endpoints with their shapes, statuses and error codes,
multipart uploads streamed through a hash, ticket links emailed to an
outbox, rate limits counted four ways, faults a test can switch on, and
control endpoints under ``/_sandbox``.  It shares no code with
the client, so the two check each other.
"""

from ._app import make_app
from ._clock import SandboxClock, format_timestamp
from ._endpoints import ANY_ENDPOINT, API_PREFIX, ENDPOINTS
from ._faults import FAULT_KINDS, Fault, FaultInjector, FaultKind
from ._process import SandboxProcess
from ._ratelimit import (
    DEFAULT_RATE_LIMITS,
    RATE_LIMIT_MODES,
    RateDecision,
    RateLimiter,
    RateLimitMode,
)
from ._records import (
    AccessToken,
    Answer,
    Article,
    Attachment,
    Email,
    Faq,
    Message,
    Option,
    Question,
    RequestRecord,
    Template,
    Ticket,
    Website,
)
from ._seed import DEMO_API_KEY, DEMO_WEBSITE_NAME, demo_website, large_website
from ._server import Sandbox
from ._state import SandboxState, TicketReceipt
from ._validation import FILE_MARKER

__all__ = [
    "ANY_ENDPOINT",
    "API_PREFIX",
    "DEFAULT_RATE_LIMITS",
    "DEMO_API_KEY",
    "DEMO_WEBSITE_NAME",
    "ENDPOINTS",
    "FAULT_KINDS",
    "FILE_MARKER",
    "RATE_LIMIT_MODES",
    "AccessToken",
    "Answer",
    "Article",
    "Attachment",
    "Email",
    "Faq",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "Message",
    "Option",
    "Question",
    "RateDecision",
    "RateLimitMode",
    "RateLimiter",
    "RequestRecord",
    "Sandbox",
    "SandboxClock",
    "SandboxProcess",
    "SandboxState",
    "Template",
    "Ticket",
    "TicketReceipt",
    "Website",
    "demo_website",
    "format_timestamp",
    "large_website",
    "make_app",
]
