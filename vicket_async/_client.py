"""`VicketClient`: the five endpoints as typed async methods."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import aiohttp
import attrs
from multidict import CIMultiDictProxy

from ._models import (
    Article,
    Message,
    SupportPage,
    Template,
    Ticket,
    TicketCreated,
)
from ._protocol import answers as checks
from ._protocol.codec import DecodeError, decode
from ._protocol.endpoints import (
    DEFAULT_BASE_URL,
    Endpoint,
    build_url,
    check_base_url,
)
from ._protocol.responses import excerpt, read_envelope
from ._transport import RawResponse, Timeouts, Transport
from ._uploads import FileLike
from ._version import __version__
from .exceptions import (
    AnswerProblem,
    AnswerValidationError,
    ClientStateError,
    ConfigurationError,
    UnexpectedResponseError,
)

__all__ = ["Response", "VicketClient"]

T = TypeVar("T")

_DEFAULT_TIMEOUTS = Timeouts()


@attrs.frozen(kw_only=True)
class Response(Generic[T]):
    """A decoded answer together with its HTTP status and headers."""

    data: T
    status: int
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    elapsed: float


class VicketClient:
    """
    An async client for one Vicket website's public support API.

    Use it as an async context manager, or call `aclose` when done::

        async with VicketClient() as vicket:
            page = await vicket.init()

    Args:
        api_key: the website's API key; defaults to ``VICKET_API_KEY``.
        base_url: the API origin; defaults to ``VICKET_BASE_URL``, then
            ``https://api.vicket.app``.
        session: an aiohttp session to use instead of creating one; the
            client never closes a session it was lent.
        timeout: a `Timeouts`, or seconds for the whole request.
        allow_insecure_http: allow ``http://`` to hosts other than loopback.
        strict: reject answers with fields this SDK does not know, for
            testing a contract against the API.

    Raises:
        ConfigurationError: no API key, or an unusable ``base_url``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: Timeouts | float = _DEFAULT_TIMEOUTS,
        allow_insecure_http: bool = False,
        strict: bool = False,
    ) -> None:
        key = api_key or os.environ.get("VICKET_API_KEY", "")
        if not key.strip():
            msg = (
                "no API key: pass api_key=... or set the VICKET_API_KEY "
                "environment variable to the website's key"
            )
            raise ConfigurationError(msg)
        base = (
            base_url or os.environ.get("VICKET_BASE_URL") or DEFAULT_BASE_URL
        )
        try:
            self._base_url = check_base_url(
                base, allow_insecure_http=allow_insecure_http
            )
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        if not isinstance(timeout, Timeouts):
            timeout = Timeouts(total=float(timeout))
        self._transport = Transport(
            base_url=self._base_url,
            api_key=key.strip(),
            session=session,
            timeouts=timeout,
            user_agent=f"vicket-async/{__version__}",
        )
        self._strict = strict
        self._loop: asyncio.AbstractEventLoop | None = None
        self._templates: dict[str, Template] = {}
        self.with_response = ResponseMethods(self)

    def __repr__(self) -> str:
        return f"<VicketClient base_url={self._base_url!r}>"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def __aenter__(self) -> Self:
        self._bind_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's HTTP session; calling it again does nothing."""
        if self._transport.closed:
            return
        self._bind_loop()
        await self._transport.aclose()

    # The endpoints. Each returns the decoded data; `with_response` has the
    # same methods returning a `Response` with the status and headers too.

    async def init(self) -> SupportPage:
        """Load the website's name, ticket templates, articles and FAQs."""
        return (await self._init()).data

    async def create_ticket(
        self,
        *,
        email: str,
        title: str,
        template: Template | str,
        answers: Mapping[str, Any] | None = None,
    ) -> TicketCreated:
        """
        Open a ticket; Vicket emails the reporter a link to its thread.

        ``template`` is a `Template` or its id. Answers are keyed by question
        id: strings for TEXT, TEXTAREA and SELECT (an option's value), a bool
        for CHECKBOX, a ``datetime.date`` or ISO date for DATE, and a
        `FileUpload` or path for FILE. When the template is known (passed
        in, or loaded by an earlier `init` of this client) the answers are
        checked against it first.

        Raises:
            AnswerValidationError: listing every problem; nothing was sent.
        """
        return (
            await self._create_ticket(
                email=email, title=title, template=template, answers=answers
            )
        ).data

    async def get_ticket(self, token: str) -> Ticket:
        """
        Read a ticket's thread with the secure token from the email.

        Raises:
            TicketLinkExpiredError: the link expired; Vicket has emailed a
                new one to the reporter.
        """
        return (await self._get_ticket(token)).data

    async def reply(
        self,
        token: str,
        content: str,
        *,
        attachments: Iterable[FileLike] = (),
    ) -> Message:
        """Post the reporter's reply to a ticket, with optional files."""
        return (await self._reply(token, content, attachments)).data

    async def get_article(self, slug: str) -> Article:
        """Read one published article by its slug."""
        return (await self._get_article(slug)).data

    # Implementation.

    async def _init(self) -> Response[SupportPage]:
        response = await self._call(Endpoint.INIT, SupportPage)
        self._templates = {t.id: t for t in response.data.templates}

        return response

    async def _create_ticket(
        self,
        *,
        email: str,
        title: str,
        template: Template | str,
        answers: Mapping[str, Any] | None,
    ) -> Response[TicketCreated]:
        endpoint = Endpoint.CREATE_TICKET
        known: Template | None
        if isinstance(template, Template):
            template_id, known = template.id, template
        else:
            template_id, known = template, self._templates.get(template)
        json_answers, files, problems = checks.check_ticket(
            email=email,
            title=title,
            template_id=template_id,
            template=known,
            answers=answers or {},
        )
        if problems:
            raise AnswerValidationError(problems, endpoint=endpoint)
        body = checks.ticket_body(
            email=email,
            title=title,
            template_id=template_id,
            answers=json_answers,
            files=files,
        )

        return await self._call(endpoint, TicketCreated, body=body)

    async def _get_ticket(self, token: str) -> Response[Ticket]:
        endpoint = Endpoint.GET_TICKET
        _check_token(endpoint, token)

        return await self._call(endpoint, Ticket, token=token)

    async def _reply(
        self, token: str, content: str, attachments: Iterable[FileLike]
    ) -> Response[Message]:
        endpoint = Endpoint.REPLY
        files, problems = checks.check_reply(content, attachments)
        if not isinstance(token, str) or not token.strip():
            problems.insert(0, AnswerProblem("token", "the token is empty"))
        if problems:
            raise AnswerValidationError(problems, endpoint=endpoint)
        body = checks.reply_body(content, files)

        return await self._call(endpoint, Message, token=token, body=body)

    async def _get_article(self, slug: str) -> Response[Article]:
        endpoint = Endpoint.GET_ARTICLE
        if not isinstance(slug, str) or not slug.strip():
            problem = AnswerProblem("slug", "the slug is empty")
            raise AnswerValidationError([problem], endpoint=endpoint)

        return await self._call(endpoint, Article, slug=slug)

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            msg = (
                "this VicketClient was first used in another event loop "
                "(another asyncio.run() or thread). A client and its "
                "connections belong to one loop: create one client per "
                "event loop, inside that loop"
            )
            raise ClientStateError(msg)

    async def _call(
        self,
        endpoint: Endpoint,
        model: type[T],
        *,
        token: str | None = None,
        slug: str | None = None,
        body: checks.Body | None = None,
    ) -> Response[T]:
        self._bind_loop()
        secrets = (token,) if token else ()
        url = build_url(self._base_url, endpoint, token=token, slug=slug)
        raw = await self._transport.send(endpoint, url, body, secrets=secrets)
        data = read_envelope(
            endpoint, raw.status, raw.headers, raw.body, secrets=secrets
        )

        return Response(
            data=self._decode(endpoint, raw, data, model, secrets),
            status=raw.status,
            headers=raw.headers,
            elapsed=raw.elapsed,
        )

    def _decode(
        self,
        endpoint: Endpoint,
        raw: RawResponse,
        data: Any,
        model: type[T],
        secrets: tuple[str, ...],
    ) -> T:
        try:
            return decode(data, model, strict=self._strict)
        except DecodeError as error:
            msg = f"{raw.status}: the answer {error}"
            raise UnexpectedResponseError(
                msg,
                endpoint=endpoint,
                status=raw.status,
                body_excerpt=excerpt(raw.body, secrets),
                headers=raw.headers,
            ) from None


