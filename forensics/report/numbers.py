"""Numbers as a reader wants them: 3 decimals for small values, separators for large ones."""

from __future__ import annotations

from typing import Any

from forensics.escaping import as_text
from forensics.lr_words import as_number
from forensics.report.constants import VALUE_LIMIT


def fmt(value: Any) -> str:
    """A number as a reader wants it: 3 decimals for small values, thousands separators for large ones."""
    number = as_number(value)
    if number is None:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "—" if value is None else as_text(value)[:VALUE_LIMIT]
    if isinstance(value, int):
        return f"{value:,}"[:VALUE_LIMIT]
    size = abs(number)
    if size >= 1000:
        return f"{number:,.0f}"
    if size >= 1:
        return f"{number:.2f}"
    if size >= 0.001 or number == 0:
        return f"{number:.3f}"
    return f"{number:.1e}"


def fmt_signed(value: Any) -> str:
    number = as_number(value)
    return "—" if number is None else f"{number:+.2f}"


def fmt_pct(value: Any) -> str:
    number = as_number(value)
    return "—" if number is None else f"{100 * number:.1f}%"


def fmt_p(value: Any) -> str:
    number = as_number(value)
    if number is None:
        return "—"
    return "< 0.001" if number < 0.001 else f"{number:.3f}"


def fmt_range(pair: Any, formatter: Any = fmt) -> str:
    if isinstance(pair, list | tuple) and len(pair) == 2:
        return f"{formatter(pair[0])} to {formatter(pair[1])}"
    return "—"
