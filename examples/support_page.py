"""
A support page for a website, served by aiohttp.

Run it with one command::

    python examples/support_page.py

Without ``VICKET_BASE_URL`` in the environment it starts a Vicket sandbox in
the same process and prints the "emails" the sandbox sends, links included.
With ``VICKET_BASE_URL`` and ``VICKET_API_KEY`` set it talks to that server.

The page lists the articles and FAQs and renders a form for each ticket
template, built from ``init``. Its scripts talk only to the proxy mounted at
``/support-api``: the API key stays on the server. The link in the email
opens ``/ticket?token=...``, which shows the thread and a reply form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from vicket_async import (
    Article,
    NotFoundError,
    Question,
    QuestionType,
    SupportPage,
    Template,
    VicketClient,
    VicketError,
)
from vicket_async.proxy import DEFAULT_MAX_BODY_SIZE, make_aiohttp_app
from vicket_async.sandbox import Email, Sandbox

CLIENT_KEY = web.AppKey("client", VicketClient)
API_PREFIX = "/support-api"

log = logging.getLogger("support_page")


def make_app(
    client: VicketClient, *, max_upload: int = DEFAULT_MAX_BODY_SIZE
) -> web.Application:
    """The web app: three pages and the proxy under ``/support-api``."""
    app = web.Application()
    app[CLIENT_KEY] = client
    app.router.add_get("/", home)
    app.router.add_get("/articles/{slug}", article)
    app.router.add_get("/ticket", ticket)
    proxy = make_aiohttp_app(client, max_body_size=max_upload)
    app.add_subapp(API_PREFIX, proxy)

    return app


async def home(request: web.Request) -> web.Response:
    client = request.app[CLIENT_KEY]
    try:
        page = await client.init()
    except VicketError:
        log.warning("the support content could not be loaded", exc_info=True)
        return _page(
            "Support",
            "<p>Support is unavailable right now. Please try again soon.</p>",
            status=503,
        )

    return _page(_site_name(page), _home_body(page), script=_FORMS_SCRIPT)


async def article(request: web.Request) -> web.Response:
    client = request.app[CLIENT_KEY]
    try:
        found = await client.get_article(request.match_info["slug"])
    except NotFoundError:
        return _page("Not found", "<p>No such article.</p>", status=404)
    except VicketError:
        body = "<p>The article cannot be shown right now.</p>"
        return _page("Support", body, status=503)

    return _page(found.title, _article_body(found))


async def ticket(request: web.Request) -> web.Response:
    # The thread is fetched by the page's script through the proxy, with
    # the token from the address bar.
    body = """
<p><a href="/">&larr; Back to support</a></p>
<div id="thread" aria-live="polite"><p>Loading your ticket&hellip;</p></div>
<form id="reply" hidden>
  <h2>Reply</h2>
  <label>Message<br><textarea name="content" rows="4" required></textarea>
  </label>
  <label>Attachments <input type="file" name="files" multiple></label>
  <button type="submit">Send reply</button>
  <p class="status" role="status"></p>
</form>
"""

    return _page("Your ticket", body, script=_TICKET_SCRIPT)


# Rendering.


def _site_name(page: SupportPage) -> str:
    return page.website.name or "Support"


def _home_body(page: SupportPage) -> str:
    parts = []
    if page.articles:
        items = "".join(
            f'<li><a href="/articles/{html.escape(a.slug)}">'
            f"{html.escape(a.title)}</a></li>"
            for a in page.articles
        )
        parts.append(f"<section><h2>Articles</h2><ul>{items}</ul></section>")
    if page.faqs:
        items = "".join(
            f"<details><summary>{html.escape(f.question)}</summary>"
            f"<p>{html.escape(f.answer)}</p></details>"
            for f in page.faqs
        )
        parts.append(f"<section><h2>FAQ</h2>{items}</section>")
    forms = "".join(_template_form(t) for t in page.templates)
    parts.append(f"<section><h2>Contact us</h2>{forms}</section>")

    return "\n".join(parts)


def _template_form(template: Template) -> str:
    questions = sorted(template.questions, key=lambda q: q.order)
    fields = "".join(_question_field(template, q) for q in questions)
    tid = html.escape(template.id)

    return f"""