def _check_token(endpoint: Endpoint, token: str) -> None:
    if not isinstance(token, str) or not token.strip():
        problem = AnswerProblem("token", "the token is empty")
        raise AnswerValidationError([problem], endpoint=endpoint)


class ResponseMethods:
    """
    The client's endpoints, returning a `Response` with status and headers.

    Reach it as ``client.with_response``, for example to read the rate-limit
    headers: ``(await vicket.with_response.init()).headers``.
    """

    def __init__(self, client: VicketClient) -> None:
        self._client = client

    async def init(self) -> Response[SupportPage]:
        return await self._client._init()

    async def create_ticket(
        self,
        *,
        email: str,
        title: str,
        template: Template | str,
        answers: Mapping[str, Any] | None = None,
    ) -> Response[TicketCreated]:
        return await self._client._create_ticket(
            email=email, title=title, template=template, answers=answers
        )

    async def get_ticket(self, token: str) -> Response[Ticket]:
        return await self._client._get_ticket(token)

    async def reply(
        self,
        token: str,
        content: str,
        *,
        attachments: Iterable[FileLike] = (),
    ) -> Response[Message]:
        return await self._client._reply(token, content, attachments)

    async def get_article(self, slug: str) -> Response[Article]:
        return await self._client._get_article(slug)
