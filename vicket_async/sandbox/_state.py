"""The sandbox's in-memory store and the helpers a support agent uses."""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import attrs

from ._clock import SandboxClock
from ._faults import FaultInjector
from ._ratelimit import RateLimiter
from ._records import (
    AccessToken,
    Answer,
    Attachment,
    AuthorType,
    Email,
    EmailKind,
    Message,
    Question,
    RequestRecord,
    Template,
    Ticket,
    Website,
)

__all__ = [
    "DEFAULT_LINK_TEMPLATE",
    "MIB",
    "SandboxState",
    "Shape",
    "TicketReceipt",
    "new_id",
]

Shape = Literal["vendor", "integration"]
MIB = 1024 * 1024
DEFAULT_LINK_TEMPLATE = "{origin}/_sandbox/view?token={token}"
_SHAPES = ("vendor", "integration")


def new_id(prefix: str) -> str:
    """A fresh identifier such as ``tick_3f9a0c21d4e5b6a7``."""
    return f"{prefix}_{secrets.token_hex(8)}"


@attrs.frozen
class TicketReceipt:
    """What creating a ticket produced."""

    ticket: Ticket
    token: str
    email: Email | None

    @property
    def email_limit_reached(self) -> bool:
        """Whether the reporter's email limit kept the link from going out."""
        return self.email is None