<form class="ticket" data-template="{tid}">
  <h3>{html.escape(template.name)}</h3>
  <p>{html.escape(template.description or "")}</p>
  <p><label>Your email<br>
    <input type="email" name="email" required autocomplete="email"></label></p>
  <p><label>Subject<br><input type="text" name="subject" required></label></p>
  {fields}
  <button type="submit">Send</button>
  <p class="status" role="status"></p>
</form>"""


def _question_field(template: Template, question: Question) -> str:
    field_id = html.escape(f"{template.id}-{question.id}")
    attrs = (
        f'id="{field_id}" data-question="{html.escape(question.id)}" '
        f'data-type="{html.escape(str(question.type))}"'
    )
    if question.required and question.type != QuestionType.CHECKBOX:
        attrs += " required"
    label = html.escape(question.label)
    mark = " *" if question.required else ""
    if question.type == QuestionType.TEXTAREA:
        control = f"<textarea {attrs} rows=4></textarea>"
    elif question.type == QuestionType.SELECT:
        options = "".join(
            f'<option value="{html.escape(o.value)}">'
            f"{html.escape(o.label)}</option>"
            for o in question.options
        )
        control = (
            f'<select {attrs}><option value="">Choose&hellip;</option>'
            f"{options}</select>"
        )
    elif question.type == QuestionType.CHECKBOX:
        control = f'<input type="checkbox" {attrs}>'
    elif question.type == QuestionType.DATE:
        control = f'<input type="date" {attrs}>'
    elif question.type == QuestionType.FILE:
        control = f'<input type="file" {attrs}>'
    else:
        # TEXT, and any type newer than this page: a line of text.
        control = f'<input type="text" {attrs}>'

    return f'<p><label for="{field_id}">{label}{mark}</label><br>{control}</p>'


def _article_body(found: Article) -> str:
    # The article's HTML is the website's own published content.
    return f'<p><a href="/">&larr; Back to support</a></p>{found.content}'


def _page(
    title: str, body: str, *, script: str = "", status: int = 200
) -> web.Response:
    text = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
form {{ border: 1px solid #ccc; border-radius: 6px; padding: 0 1rem 1rem;
       margin: 1rem 0; }}
input[type=text], input[type=email], textarea, select {{ width: 100%; }}
.message {{ border-left: 3px solid #999; padding-left: .75rem; }}
.status {{ font-weight: bold; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{body}
<script>const API = "{API_PREFIX}";</script>
<script>{script}</script>
</body>
</html>"""
    headers = {
        # The ticket page's address holds the token: send it nowhere.
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }

    return web.Response(
        text=text, status=status, content_type="text/html", headers=headers
    )


_SHARED_SCRIPT = r"""
function describe(answer) {
  let text = answer.error || "Something went wrong";
  if (answer.problems) {
    text += ": " + answer.problems
      .map(p => (p.label || p.field) + " " + p.message).join("; ");
  }
  return text;
}
async function send(path, data, files) {
  let request;
  if (files.length) {
    const body = new FormData();
    body.append("data", JSON.stringify(data));
    for (const [field, file] of files) body.append(field, file, file.name);
    request = {method: "POST", body};
  } else {
    request = {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(data),
    };
  }
  const response = await fetch(API + path, request);
  return [response.ok, await response.json()];
}
"""

_FORMS_SCRIPT = (
    _SHARED_SCRIPT
    + r"""
for (const form of document.querySelectorAll("form.ticket")) {
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const status = form.querySelector(".status");
    const answers = {};
    const files = [];
    for (const field of form.querySelectorAll("[data-question]")) {
      const id = field.dataset.question;
      if (field.dataset.type === "CHECKBOX") {
        answers[id] = field.checked;
      } else if (field.dataset.type === "FILE") {
        if (field.files.length) {
          answers[id] = "__isFile:true";
          files.push([`files[${id}]`, field.files[0]]);
        }
      } else if (field.value !== "") {
        answers[id] = field.value;
      }
    }
    const data = {
      email: form.elements.email.value,
      title: form.elements.subject.value,
      templateId: form.dataset.template,
      answers,
    };
    status.textContent = "Sending…";
    try {
      const [ok, answer] = await send("/tickets", data, files);
      if (ok) {
        form.reset();
        status.textContent =
          "Thank you! We emailed you a link to follow your ticket.";
        const warning = answer.data.warning;
        if (warning) status.textContent += " " + warning;
      } else {
        status.textContent = describe(answer);
      }
    } catch (error) {
      status.textContent = "The request failed; please try again.";
    }
  });
}
"""
)

