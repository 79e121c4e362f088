"""Hostile text made inert: the one place model outputs (and names, prompts, anything read from files)
are turned into HTML.

Model outputs are adversarial input: they may hold markup, scripts, bidi overrides or megabytes of one
token. The report, the notebooks and ``clustering.show_pairs`` all show them, so all of them go through
the functions here: everything is escaped, control and format characters are shown as ``[U+XXXX]``
instead of being obeyed, long runs get break points, and long texts are clipped with a visible note.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from markupsafe import Markup, escape

#: How much of a text is shown: a model response, anything else, and how many phrases are highlighted.
RESPONSE_LIMIT = 3000
TEXT_LIMIT = 1500
MAX_PHRASES = 60
#: Unbroken runs longer than this get a ``<wbr>`` break point every LONG_TOKEN characters.
LONG_TOKEN = 28

_LONG_TOKEN_RE = re.compile(rf"\S{{{LONG_TOKEN + 1},}}")
_HEX_RE = re.compile(r"[0-9a-fA-F]{32,128}")


def is_visible(char: str) -> bool:
    """Ordinary characters and pre-wrap whitespace; every other C* code point must be made visible."""
    return char in "\n\t\r" or unicodedata.category(char)[0] != "C"


def _breakable(text: str) -> Markup:
    """Escape ``text``, cutting long unbroken runs with ``<wbr>`` (a break point that copies as nothing).

    Hashes are left whole so the HTML source can be searched for them; their cells do not wrap.
    """
    parts: list[Markup] = []
    position = 0
    for match in _LONG_TOKEN_RE.finditer(text):
        token = match.group(0)
        if _HEX_RE.fullmatch(token):
            continue
        parts.append(escape(text[position:match.start()]))
        parts.append(Markup("<wbr>").join(escape(token[i:i + LONG_TOKEN])
                                          for i in range(0, len(token), LONG_TOKEN)))
        position = match.end()
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


def inert(text: str) -> Markup:
    """Escape ``text``; show control, format and surrogate code points as ``[U+XXXX]``, never obey them."""
    parts: list[Markup] = []
    run: list[str] = []
    for char in text:
        if is_visible(char):
            run.append(char)
            continue
        parts.append(_breakable("".join(run)))
        run = []
        parts.append(Markup('<span class="ctl">[U+{:04X}]</span>').format(ord(char)))
    parts.append(_breakable("".join(run)))
    return Markup("").join(parts)


def as_text(value: Any) -> str:
    """Any JSON value as display text (strings as they are, everything else as compact JSON)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def clip(text: str, limit: int) -> tuple[str, int]:
    """Cut ``text`` to ``limit`` characters; return the kept part and how many characters were dropped."""
    if limit <= 0 or len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def truncation_note(dropped: int) -> Markup:
    """A visible note saying how many characters were cut (nothing when none were)."""
    if not dropped:
        return Markup("")
    return Markup(' <span class="trunc">[… truncated, {} characters]</span>').format(f"{dropped:,}")


def render_text(value: Any, limit: int = TEXT_LIMIT) -> Markup:
    """Inert, clipped rendering of one value (the template's ``text`` filter)."""
    kept, dropped = clip(as_text(value), limit)
    return inert(kept) + truncation_note(dropped)


def plain_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """Clipped one-line text without control characters, for attributes and <title> (which hold no markup)."""
    kept, dropped = clip(as_text(value), limit)
    kept = "".join(c if is_visible(c) and c not in "\n\t\r" else " " for c in kept)
    return kept + ("…" if dropped else "")


def _phrase_pattern(phrases: Iterable[Any]) -> re.Pattern[str] | None:
    """One case-insensitive alternation, longest phrase first so the longest match wins at each place."""
    texts = {as_text(p)[:200] for p in phrases}
    texts = sorted((t for t in texts if t.strip()), key=lambda t: (-len(t), t))[:MAX_PHRASES]
    return re.compile("|".join(map(re.escape, texts)), re.IGNORECASE) if texts else None


def highlight(value: Any, phrases: Iterable[Any], limit: int = RESPONSE_LIMIT) -> Markup:
    """Clip, then escape every segment and wrap phrase matches in ``<mark>``: raw text never meets markup.

    Matching runs on the raw text, not its escaped form, so a phrase can never match inside an entity such
    as ``&amp;``; each segment is escaped on its own before the tags are placed around it.
    """
    kept, dropped = clip(as_text(value), limit)
    pattern = _phrase_pattern(phrases)
    if pattern is None:
        return inert(kept) + truncation_note(dropped)
    parts: list[Markup] = []
    position = 0
    for match in pattern.finditer(kept):
        parts.append(inert(kept[position:match.start()]))
        parts.append(Markup("<mark>") + inert(match.group(0)) + Markup("</mark>"))
        position = match.end()
    parts.append(inert(kept[position:]))
    return Markup("").join(parts) + truncation_note(dropped)



def escaped_html(text: Any, limit: int = TEXT_LIMIT) -> str:
    """:func:`render_text` as a plain string, for notebook displays and HTML built outside the report."""
    return str(render_text(text, limit))
