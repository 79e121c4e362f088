"""The legal team's report: findings.json + manifest.json + figures -> report.html -> report.pdf.

The report is the only thing most readers see, so every sentence in it is generated from the numbers of
the run, and every piece of text that came from a model, a prompt or a case file is treated as hostile:
it is escaped before anything is wrapped around it, invisible control characters are shown as
``[U+XXXX]`` (a right-to-left override must not silently reorder an exhibit), long texts are cut with a
visible note, and nothing is ever turned into a link. The PDF is rendered offline: the URL fetcher
refuses anything that is not a ``data:`` URL or a file inside the run folder.

Layout: ``constants`` (file names and caps), ``reading`` (a findings file that may be malformed),
``numbers`` (numbers as a reader wants them), ``sentences`` (the answer, its strength, the data
analysed), ``lines`` (one view per line of evidence), ``figure_set`` (figures as data URIs), ``method``
(exhibits, verbal scale, validation), ``appendix`` (chain of custody), ``context`` (all the template
needs), ``html`` and ``pdf`` (rendering), ``step`` (step 07). Hostile text is made inert by
:mod:`forensics.escaping`, and LRs are put in words by :mod:`forensics.lr_words`, for every module.
"""

from forensics.escaping import (
    MAX_PHRASES,
    RESPONSE_LIMIT,
    TEXT_LIMIT,
    as_text,
    clip,
    highlight,
    inert,
    plain_text,
    render_text,
)
from forensics.lr_words import as_number, lr_phrase, lr_value
from forensics.report.appendix import custody_view, timestamp
from forensics.report.constants import (
    FINDINGS_NAME,
    HTML_NAME,
    MAX_EXHIBITS,
    MAX_FIGURE_BYTES,
    MAX_LEAKS,
    MAX_ROWS,
    NAME_LIMIT,
    PDF_NAME,
    PROMPT_LIMIT,
    STEP,
    VALUE_LIMIT,
)
from forensics.report.context import context
from forensics.report.figure_set import FigureSet
from forensics.report.html import TEMPLATES, render_html
from forensics.report.lines import CORE_KEYS, LINES, LineView, describe_line, line_views
from forensics.report.method import (
    CASE_METRICS,
    LEVEL_METRICS,
    band_sentence,
    exhibit_views,
    identity_rows,
    leak_views,
    scale_rows,
    size_sentence,
    validation_rows,
    validation_sentence,
)
from forensics.report.numbers import fmt, fmt_p, fmt_pct, fmt_range, fmt_signed
from forensics.report.pdf import PDF_VARIANT, OfflineFetcher, PdfResult, render_pdf
from forensics.report.sentences import (
    answer_sentence,
    answer_view,
    answer_views,
    comparison_sentence,
    cover_cautions,
    data_sentence,
    does_not_show,
    outcome_of,
    strength_sentence,
)
from forensics.report.step import Report, build, build_report, run_step

__all__ = [
    "CORE_KEYS", "FINDINGS_NAME", "HTML_NAME", "LINES", "MAX_EXHIBITS", "MAX_FIGURE_BYTES", "MAX_LEAKS",
    "MAX_PHRASES", "MAX_ROWS", "NAME_LIMIT", "PDF_NAME", "PDF_VARIANT", "PROMPT_LIMIT", "RESPONSE_LIMIT",
    "STEP", "TEMPLATES", "TEXT_LIMIT", "CASE_METRICS", "LEVEL_METRICS", "VALUE_LIMIT", "FigureSet", "LineView",
    "OfflineFetcher", "PdfResult", "Report", "answer_sentence", "answer_view", "answer_views",
    "comparison_sentence", "cover_cautions", "as_number", "as_text",
    "band_sentence", "build", "build_report", "clip", "context", "custody_view", "data_sentence",
    "describe_line", "does_not_show", "exhibit_views", "fmt", "fmt_p", "fmt_pct", "fmt_range", "fmt_signed",
    "highlight", "identity_rows", "inert", "leak_views", "line_views", "lr_phrase", "lr_value", "outcome_of",
    "plain_text",
    "render_html", "render_pdf", "render_text", "run_step", "scale_rows", "size_sentence", "strength_sentence",
    "timestamp", "validation_rows", "validation_sentence",
]