_TICKET_SCRIPT = (
    _SHARED_SCRIPT
    + r"""
const token = new URLSearchParams(location.search).get("token") || "";
const thread = document.getElementById("thread");
const reply = document.getElementById("reply");

function asText(markup) {
  // Messages arrive as HTML; show their text only, never their markup.
  const doc = new DOMParser().parseFromString(markup || "", "text/html");
  return doc.body.textContent;
}
function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}
async function load() {
  const response = await fetch(
    API + "/ticket?token=" + encodeURIComponent(token));
  const answer = await response.json();
  thread.replaceChildren();
  if (!response.ok) {
    thread.append(element("p", describe(answer), "status"));
    return;
  }
  const ticket = answer.data;
  thread.append(element("h2", ticket.title || ticket.subject || "Ticket"));
  thread.append(element("p", "Status: " + (ticket.status || "unknown")));
  for (const message of ticket.messages) {
    const box = element("div", undefined, "message");
    box.append(element("p", asText(message.content)));
    const who = message.author_name || message.author_type;
    box.append(element("small", who + ", " + message.created_at));
    for (const file of message.attachments || []) {
      box.append(element("div", "📎 " + (file.original_filename || "file")));
    }
    thread.append(box);
  }
  reply.hidden = false;
}
reply.addEventListener("submit", async event => {
  event.preventDefault();
  const status = reply.querySelector(".status");
  const files = [...reply.elements.files.files].map(f => ["files", f]);
  status.textContent = "Sending…";
  const path = "/ticket/messages?token=" + encodeURIComponent(token);
  try {
    const [ok, answer] = await send(
      path, {content: reply.elements.content.value}, files);
    if (ok) {
      reply.reset();
      status.textContent = "Reply sent.";
      await load();
    } else {
      status.textContent = describe(answer);
    }
  } catch (error) {
    status.textContent = "The request failed; please try again.";
  }
});
load();
"""
)


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log lines without query strings, which can hold tokens."""

    def log(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        time: float,
    ) -> None:
        self.logger.info(
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


# Running it.


@contextlib.asynccontextmanager
async def vicket_client() -> AsyncIterator[
    tuple[VicketClient, Sandbox | None]
]:
    """A client for VICKET_BASE_URL, or for a sandbox started here."""
    if os.environ.get("VICKET_BASE_URL"):
        async with VicketClient() as client:
            yield client, None
        return
    async with (
        Sandbox() as sandbox,
        VicketClient(
            api_key=sandbox.api_key, base_url=sandbox.base_url
        ) as client,
    ):
        sandbox.state.email_listeners.append(_print_email)
        _say(f"Sandbox (no VICKET_BASE_URL set): {sandbox.base_url}")
        yield client, sandbox


def _print_email(mail: Email) -> None:
    _say(f"EMAIL to {mail.to}: {mail.subject}\n  {mail.link}")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(host: str, port: int, max_upload: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with vicket_client() as (client, sandbox):
        runner = web.AppRunner(
            make_app(client, max_upload=max_upload),
            access_log_class=PathOnlyAccessLogger,
            shutdown_timeout=2.0,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            port = runner.addresses[0][1]
            url = f"http://{host}:{port}"
            if sandbox is not None:
                # The sandbox's emails link to this page's ticket view.
                sandbox.state.link_template = url + "/ticket?token={token}"
            _say(f"SUPPORT_PAGE_URL={url}/")
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8000, help="0 picks a free port"
    )
    parser.add_argument(
        "--max-upload-mib",
        type=int,
        default=DEFAULT_MAX_BODY_SIZE // 2**20,
        help="the largest ticket or reply body accepted, in MiB",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.max_upload_mib * 2**20))

    return 0


if __name__ == "__main__":
    sys.exit(main())
