"""The API reference's example answers, exactly as written, and variants."""

INIT = """
{
  "success": true,
  "data": {
    "website": { "name": "My App" },
    "templates": [
      {
        "id": "tpl_...",
        "name": "Bug Report",
        "description": "Report a bug",
        "questions": [
          {
            "id": "q_...",
            "label": "Describe the issue",
            "type": "TEXTAREA",
            "required": true,
            "order": 1,
            "options": []
          }
        ]
      }
    ],
    "articles": [
      { "id": "art_...", "title": "Getting Started", "slug": "getting-started", "content": "<p>...</p>" }
    ],
    "faqs": [
      { "id": "faq_...", "question": "How do I reset my password?", "answer": "Go to..." }
    ]
  }
}
"""

TICKET_CREATED = """
{ "success": true, "data": { "email_limit_reached": false, "warning": null } }
"""

TICKET = """
{
  "success": true,
  "data": {
    "id": "tick_...",
    "title": "Cannot log in",
    "status": { "label": "Open" },
    "priority": { "label": "Low" },
    "messages": [
      {
        "id": "msg_...",
        "content": "<p>I see a blank page</p>",
        "author_type": "reporter",
        "created_at": "2026-03-08T10:00:00Z",
        "attachments": []
      }
    ],
    "answers": [
      { "id": "ans_...", "question_label": "Browser", "answer": "Chrome 120", "attachments": [] }
    ]
  }
}
"""

MESSAGE = """
{
  "success": true,
  "data": {
    "id": "msg_...",
    "content": "Thanks, I will try clearing my cache.",
    "author_type": "reporter",
    "created_at": "2026-03-08T12:00:00Z"
  }
}
"""

ARTICLE = """
{
  "success": true,
  "data": { "id": "art_...", "title": "Getting Started", "slug": "getting-started", "content": "<p>...</p>" }
}
"""

ERROR = """
{ "success": false, "error": "Human-readable message", "error_code": "machine-readable-code" }
"""

# The shapes that a real third-party integration decodes.
INIT_INTEGRATION = {
    "success": True,
    "data": {
        "templates": [
            {
                "id": "tpl_2",
                "name": "Billing",
                "icon": "credit-card",
                "questions": [
                    {
                        "id": "q_plan",
                        "label": "Plan",
                        "type": "SELECT",
                        "required": True,
                        "order": 1,
                        "options": [
                            {"value": "free", "label": "Free"},
                            {"value": "pro", "label": "Pro"},
                        ],
                    },
                    {
                        "id": "q_stars",
                        "label": "Rating",
                        "type": "RATING",
                        "required": False,
                        "order": 2,
                        "options": [],
                    },
                ],
            }
        ],
    },
}

ARTICLES_INTEGRATION = {
    "success": True,
    "data": {
        "website": {},
        "templates": [],
        "articles": [
            {
                "id": "art_1",
                "title": "Billing FAQ",
                "slug": "billing",
                "content": "<p>x</p>",
                "category": "Billing",
                "type": "faq",
            }
        ],
        "faqs": [{"question": "Refunds?", "answer": "Yes."}],
    },
}

TICKET_INTEGRATION = {
    "success": True,
    "data": {
        "id": "tick_9",
        "subject": "Refund please",
        "token": "tok_secret_in_body",
        "status": {"label": "Pending"},
        "priority": {"label": "High"},
        "messages": [
            {
                "id": "msg_1",
                "content": "Hello",
                "author_type": "agent",
                "author_name": "Dana",
                "created_at": "2026-03-08T10:00:00+01:00",
                "attachments": [
                    {
                        "id": "att_1",
                        "url": "https://files.example/att_1",
                        "original_filename": "invoice.pdf",
                        "mime_type": "application/pdf",
                    }
                ],
            },
            {
                "id": "msg_2",
                "content": "Escalated",
                "author_type": "system",
                "created_at": "2026-03-08T11:00:00Z",
            },
            {
                "id": "msg_3",
                "content": "From the bot",
                "author_type": "bot",
                "created_at": "2026-03-08T12:00:00Z",
            },
        ],
        "answers": [],
    },
}
