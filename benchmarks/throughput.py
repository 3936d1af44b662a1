"""
Requests per second against a sandbox in its own process.

Three clients call ``init``, ``get_ticket`` and ``create_ticket`` with the
same number of requests in flight: ours, plain aiohttp reading the JSON
with ``json.loads`` into dicts (no models, no checks: the floor a client on
aiohttp can reach), and httpx's AsyncClient decoding into pydantic v2
models. The sandbox has its rate limits and email limit off and serves a
generated website; the thread read by ``get_ticket`` holds agent replies.

Each case runs for a fixed time after a short warm-up, once per round, the
clients in a rotating order. Besides requests per second and latency, the
table shows the client process's CPU time per request, which is the
client's own cost even when the sandbox is the bottleneck, and how busy
the sandbox's process was (100% is one core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from vicket_async import VicketClient

from ._common import (
    Column,
    Report,
    format_ratio,
    median,
    percentile,
    ratio,
    sized,
)
from ._sandbox import (
    OpenTicket,
    SandboxProcess,
    clear_logs,
    open_ticket,
    ticket_body,
)

__all__ = ["CLIENTS", "DESCRIPTION", "ENDPOINTS", "add_arguments", "run"]

DESCRIPTION = "requests per second: ours, plain aiohttp, httpx + pydantic"

ENDPOINTS = ("init", "get_ticket", "create_ticket")
CLIENTS = {
    "ours": "ours (VicketClient)",
    "aiohttp": "aiohttp + json.loads",
    "httpx": "httpx + pydantic v2",
}
#: Ours must reach at least this share of plain aiohttp's throughput.
TARGET = 0.9
REPORTER = "bench@example.com"
_OUR_METHODS = ("init", "create_ticket", "get_ticket", "reply", "get_article")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="requests in flight at once (default 16)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds per case and round (3 / quick 0.3)",
    )
    parser.add_argument("--rounds", type=int, help="rounds (3 / quick 1)")
    parser.add_argument(
        "--endpoints",
        default=",".join(ENDPOINTS),
        help=f"comma-separated, from {', '.join(ENDPOINTS)}",
    )
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma-separated, from {', '.join(CLIENTS)}",
    )
    site = parser.add_argument_group("the sandbox's website")
    site.add_argument("--templates", type=int, default=10)
    site.add_argument("--questions", type=int, default=10)
    site.add_argument("--articles", type=int, default=20)
    site.add_argument("--article-bytes", type=int, default=2000)
    site.add_argument("--faqs", type=int, default=10)
    site.add_argument(
        "--agent-replies",
        type=int,
        default=10,
        help="messages added to the thread that get_ticket reads",
    )


def run(args: argparse.Namespace) -> Report:
    quick = args.quick
    endpoints = _choose(args.endpoints, ENDPOINTS, "endpoint")
    clients = _choose(args.clients, tuple(CLIENTS), "client")
    params: dict[str, Any] = {
        "concurrency": args.concurrency,
        "duration_s": sized(
            args.duration, full=3.0, quick=0.3, is_quick=quick
        ),
        "rounds": sized(args.rounds, full=3, quick=1, is_quick=quick),
        "templates": args.templates,
        "questions": args.questions,
        "articles": args.articles,
        "article_bytes": args.article_bytes,
        "faqs": args.faqs,
        "agent_replies": args.agent_replies,
    }
    site = {
        key: params[key]
        for key in (
            "templates",
            "questions",
            "articles",
            "article_bytes",
            "faqs",
        )
    }
    with SandboxProcess(**site) as sandbox:
        results = asyncio.run(_run(sandbox, endpoints, clients, params))

    return _report(results, endpoints, clients, params, quick=quick)


def _choose(value: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    chosen = tuple(item.strip() for item in value.split(",") if item.strip())
    unknown = [item for item in chosen if item not in known]
    if unknown or not chosen:
        msg = f"unknown {what} {unknown}; choose from {', '.join(known)}"
        raise SystemExit(msg)

    return chosen


class Driver(Protocol):
    async def call(self, endpoint: str) -> None: ...

    async def aclose(self) -> None: ...


class OurDriver:
    """Our client, used as an application would."""

    def __init__(self, sandbox: SandboxProcess, ticket: OpenTicket) -> None:
        self._client = VicketClient(
            api_key=sandbox.api_key,
            base_url=sandbox.base_url,
            # Every request goes out: no client-side rate budgets (they
            # would pace the run at the API's 30 a minute) and no cache
            # of init answers (it would answer without a request).
            rate_limits=dict.fromkeys(_OUR_METHODS),
            cache_ttl=None,
        )
        self._ticket = ticket

    async def start(self) -> None:
        # An application calls init first, so that create_ticket checks
        # the answers against the template, as it does here.
        await self._client.init()

    async def call(self, endpoint: str) -> None:
        if endpoint == "init":
            await self._client.init()
        elif endpoint == "get_ticket":
            await self._client.get_ticket(self._ticket.token)
        else:
            await self._client.create_ticket(
                email=REPORTER,
                title="Benchmark ticket",
                template=self._ticket.template_id,
                answers=self._ticket.answers,
            )

    async def aclose(self) -> None:
        await self._client.aclose()


class AiohttpDriver:
    """Plain aiohttp and ``json.loads``: no models and no checks."""

    def __init__(self, sandbox: SandboxProcess, ticket: OpenTicket) -> None:
        self._session = aiohttp.ClientSession(
            headers={"X-Api-Key": sandbox.api_key}
        )
        self._init = f"{sandbox.api_url}/init"
        self._thread = f"{sandbox.api_url}/ticket"
        self._tickets = f"{sandbox.api_url}/tickets"
        self._token = {"token": ticket.token}
        self._body = ticket_body(REPORTER, ticket.template_id, ticket.answers)

    async def call(self, endpoint: str) -> None:
        if endpoint == "init":
            request = self._session.get(self._init)
        elif endpoint == "get_ticket":
            request = self._session.get(self._thread, params=self._token)
        else:
            request = self._session.post(self._tickets, json=self._body)
        async with request as response:
            body = await response.read()
            status = response.status
        if status >= 300:
            msg = f"{endpoint} answered {status}: {body[:200]!r}"
            raise RuntimeError(msg)
        json.loads(body)

    async def aclose(self) -> None:
        await self._session.close()


class HttpxDriver:
    """httpx's AsyncClient, decoding into pydantic v2 models."""

    def __init__(
        self, sandbox: SandboxProcess, ticket: OpenTicket, concurrency: int
    ) -> None:
        # Imported here: the peer libraries are needed only to benchmark.
        import httpx

        from ._peers import (
            PydanticEnvelope,
            PydanticSupportPage,
            PydanticTicket,
            PydanticTicketCreated,
        )

        self._client = httpx.AsyncClient(
            headers={"X-Api-Key": sandbox.api_key},
            # As many pooled connections as requests in flight, like the
            # aiohttp clients, whose pools hold 100.
            limits=httpx.Limits(
                max_connections=concurrency,
                max_keepalive_connections=concurrency,
            ),
            timeout=30.0,
        )
        self._init = f"{sandbox.api_url}/init"
        self._thread = f"{sandbox.api_url}/ticket"
        self._tickets = f"{sandbox.api_url}/tickets"
        self._token = {"token": ticket.token}
        self._body = ticket_body(REPORTER, ticket.template_id, ticket.answers)
        self._page = PydanticEnvelope[PydanticSupportPage]
        self._ticket = PydanticEnvelope[PydanticTicket]
        self._created = PydanticEnvelope[PydanticTicketCreated]

    async def call(self, endpoint: str) -> None:
        if endpoint == "init":
            response = await self._client.get(self._init)
            model: Any = self._page
        elif endpoint == "get_ticket":
            response = await self._client.get(self._thread, params=self._token)
            model = self._ticket
        else:
            response = await self._client.post(self._tickets, json=self._body)
            model = self._created
        response.raise_for_status()
        model.model_validate_json(response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass
class Case:
    """What one client achieved on one endpoint, over all rounds."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    client_cpu: float = 0.0
    server_busy: list[float] = field(default_factory=list)


async def _run(
    sandbox: SandboxProcess,
    endpoints: tuple[str, ...],
    clients: tuple[str, ...],
    params: dict[str, Any],
) -> dict[tuple[str, str], Case]:
    ticket = await open_ticket(
        sandbox, email=REPORTER, agent_replies=params["agent_replies"]
    )
    params["init_bytes"] = ticket.init_bytes
    drivers: dict[str, Driver] = {}
    for name in clients:
        if name == "ours":
            ours = OurDriver(sandbox, ticket)
            await ours.start()
            drivers[name] = ours
        elif name == "aiohttp":
            drivers[name] = AiohttpDriver(sandbox, ticket)
        else:
            drivers[name] = HttpxDriver(sandbox, ticket, params["concurrency"])
    results = {
        (endpoint, name): Case() for endpoint in endpoints for name in clients
    }
    try:
        for round_ in range(params["rounds"]):
            for endpoint in endpoints:
                # A rotating order, so that no client always goes first.
                shift = round_ % len(clients)
                for name in clients[shift:] + clients[:shift]:
                    await clear_logs(sandbox)
                    await _measure(
                        drivers[name],
                        endpoint,
                        sandbox,
                        results[endpoint, name],
                        concurrency=params["concurrency"],
                        duration=params["duration_s"],
                    )
    finally:
        for driver in drivers.values():
            await driver.aclose()

    return results


async def _measure(
    driver: Driver,
    endpoint: str,
    sandbox: SandboxProcess,
    case: Case,
    *,
    concurrency: int,
    duration: float,
) -> None:
    # Warm-up: open the connections and fill the caches.
    await asyncio.gather(*(driver.call(endpoint) for _ in range(concurrency)))
    latencies: list[float] = []
    deadline = 0.0

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await driver.call(endpoint)
            latencies.append(time.perf_counter() - started)

    server_before = sandbox.cpu_seconds()
    cpu_before = time.process_time()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    server_after = sandbox.cpu_seconds()

    case.rates.append(len(latencies) / elapsed)
    case.latencies.extend(latencies)
    case.requests += len(latencies)
    case.client_cpu += cpu
    if server_before is not None and server_after is not None:
        case.server_busy.append((server_after - server_before) / elapsed)


def _report(
    results: dict[tuple[str, str], Case],
    endpoints: tuple[str, ...],
    clients: tuple[str, ...],
    params: dict[str, Any],
    *,
    quick: bool,
) -> Report:
    report = Report(
        name="throughput",
        title="throughput against a sandbox in its own process",
        params=params,
        quick=quick,
        columns=[
            Column("endpoint", "endpoint"),
            Column("label", "client"),
            Column("requests_per_s", "req/s", lambda value: f"{value:.0f}"),
            Column("vs_aiohttp", "vs aiohttp", format_ratio),
            Column("median_ms", "median ms", lambda value: f"{value:.2f}"),
            Column("p99_ms", "p99 ms", lambda value: f"{value:.2f}"),
            Column(
                "client_cpu_us",
                "client CPU µs/req",
                lambda value: f"{value:.0f}",
            ),
            Column("cpu_vs_aiohttp", "CPU vs aiohttp", format_ratio),
            Column(
                "sandbox_cpu_percent",
                "sandbox CPU",
                lambda value: f"{value:.0f}%",
            ),
        ],
    )
    verdicts = []
    shares: dict[str, float | None] = {}
    costs: dict[str, float | None] = {}
    for endpoint in endpoints:
        reference = results.get((endpoint, "aiohttp"))
        reference_rate = median(reference.rates) if reference else 0.0
        reference_cpu = _cpu_per_request(reference) if reference else 0.0
        for name in clients:
            case = results[endpoint, name]
            rate = median(case.rates)
            cpu = _cpu_per_request(case)
            report.rows.append(
                {
                    "endpoint": endpoint,
                    "client": name,
                    "label": CLIENTS[name],
                    "requests": case.requests,
                    "requests_per_s": rate,
                    "vs_aiohttp": ratio(rate, reference_rate),
                    "median_ms": percentile(case.latencies, 0.5) * 1e3,
                    "p99_ms": percentile(case.latencies, 0.99) * 1e3,
                    "client_cpu_us": cpu * 1e6,
                    "cpu_vs_aiohttp": ratio(cpu, reference_cpu),
                    "sandbox_cpu_percent": (
                        median(case.server_busy) * 100
                        if case.server_busy
                        else None
                    ),
                }
            )
        if "ours" in clients and reference is not None:
            share = ratio(
                median(results[endpoint, "ours"].rates), reference_rate
            )
            shares[endpoint] = share
            costs[endpoint] = ratio(
                _cpu_per_request(results[endpoint, "ours"]), reference_cpu
            )
            verdicts.append(
                _verdict(endpoint, share, costs[endpoint], quick=quick)
            )
    report.notes.extend(
        [
            "'vs aiohttp' divides requests per second by plain aiohttp's "
            "on the same endpoint (higher is faster)",
            "latencies are per request, pooled over the rounds; client CPU "
            "is the benchmark process's CPU time divided by its requests",
            "ours runs without its client-side rate budgets and without "
            "its init cache, so that every call is a request",
            "when the sandbox's CPU nears 100% it is the bottleneck, and "
            "the clients' CPU per request tells them apart; 'CPU vs "
            "aiohttp' divides it by plain aiohttp's (lower is cheaper) and "
            "moves less between runs than requests per second",
        ]
    )
    met = [share >= TARGET for share in shares.values() if share is not None]
    report.summary = {
        "ours_vs_aiohttp": shares,
        "ours_cpu_vs_aiohttp": costs,
        "target": TARGET,
        "target_met": None if quick or not met else all(met),
        "verdicts": verdicts,
    }

    return report


def _cpu_per_request(case: Case) -> float:
    """Seconds of the client process's CPU per request."""
    return case.client_cpu / case.requests if case.requests else 0.0


def _verdict(
    endpoint: str, share: float | None, cost: float | None, *, quick: bool
) -> str:
    if share is None:
        return f"{endpoint}: ours / aiohttp: no figure"
    spent = "" if cost is None else f", at {cost:.2f}x its CPU per request"
    line = (
        f"{endpoint}: ours reaches {share:.0%} of plain aiohttp's "
        f"throughput{spent} (target: at least {TARGET:.0%})"
    )
    if quick:
        return line + ": not judged in quick mode"

    return line + (": met" if share >= TARGET else ": NOT met")
