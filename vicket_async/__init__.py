"""
vicket-async: an asyncio-first client for the Vicket public support API.

Everything a user needs is importable from here; the modules with a leading
underscore are private and may change without notice.
"""

from ._client import Response, ResponseMethods, VicketClient
from ._events import (
    BudgetWaited,
    Event,
    ModeChanged,
    RateLimited,
    RetryScheduled,
)
from ._models import (
    Answer,
    Article,
    Attachment,
    AuthorType,
    Faq,
    Message,
    Option,
    Question,
    QuestionType,
    SupportPage,
    Template,
    Ticket,
    TicketCreated,
    Website,
)
from ._protocol.budget import BudgetStatus, Mode, RateLimit
from ._protocol.retries import RetryPolicy
from ._redis_budget import BudgetStoreError, RedisBudgetStore
from ._transport import Timeouts
from ._uploads import FileUpload
from ._version import __version__
from .exceptions import (
    AnswerProblem,
    AnswerValidationError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientStateError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TicketLinkExpiredError,
    TransportError,
    UnexpectedResponseError,
    UnknownNameError,
    UnsafeRedirectError,
    UploadError,
    VicketConnectionError,
    VicketError,
    VicketTimeoutError,
)

__all__ = [
    "APIError",
    "Answer",
    "AnswerProblem",
    "AnswerValidationError",
    "Article",
    "Attachment",
    "AuthenticationError",
    "AuthorType",
    "BadRequestError",
    "BudgetStatus",
    "BudgetStoreError",
    "BudgetWaited",
    "ClientStateError",
    "ConfigurationError",
    "Event",
    "Faq",
    "FileUpload",
    "Message",
    "Mode",
    "ModeChanged",
    "NotFoundError",
    "Option",
    "Question",
    "QuestionType",
    "RateLimit",
    "RateLimitError",
    "RateLimited",
    "RedisBudgetStore",
    "Response",
    "ResponseMethods",
    "RetryPolicy",
    "RetryScheduled",
    "ServerError",
    "SupportPage",
    "Template",
    "Ticket",
    "TicketCreated",
    "TicketLinkExpiredError",
    "Timeouts",
    "TransportError",
    "UnexpectedResponseError",
    "UnknownNameError",
    "UnsafeRedirectError",
    "UploadError",
    "VicketClient",
    "VicketConnectionError",
    "VicketError",
    "VicketTimeoutError",
    "Website",
    "__version__",
]

# Show public names in reprs and tracebacks, not the private modules.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("vicket_async._"):
        _obj.__module__ = "vicket_async"
del _name, _obj
