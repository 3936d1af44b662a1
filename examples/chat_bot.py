"""
A chat bot that files what people write as tickets and replies.

Run it with one command::

    python examples/chat_bot.py

A simulated chat stream delivers messages from many people at once. The
first message of each conversation opens a ticket; the ones after it are
posted as replies. Every conversation has a coroutine of its own, and they
all share the client's rate budgets: the website may open 10 tickets and
post 10 replies a minute, and the client makes the calls wait their turn so
that the server never has to refuse one.

So that it finishes in seconds, the bot starts a sandbox whose clock runs 60
times faster than real time, and gives the client the same limits per real
second. The ticket links that Vicket emails arrive in the bot's mailbox,
which here is the sandbox's outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import attrs

from vicket_async import (
    BudgetWaited,
    Event,
    RateLimit,
    RateLimited,
    VicketClient,
)
from vicket_async.sandbox import Email, Sandbox

TEMPLATE = "tpl_feature"
OPENERS = (
    "Could the dashboard have a dark mode?",
    "Please let me export my invoices as CSV",
    "I would love keyboard shortcuts in the editor",
    "Can teams share saved searches?",
)
FOLLOW_UPS = (
    "Any news on this?",
    "Adding a detail: I use it every day.",
    "Thanks for looking into it!",
)


@attrs.frozen
class ChatMessage:
    conversation: int
    text: str


class Mailbox:
    """Where the bot's mail arrives: one ticket link per address."""

    def __init__(self) -> None:
        self._tokens: dict[str, asyncio.Future[str]] = {}

    def _slot(self, address: str) -> asyncio.Future[str]:
        if address not in self._tokens:
            loop = asyncio.get_running_loop()
            self._tokens[address] = loop.create_future()
        return self._tokens[address]

    def deliver(self, mail: Email) -> None:
        slot = self._slot(mail.to)
        if not slot.done():
            slot.set_result(mail.token)

    async def token_for(self, address: str) -> str:
        return await asyncio.wait_for(self._slot(address), timeout=30)


class Stats:
    """What the event hook and the handlers saw."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done: Counter[str] = Counter()
        self.waits: Counter[str] = Counter()
        self.longest_wait = 0.0
        self.refused = 0

    def on_event(self, event: Event) -> None:
        if isinstance(event, BudgetWaited):
            self.waits[event.endpoint] += 1
            self.longest_wait = max(self.longest_wait, event.seconds)
        elif isinstance(event, RateLimited):
            self.refused += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started


async def chat_stream(
    conversations: int, follow_ups: int, seed: int
) -> AsyncIterator[ChatMessage]:
    """Messages from many people, interleaved as a busy chat would be."""
    rng = random.Random(seed)
    pending = dict.fromkeys(range(conversations), 1 + follow_ups)
    opened: set[int] = set()
    while pending:
        conversation = rng.choice(sorted(pending))
        if conversation in opened:
            text = rng.choice(FOLLOW_UPS)
        else:
            text = rng.choice(OPENERS)
            opened.add(conversation)
        pending[conversation] -= 1
        if not pending[conversation]:
            del pending[conversation]
        yield ChatMessage(conversation, text)
        await asyncio.sleep(rng.uniform(0, 0.005))


class Bot:
    """Turns each conversation into one ticket and its replies."""

    def __init__(
        self, client: VicketClient, mailbox: Mailbox, stats: Stats
    ) -> None:
        self.client = client
        self.mailbox = mailbox
        self.stats = stats
        self.queues: dict[int, asyncio.Queue[ChatMessage | None]] = {}

    async def run(self, stream: AsyncIterator[ChatMessage]) -> None:
        async with asyncio.TaskGroup() as tasks:
            async for message in stream:
                queue = self.queues.get(message.conversation)
                if queue is None:
                    queue = self.queues[message.conversation] = asyncio.Queue()
                    tasks.create_task(self.converse(message.conversation))
                queue.put_nowait(message)
            for queue in self.queues.values():
                queue.put_nowait(None)

    async def converse(self, conversation: int) -> None:
        queue = self.queues[conversation]
        address = f"chat-{conversation:03d}@bot.example"
        token: str | None = None
        while (message := await queue.get()) is not None:
            if token is None:
                await self.client.create_ticket(
                    email=address,
                    title=message.text[:60],
                    template=TEMPLATE,
                    answers={"q_idea": message.text, "q_contact_ok": True},
                )
                self.report("ticket", conversation)
                token = await self.mailbox.token_for(address)
            else:
                await self.client.reply(token, message.text)
                self.report("reply", conversation)

    def report(self, kind: str, conversation: int) -> None:
        self.stats.done[kind] += 1
        _say(
            f"{self.stats.elapsed():6.2f} s  {kind:<6} #"
            f"{self.stats.done[kind]:<3} conversation {conversation}"
        )


async def run(conversations: int, follow_ups: int, scale: float) -> bool:
    # A minute of the sandbox's clock passes in 60 / scale real seconds.
    period = 60.0 / scale
    limits = {
        "init": RateLimit(30, period),
        "create_ticket": RateLimit(10, period),
        "get_ticket": RateLimit(30, period),
        "reply": RateLimit(10, period),
    }
    stats = Stats()
    mailbox = Mailbox()
    async with Sandbox(time_scale=scale, email_limit=None) as sandbox:
        sandbox.state.email_listeners.append(mailbox.deliver)
        async with VicketClient(
            api_key=sandbox.api_key,
            base_url=sandbox.base_url,
            rate_limits=limits,
            on_event=stats.on_event,
        ) as client:
            # With the templates known, answers are checked before sending.
            await client.init()
            stats.started = time.monotonic()
            bot = Bot(client, mailbox, stats)
            await bot.run(chat_stream(conversations, follow_ups, seed=7))
        refused_by_server = sum(1 for r in sandbox.requests if r.status == 429)

    tickets, replies = stats.done["ticket"], stats.done["reply"]
    _say("")
    _say(f"conversations: {conversations}")
    _say(f"tickets created: {tickets}")
    _say(f"replies posted: {replies}")
    _say(
        f"took {stats.elapsed():.1f} s with 10 tickets and 10 replies "
        f"allowed per {period:g} s"
    )
    waited = sum(stats.waits.values())
    _say(
        f"calls that waited for budget: {waited} (longest wait "
        f"{stats.longest_wait:.2f} s)"
    )
    _say(f"429 answers from the server: {refused_by_server}")

    return (
        tickets == conversations
        and replies == conversations * follow_ups
        and refused_by_server == 0
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--follow-ups", type=int, default=2)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=60.0,
        help="sandbox seconds per real second",
    )
    args = parser.parse_args(argv)
    ok = asyncio.run(run(args.conversations, args.follow_ups, args.time_scale))

    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