class SandboxState:
    """
    Everything the sandbox knows, kept in memory.

    Besides the websites, tickets and tokens that the API handlers read
    and write, the state keeps the outbox (emails that would have been
    sent) and a log of every request that reached the API, and it offers
    the actions a support agent would take: reply, post a system message,
    change status or priority, expire a link.  It also holds the sandbox
    clock, the rate limiter and the armed faults.
    """

    def __init__(
        self,
        *,
        clock: SandboxClock | None = None,
        shape: Shape = "vendor",
        sparse_init: bool = False,
        token_ttl: float | None = None,
        email_limit: int | None = 20,
        email_window: float = 3600.0,
        keep_file_bytes: int = MIB,
        link_template: str = DEFAULT_LINK_TEMPLATE,
        agent_name: str = "Sam from Support",
        rate_limiter: RateLimiter | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        self.clock = clock if clock is not None else SandboxClock()
        self.rate_limiter = (
            rate_limiter if rate_limiter is not None else RateLimiter()
        )
        self.faults = faults if faults is not None else FaultInjector()
        self.shape = shape
        self.sparse_init = sparse_init
        self.token_ttl = token_ttl
        self.email_limit = email_limit
        self.email_window = email_window
        self.keep_file_bytes = keep_file_bytes
        self.link_template = link_template
        self.agent_name = agent_name
        self.websites: dict[str, Website] = {}
        self.tickets: dict[str, Ticket] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.files: dict[str, Attachment] = {}
        self.outbox: list[Email] = []
        self.requests: list[RequestRecord] = []
        self.email_listeners: list[Callable[[Email], None]] = []

    def __repr__(self) -> str:
        return (
            f"<SandboxState websites={len(self.websites)} "
            f"tickets={len(self.tickets)} outbox={len(self.outbox)} "
            f"requests={len(self.requests)}>"
        )

    @property
    def shape(self) -> Shape:
        """Which wire shape the API answers in."""
        return self._shape

    @shape.setter
    def shape(self, shape: Shape) -> None:
        if shape not in _SHAPES:
            msg = f"shape must be 'vendor' or 'integration', not {shape!r}"
            raise ValueError(msg)
        self._shape = shape

    # Websites.

    def add_website(self, website: Website) -> Website:
        """Serve *website* to requests that carry its API key."""
        if website.api_key in self.websites:
            msg = f"a website already uses the API key {website.api_key!r}"
            raise ValueError(msg)
        self.websites[website.api_key] = website

        return website

    def website_for_key(self, api_key: str | None) -> Website | None:
        """The website behind *api_key*, if any."""
        if not api_key:
            return None

        return self.websites.get(api_key)

    # Tickets, as the API handlers create and read them.

    def create_ticket(
        self,
        website: Website,
        *,
        email: str,
        title: str,
        template: Template,
        answers: Sequence[
            tuple[Question, str | bool | None, Sequence[Attachment]]
        ],
        origin: str = "",
    ) -> TicketReceipt:
        """
        Store a new ticket and email its secure link to the reporter.

        No email goes out once the reporter reached the email limit; the
        ticket is created all the same.
        """
        now = self.clock.now()
        ticket = Ticket(
            id=new_id("tick"),
            website_key=website.api_key,
            reporter_email=email,
            title=title,
            template_id=template.id,
            created_at=now,
        )
        for question, value, files in answers:
            ticket.answers.append(
                Answer(
                    id=new_id("ans"),
                    question_id=question.id,
                    question_label=question.label,
                    answer=value,
                    attachments=tuple(files),
                )
            )
        ticket.messages.append(
            Message(
                id=new_id("msg"),
                content=_first_message(title, answers),
                author_type="reporter",
                author_name=email,
                created_at=now,
            )
        )
        self.tickets[ticket.id] = ticket
        token = self._issue_token(ticket)
        subject = f"[{website.name}] We received your request: {title}"
        sent = self._send_email(
            ticket, token, subject, kind="ticket-created", origin=origin
        )

        return TicketReceipt(ticket=ticket, token=token.token, email=sent)

    def resolve_token(
        self, token: str | None, website: Website
    ) -> tuple[Ticket, AccessToken] | None:
        """The ticket *token* opens on *website*, expired or not."""
        record = self.tokens.get(token or "")
        if record is None:
            return None
        ticket = self.tickets.get(record.ticket_id)
        if ticket is None or ticket.website_key != website.api_key:
            return None

        return ticket, record

    def send_new_link(self, ticket: Ticket, origin: str = "") -> Email | None:
        """
        Issue a fresh token for *ticket* and email it to the reporter.

        This is what the service does when someone opens an expired link.
        Returns ``None`` when the email limit kept the email from going
        out.
        """
        token = self._issue_token(ticket)
        website = self.websites.get(ticket.website_key)
        name = website.name if website is not None else "Support"
        subject = f"[{name}] Your new link for: {ticket.title}"

        return self._send_email(
            ticket, token, subject, kind="new-link", origin=origin
        )

    def add_reporter_message(
        self,
        ticket: Ticket | str,
        content: str,
        attachments: Iterable[Attachment] = (),
    ) -> Message:
        """Append the reporter's reply to *ticket*."""
        found = self.ticket(ticket)

        return self._append(
            found, content, "reporter", found.reporter_email, attachments
        )

    # Support-agent helpers.

    def agent_reply(
        self,
        ticket: Ticket | str,
        content: str,
        *,
        author_name: str | None = None,
        attachments: Iterable[Attachment] = (),
    ) -> Message:
        """Post a support agent's reply on *ticket*."""
        name = author_name if author_name is not None else self.agent_name

        return self._append(
            self.ticket(ticket), content, "agent", name, attachments
        )

    def system_message(self, ticket: Ticket | str, content: str) -> Message:
        """Post an automatic message (status changes and the like)."""
        found = self.ticket(ticket)
        website = self.websites.get(found.website_key)
        name = website.name if website is not None else "System"

        return self._append(found, content, "system", name, ())

    def set_status(self, ticket: Ticket | str, label: str) -> Ticket:
        """Change the status label of *ticket*, e.g. to ``"Resolved"``."""
        found = self.ticket(ticket)
        found.status = label

        return found

    def set_priority(self, ticket: Ticket | str, label: str) -> Ticket:
        """Change the priority label of *ticket*, e.g. to ``"High"``."""
        found = self.ticket(ticket)
        found.priority = label

        return found

    def expire_token(self, token: str) -> AccessToken:
        """Make *token* expired from this moment on."""
        try:
            record = self.tokens[token]
        except KeyError:
            msg = "the sandbox never issued that token"
            raise KeyError(msg) from None
        record.expires_at = self.clock.now()

        return record

    def expire_ticket_tokens(self, ticket: Ticket | str) -> list[str]:
        """Expire every link of *ticket*; returns the expired tokens."""
        found = self.ticket(ticket)
        for token in found.tokens:
            self.expire_token(token)

        return list(found.tokens)

    def ticket(self, ticket: Ticket | str) -> Ticket:
        """The ticket with this id (a ticket passes through unchanged)."""
        if isinstance(ticket, Ticket):
            return ticket
        try:
            return self.tickets[ticket]
        except KeyError:
            msg = f"no ticket with the id {ticket!r}"
            raise KeyError(msg) from None

    def all_tickets(self) -> list[Ticket]:
        """Every ticket, oldest first."""
        return list(self.tickets.values())

    def tickets_for(self, email: str) -> list[Ticket]:
        """The tickets *email* reported, oldest first."""
        wanted = email.casefold()

        return [
            ticket
            for ticket in self.tickets.values()
            if ticket.reporter_email.casefold() == wanted
        ]

    def ticket_for_token(self, token: str) -> Ticket | None:
        """The ticket a token belongs to, whichever website it is on."""
        record = self.tokens.get(token)
        if record is None:
            return None

        return self.tickets.get(record.ticket_id)

    # The outbox.

    def emails_to(self, email: str) -> list[Email]:
        """The emails sent to *email*, oldest first."""
        wanted = email.casefold()

        return [mail for mail in self.outbox if mail.to.casefold() == wanted]

    def latest_email(self, email: str) -> Email | None:
        """The last email sent to *email*, if any."""
        sent = self.emails_to(email)

        return sent[-1] if sent else None

    def latest_token(self, email: str) -> str | None:
        """The token in the last email sent to *email*, if any."""
        mail = self.latest_email(email)

        return mail.token if mail is not None else None

    def clear_outbox(self) -> None:
        """Forget every email sent so far, which also resets email limits."""
        self.outbox.clear()

    # The request log.

    def record_request(self, record: RequestRecord) -> None:
        """Add *record* to the request log."""
        self.requests.append(record)

    def requests_for(self, endpoint: str) -> list[RequestRecord]:
        """The logged requests to *endpoint* (e.g. ``"init"``)."""
        return [rec for rec in self.requests if rec.endpoint == endpoint]

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.requests.clear()

    # Files.

    def store_file(self, attachment: Attachment) -> Attachment:
        """Keep *attachment* so it can be served back by id."""
        self.files[attachment.id] = attachment

        return attachment

    def reset(self) -> None:
        """
        Start afresh, keeping only the websites and the settings.

        Tickets, tokens, files, emails, the request log, rate-limit counts
        and armed faults are all forgotten.
        """
        self.rate_limiter.reset()
        self.faults.clear()
        self.faults.clear_jitter()
        self.tickets.clear()
        self.tokens.clear()
        self.files.clear()
        self.outbox.clear()
        self.requests.clear()

    # Internals.

    def _issue_token(self, ticket: Ticket) -> AccessToken:
        now = self.clock.now()
        expires_at = None if self.token_ttl is None else now + self.token_ttl
        record = AccessToken(
            token=secrets.token_urlsafe(32),
            ticket_id=ticket.id,
            issued_at=now,
            expires_at=expires_at,
        )
        self.tokens[record.token] = record
        ticket.tokens.append(record.token)

        return record

    def _emails_in_window(self, address: str) -> int:
        since = self.clock.now() - self.email_window

        return sum(
            1 for mail in self.emails_to(address) if mail.sent_at > since
        )

    def _send_email(
        self,
        ticket: Ticket,
        token: AccessToken,
        subject: str,
        *,
        kind: EmailKind,
        origin: str,
    ) -> Email | None:
        address = ticket.reporter_email
        if (
            self.email_limit is not None
            and self._emails_in_window(address) >= self.email_limit
        ):
            return None
        mail = Email(
            to=address,
            subject=subject,
            token=token.token,
            link=self.link_template.format(origin=origin, token=token.token),
            kind=kind,
            ticket_id=ticket.id,
            sent_at=self.clock.now(),
        )
        self.outbox.append(mail)
        for listener in list(self.email_listeners):
            listener(mail)

        return mail

    def _append(
        self,
        ticket: Ticket,
        content: str,
        author_type: AuthorType,
        author_name: str,
        attachments: Iterable[Attachment],
    ) -> Message:
        message = Message(
            id=new_id("msg"),
            content=content,
            author_type=author_type,
            author_name=author_name,
            created_at=self.clock.now(),
            attachments=list(attachments),
        )
        ticket.messages.append(message)

        return message


def _first_message(
    title: str,
    answers: Sequence[tuple[Question, str | bool | None, object]],
) -> str:
    """
    The reporter's first message: their long answer, else the title.

    The service shows the first TEXTAREA answer as the opening message of
    the thread, as HTML paragraphs.
    """
    for question, value, _ in sorted(answers, key=lambda a: a[0].order):
        if (
            question.type == "TEXTAREA"
            and isinstance(value, str)
            and value.strip()
        ):
            return _as_html(value)

    return _as_html(title)


def _as_html(text: str) -> str:
    paragraphs = [part.strip() for part in text.strip().split("\n\n")]

    return "".join(
        "<p>" + html.escape(part).replace("\n", "<br>") + "</p>"
        for part in paragraphs
        if part
    )
