"""Findings -> one self-contained HTML page (Jinja2, autoescaped, no scripts)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forensics.escaping import highlight, plain_text, render_text
from forensics.report.constants import NAME_LIMIT
from forensics.report.context import context
from forensics.report.figure_set import FigureSet
from forensics.report.numbers import fmt, fmt_p, fmt_pct, fmt_signed

#: The Jinja2 template and its CSS, in the package's templates folder.
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def _environment() -> Any:
    """Autoescaping Jinja2 whose filters show every value as inert text: the template can only place
    text, never turn a findings value into markup."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(text=render_text, name=lambda value: render_text(value, NAME_LIMIT), plain=plain_text,
                       highlight=highlight, num=fmt, signed=fmt_signed, pct=fmt_pct, pval=fmt_p)
    return env


def render_html(findings: Mapping[str, Any], manifest: Mapping[str, Any], run_dir: str | Path) -> str:
    """The report as one self-contained HTML string (inline CSS, figures as data URIs, no scripts)."""
    template = _environment().get_template("report.html.j2")
    return template.render(**context(findings, manifest, FigureSet(Path(run_dir))))
