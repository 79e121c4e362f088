"""Reading a findings file that may be malformed: a broken field shows as missing, never as a crash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forensics.escaping import as_text, clip
from forensics.report.constants import NAME_LIMIT


def mapping_of(value: Any) -> Mapping[str, Any]:
    """The value if it is a JSON object, else an empty one (so ``.get`` chains never crash)."""
    return value if isinstance(value, Mapping) else {}


def records_of(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a JSON list (a malformed findings file shows as missing data, not as a crash)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def short_name(value: Any) -> str:
    """A model name for use inside generated sentences (clipped here, escaped with the sentence)."""
    kept, dropped = clip(as_text(value) or "(unnamed)", NAME_LIMIT)
    return kept + ("…" if dropped else "")


def is_scalar(value: Any) -> bool:
    """Whether a JSON value is shown as one cell (numbers, text, booleans, null)."""
    return value is None or isinstance(value, str | int | float | bool)
