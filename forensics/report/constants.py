"""What the report writes and how much of a findings file it shows: every name and cap in one place."""

from __future__ import annotations

STEP = "07_report"
FINDINGS_NAME = "findings.json"
HTML_NAME = "report.html"
PDF_NAME = "report.pdf"

PROMPT_LIMIT = 1200
NAME_LIMIT = 120
VALUE_LIMIT = 300
MAX_EXHIBITS = 12
MAX_LEAKS = 20
MAX_ROWS = 40
MAX_FIGURE_BYTES = 8 << 20
