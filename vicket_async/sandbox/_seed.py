"""Demo content: the Acme Support website and large sites for benchmarks."""

from __future__ import annotations

from ._records import (
    Article,
    Faq,
    Option,
    Question,
    QuestionType,
    Template,
    Website,
)

__all__ = [
    "DEMO_API_KEY",
    "DEMO_WEBSITE_NAME",
    "demo_website",
    "large_website",
]

DEMO_API_KEY = "vk_live_sandbox_demo_key"
DEMO_WEBSITE_NAME = "Acme Support"


def demo_website(
    api_key: str = DEMO_API_KEY, *, name: str = DEMO_WEBSITE_NAME
) -> Website:
    """
    The demo website, the same on every call.

    Its three templates use every question type between them, with
    required and optional questions; it also has three articles and
    four FAQs.
    """
    website = Website(api_key=api_key, name=name)
    for template in _demo_templates():
        website.add_template(template)
    for article in _demo_articles():
        website.add_article(article)
    for faq in _demo_faqs():
        website.add_faq(faq)

    return website


def large_website(
    api_key: str,
    *,
    name: str = "Large Site",
    templates: int = 20,
    questions: int = 15,
    articles: int = 100,
    article_bytes: int = 20_000,
    faqs: int = 50,
) -> Website:
    """
    A big website for benchmarks, the same for the same arguments.

    Every template cycles through all question types; each article's HTML
    content is about *article_bytes* long.
    """
    website = Website(api_key=api_key, name=name)
    kinds: tuple[QuestionType, ...] = (
        "TEXT",
        "TEXTAREA",
        "SELECT",
        "CHECKBOX",
        "DATE",
        "FILE",
    )
    for t in range(templates):
        items = []
        for q in range(questions):
            kind = kinds[q % len(kinds)]
            options = (
                tuple(
                    Option(value=f"option_{o}", label=f"Option {o}")
                    for o in range(5)
                )
                if kind == "SELECT"
                else ()
            )
            items.append(
                Question(
                    id=f"q_{t}_{q}",
                    label=f"Question {q + 1} of template {t + 1}",
                    type=kind,
                    required=q % 3 == 0,
                    order=q + 1,
                    options=options,
                )
            )
        website.add_template(
            Template(
                id=f"tpl_{t}",
                name=f"Template {t + 1}",
                description=f"Generated template number {t + 1}",
                questions=tuple(items),
                icon="file",
            )
        )
    paragraph = (
        "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
        "eiusmod tempor incididunt ut labore et dolore magna aliqua.</p>\n"
    )
    repeats = max(1, article_bytes // len(paragraph))
    for a in range(articles):
        website.add_article(
            Article(
                id=f"art_{a}",
                title=f"Article {a + 1}",
                slug=f"article-{a + 1}",
                content=f"<h1>Article {a + 1}</h1>\n" + paragraph * repeats,
                category=f"Category {a % 7 + 1}",
            )
        )
    for f in range(faqs):
        website.add_faq(
            Faq(
                id=f"faq_{f}",
                question=f"Generated question {f + 1}?",
                answer=f"Generated answer {f + 1}.",
            )
        )

    return website


def _demo_templates() -> list[Template]:
    browsers = (
        Option(value="chrome", label="Google Chrome"),
        Option(value="firefox", label="Mozilla Firefox"),
        Option(value="safari", label="Safari"),
        Option(value="edge", label="Microsoft Edge"),
        Option(value="other", label="Something else"),
    )
    bug = Template(
        id="tpl_bug",
        name="Bug Report",
        description="Something is broken or behaves oddly",
        icon="bug",
        questions=(
            Question(
                id="q_description",
                label="Describe the issue",
                type="TEXTAREA",
                required=True,
                order=1,
            ),
            Question(
                id="q_browser",
                label="Browser",
                type="SELECT",
                required=True,
                order=2,
                options=browsers,
            ),
            Question(
                id="q_reproducible",
                label="Does it happen every time?",
                type="CHECKBOX",
                order=3,
            ),
            Question(
                id="q_first_seen",
                label="When did it start?",
                type="DATE",
                order=4,
            ),
            Question(
                id="q_screenshot",
                label="Screenshot",
                type="FILE",
                order=5,
            ),
        ),
    )
    topics = (
        Option(value="invoice", label="A question about an invoice"),
        Option(value="refund", label="I would like a refund"),
        Option(value="plan", label="Change my plan"),
    )
    billing = Template(
        id="tpl_billing",
        name="Billing Question",
        description="Invoices, refunds and plans",
        icon="credit-card",
        questions=(
            Question(
                id="q_account",
                label="Account ID",
                type="TEXT",
                required=True,
                order=1,
            ),
            Question(
                id="q_topic",
                label="Topic",
                type="SELECT",
                required=True,
                order=2,
                options=topics,
            ),
            Question(
                id="q_invoice_date",
                label="Invoice date",
                type="DATE",
                required=True,
                order=3,
            ),
            Question(
                id="q_invoice",
                label="Invoice (PDF)",
                type="FILE",
                required=True,
                order=4,
            ),
            Question(
                id="q_details",
                label="Anything else we should know?",
                type="TEXTAREA",
                order=5,
            ),
        ),
    )
    feature = Template(
        id="tpl_feature",
        name="Feature Request",
        description="Tell us what you would like to see",
        icon="lightbulb",
        questions=(
            Question(
                id="q_idea",
                label="Your idea",
                type="TEXT",
                required=True,
                order=1,
            ),
            Question(
                id="q_contact_ok",
                label="May we contact you about it?",
                type="CHECKBOX",
                required=True,
                order=2,
            ),
        ),
    )

    return [bug, billing, feature]


def _demo_articles() -> list[Article]:
    return [
        Article(
            id="art_getting_started",
            title="Getting Started",
            slug="getting-started",
            category="Basics",
            content=(
                "<h1>Getting Started</h1>\n"
                "<p>Welcome to Acme. Create an account, confirm your email "
                "address and open the dashboard.</p>\n"
                "<ol><li>Sign up</li><li>Confirm your email</li>"
                "<li>Invite your team</li></ol>"
            ),
        ),
        Article(
            id="art_reset_password",
            title="Resetting Your Password",
            slug="reset-password",
            category="Account",
            content=(
                "<h1>Resetting Your Password</h1>\n"
                "<p>Open the sign-in page and choose <strong>Forgot "
                "password</strong>. We email you a link that works for one "
                "hour.</p>"
            ),
        ),
        Article(
            id="art_billing_faq",
            title="How Billing Works",
            slug="how-billing-works",
            category="Billing",
            content=(
                "<h1>How Billing Works</h1>\n"
                "<p>Plans renew monthly. Invoices are sent on the first day "
                "of each month &amp; can be downloaded from "
                '<a href="/billing">Billing</a>.</p>'
            ),
        ),
    ]


def _demo_faqs() -> list[Faq]:
    return [
        Faq(
            id="faq_reset_password",
            question="How do I reset my password?",
            answer="Go to the sign-in page and choose Forgot password.",
        ),
        Faq(
            id="faq_response_time",
            question="How fast do you answer?",
            answer="Within one business day, usually much sooner.",
        ),
        Faq(
            id="faq_ticket_link",
            question="I lost the link to my ticket. What now?",
            answer="Open the old link: we email you a new one.",
        ),
        Faq(
            id="faq_cancel",
            question="Can I cancel at any time?",
            answer="Yes, from the Billing page, with no fee.",
        ),
    ]
