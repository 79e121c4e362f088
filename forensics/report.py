"""The legal team's report: findings.json + manifest.json + figures -> report.html -> report.pdf.

The report is the only thing most readers see, so every sentence in it is generated from the numbers of
the run, and every piece of text that came from a model, a prompt or a case file is treated as hostile:
it is escaped before anything is wrapped around it, invisible control characters are shown as
``[U+XXXX]`` (a right-to-left override must not silently reorder an exhibit), long texts are cut with a
visible note, and nothing is ever turned into a link. The PDF is rendered offline: the URL fetcher
refuses anything that is not a ``data:`` URL or a file inside the run folder.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from markupsafe import Markup, escape

from forensics import __version__
from forensics.custody import MANIFEST_NAME, Manifest, atomic_write_bytes, atomic_write_text
from forensics.errors import InputError

LOGGER = logging.getLogger(__name__)

STEP = "07_report"
FINDINGS_NAME = "findings.json"
HTML_NAME = "report.html"
PDF_NAME = "report.pdf"
TEMPLATES = Path(__file__).parent / "templates"
#: PDF/A-3 is the PDF/A part that allows embedded files of any type (here the manifest and findings).
PDF_VARIANT = "pdf/a-3b"

# How much hostile text the report shows: enough to read an exhibit, never enough to drown a page.
RESPONSE_LIMIT = 3000
PROMPT_LIMIT = 1200
NAME_LIMIT = 120
TEXT_LIMIT = 1500
VALUE_LIMIT = 300
MAX_EXHIBITS = 12
MAX_LEAKS = 20
MAX_ROWS = 40
MAX_PHRASES = 60
MAX_FIGURE_BYTES = 8 << 20
#: Unbroken runs longer than this get invisible break points, so no table column is forced wider.
LONG_TOKEN = 28

#: Lines of evidence in the order the report presents them; other lines found in findings follow.
LINES = {
    "embedding": ("Semantic similarity (sentence embeddings)",
                  "How close the meaning and wording of the opening of each response (its first words) is "
                  "to the opening of the candidate teacher's response to the same prompt."),
    "stylometry": ("Writing style (stylometry)",
                   "Formatting habits (lists, headers, emphasis, openings and closings, sentence length), with "
                   "function-word frequencies, character n-grams and topic-masked text shown beside them: "
                   "habits a model picks up from the text it was trained on, largely independent of topic."),
    "markers": ("Teacher-specific phrases and identity markers",
                "Phrases typical of the candidate teacher and rare elsewhere, self-identification as another "
                "model, and investigator-supplied canary strings."),
    "clusters": ("Co-clustering of responses",
                 "Whether the suspect's responses fall in the same groups as the teacher's more often than "
                 "the panel's do, when all responses are clustered together."),
}

#: Verbal equivalents of likelihood ratios (ENFSI guideline for evaluative reporting, 2015), by |log10 LR|.
VERBAL_SCALE = (
    (0.0, math.log10(2), "no meaningful support either way (LR 1 to 2)"),
    (math.log10(2), 1.0, "weak support (LR 2 to 10)"),
    (1.0, 2.0, "moderate support (LR 10 to 100)"),
    (2.0, 3.0, "moderately strong support (LR 100 to 1,000)"),
    (3.0, 4.0, "strong support (LR 1,000 to 10,000)"),
    (4.0, 6.0, "very strong support (LR 10,000 to 1,000,000)"),
    (6.0, math.inf, "extremely strong support (LR above 1,000,000)"),
)

#: Validation metrics in the order and words the method section uses.
VALIDATION_METRICS = (
    ("n_cases", "validation cases (suspect models of known lineage)", "num"),
    ("n_pairs", "suspect/teacher pairs scored", "num"),
    ("pair_auc", "area under the ROC curve over pairs (1 = perfect separation)", "num"),
    ("cllr", "Cllr: overall cost of the LRs (0 = perfect, 1 = uninformative)", "num"),
    ("cllr_min", "Cllr_min: the cost left after perfect calibration (discrimination only)", "num"),
    ("false_attribution_rate_controls", "false attributions among control models (no teacher)", "pct"),
    ("student_attribution_accuracy", "students attributed to their true teacher", "pct"),
    ("students_documented_teacher_supported",
     "students whose true teacher is among the supported candidates (named or not)", "num"),
    ("controls_with_a_supported_teacher", "control models with any supported candidate teacher", "num"),
    ("rate_misleading_hp", "misleading evidence when Hp is true (LR < 1)", "pct"),
    ("rate_misleading_hd", "misleading evidence when Hd is true (LR > 1)", "pct"),
)

#: Fields every evidence entry has; anything else is shown as a further measure.
CORE_KEYS = frozenset({"statistic", "suspect_value", "panel_values", "z", "ci95", "n_prompts", "p_value"})

_LONG_TOKEN_RE = re.compile(rf"\S{{{LONG_TOKEN + 1},}}")
_HEX_RE = re.compile(r"[0-9a-fA-F]{32,128}")


# --------------------------------------------------------------------------------------------------
# Hostile text -> inert markup
# --------------------------------------------------------------------------------------------------

def _is_visible(char: str) -> bool:
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
        if _is_visible(char):
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


def _truncation_note(dropped: int) -> Markup:
    if not dropped:
        return Markup("")
    return Markup(' <span class="trunc">[… truncated, {} characters]</span>').format(f"{dropped:,}")


def render_text(value: Any, limit: int = TEXT_LIMIT) -> Markup:
    """Inert, clipped rendering of one value (the template's ``text`` filter)."""
    kept, dropped = clip(as_text(value), limit)
    return inert(kept) + _truncation_note(dropped)


def plain_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """Clipped one-line text without control characters, for attributes and <title> (which hold no markup)."""
    kept, dropped = clip(as_text(value), limit)
    kept = "".join(c if _is_visible(c) and c not in "\n\t\r" else " " for c in kept)
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
        return inert(kept) + _truncation_note(dropped)
    parts: list[Markup] = []
    position = 0
    for match in pattern.finditer(kept):
        parts.append(inert(kept[position:match.start()]))
        parts.append(Markup("<mark>") + inert(match.group(0)) + Markup("</mark>"))
        position = match.end()
    parts.append(inert(kept[position:]))
    return Markup("").join(parts) + _truncation_note(dropped)


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------

def as_number(value: Any) -> float | None:
    """A finite float, or None for anything else (booleans included: they are not measurements)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


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


def _two_significant(value: float) -> str:
    """2 significant figures with separators: 501.2 -> '500', 2.512 -> '2.5', 199526 -> '200,000'."""
    if value >= 10:
        return f"{round(value, 1 - int(math.floor(math.log10(value)))):,.0f}"
    return f"{value:.2g}"


def lr_value(log10_lr: float) -> str:
    """The LR itself, '500' or '1/2.6' (a reader meets 1/2.6 more easily than 0.39)."""
    value = 10 ** log10_lr
    return _two_significant(value) if value >= 1 else f"1/{_two_significant(1 / value)}"


def lr_phrase(log10_lr: Any) -> str:
    """'about 500 times more probable under Hp than under Hd' (or Hd over Hp), from a log10 LR."""
    number = as_number(log10_lr)
    if number is None:
        return "no likelihood ratio was recorded"
    if abs(number) < 0.05:
        return "about equally probable under Hp and under Hd"
    first, second = ("Hp", "Hd") if number > 0 else ("Hd", "Hp")
    times = _two_significant(10 ** abs(number))
    return f"about {times} times more probable under {first} than under {second}"


def scale_index(log10_lr: Any) -> int | None:
    """Row of VERBAL_SCALE holding |log10 LR| (the same words serve support for Hp and for Hd)."""
    number = as_number(log10_lr)
    if number is None:
        return None
    return next(i for i, (low, high, _) in enumerate(VERBAL_SCALE) if low <= abs(number) < high)


# --------------------------------------------------------------------------------------------------
# Findings -> the answer in words
# --------------------------------------------------------------------------------------------------

def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _records(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a JSON list (a malformed findings file shows as missing data, not as a crash)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _name(value: Any) -> str:
    """A model name for use inside generated sentences (clipped here, escaped with the sentence)."""
    kept, dropped = clip(as_text(value) or "(unnamed)", NAME_LIMIT)
    return kept + ("…" if dropped else "")


def answer_sentence(suspect: str, teacher: Mapping[str, Any]) -> str:
    """The plain one-sentence answer for one candidate teacher, from ``supports`` and the candidate test."""
    name, supports = _name(teacher.get("name")), teacher.get("supports")
    if supports == "Hp":
        sentence = f"The evidence supports the proposition that {suspect} was trained on outputs of {name}."
        if teacher.get("beats_other_candidates") is False:
            sentence += (f" It does not, however, single out {name}: another candidate teacher fits the "
                         "suspect as well or better.")
        return sentence
    if supports == "Hd":
        return f"The evidence supports the proposition that {suspect} was developed independently of {name}."
    if supports == "inconclusive":
        return (f"Inconclusive for {name}: the evidence does not meaningfully favour either proposition, "
                "so no statement can be made either way.")
    recorded = as_text(supports)[:80] or "none"
    return f"No reliable answer was recorded for {name} (recorded outcome: {recorded})."


def strength_sentence(teacher: Mapping[str, Any]) -> str:
    """Strength in words and as an LR with its log10 value, noting when the LR sits at its ELUB bound."""
    log10_lr = as_number(teacher.get("log10_lr"))
    verbal = as_text(teacher.get("verbal")) or "no verbal equivalent recorded"
    if log10_lr is None:
        return f"Strength of evidence: {verbal}; no likelihood ratio was recorded."
    sentence = (f"Strength of evidence: {verbal}. The observations are {lr_phrase(log10_lr)} "
                f"(likelihood ratio about {lr_value(log10_lr)}; log10 LR = {log10_lr:+.2f}).")
    if _at_bound(log10_lr, teacher.get("lr_bounds")):
        sentence += (" This is the largest value the validation data can support (ELUB bound); the "
                     "evidence itself may be stronger.")
    return sentence


def _at_bound(log10_lr: float, bounds: Any) -> bool:
    if not isinstance(bounds, list | tuple) or len(bounds) != 2:
        return False
    return any(b is not None and abs(log10_lr - b) < 1e-6 for b in map(as_number, bounds))


def outcome_of(findings: Mapping[str, Any]) -> str:
    """'attributed' | 'no teacher supported' | 'inconclusive', derived from the teachers when not recorded."""
    conclusion = _mapping(findings.get("conclusion"))
    outcome = conclusion.get("outcome")
    if outcome in ("attributed", "no teacher supported", "inconclusive"):
        return outcome
    if conclusion.get("attributed_teacher"):
        return "attributed"
    supports = [t.get("supports") for t in _records(findings.get("teachers"))]
    return "inconclusive" if all(s == "inconclusive" for s in supports) else "no teacher supported"


def headline(findings: Mapping[str, Any]) -> str:
    """The answer to the question in one sentence; 'inconclusive' and 'no teacher' are said plainly."""
    suspect = _name(findings.get("suspect"))
    names = ", ".join(_name(t.get("name")) for t in _records(findings.get("teachers"))) or "none"
    outcome = outcome_of(findings)
    if outcome == "attributed":
        teacher = _name(_mapping(findings.get("conclusion")).get("attributed_teacher"))
        return f"The evidence supports that {suspect} was trained on outputs of {teacher}."
    if outcome == "inconclusive":
        supported = [_name(t.get("name")) for t in _records(findings.get("teachers")) if t.get("supports") == "Hp"]
        if supported:
            return (f"INCONCLUSIVE: the evidence supports that {suspect} was trained on outputs of "
                    f"{_either(supported)}, but does not single out one of the candidate teachers ({names}).")
        return ("INCONCLUSIVE: the evidence is not strong enough to support either proposition for any "
                f"candidate teacher ({names}).")
    return (f"NO TEACHER SUPPORTED: the evidence does not support that {suspect} was trained on outputs of "
            f"any of the candidate teachers examined ({names}).")


def _either(names: Sequence[str]) -> str:
    """'A', 'A or B (or both)', 'one or more of A, B and C'."""
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} or {names[1]} (or both)"
    return f"one or more of {', '.join(names[:-1])} and {names[-1]}"


def does_not_show(findings: Mapping[str, Any]) -> list[str]:
    """What the result does NOT show, adapted to the outcome and the numbers of this case."""
    suspect = _name(findings.get("suspect"))
    teachers = _records(findings.get("teachers"))
    values = [v for v in (as_number(t.get("log10_lr")) for t in teachers) if v is not None]
    points = []
    if values:
        points.append(
            f"The likelihood ratio is not the probability that {suspect} was trained on a teacher's outputs. "
            f"An LR of about {lr_value(max(values))} says how much more probable the observations are under "
            "one proposition than under the other; how probable the proposition itself is also depends on "
            "other information, which is for the court (confusing the two is the 'prosecutor's fallacy').")
    points += [
        "It does not show how much of a teacher's output was used, when, or through which route "
        "(directly, or through a dataset built by someone else).",
        f"It does not show that the developer of {suspect} acted knowingly or intentionally.",
        "It does not show that any terms of use or licence were breached; that is a legal question.",
    ]
    if outcome_of(findings) != "attributed":
        points.append("An inconclusive result or support for Hd does not prove independence: a small amount "
                      "of teacher data, or data passed through another model, may leave no measurable trace.")
    if any(t.get("supports") == "Hp" and t.get("beats_other_candidates") is False for t in teachers):
        points.append("Where a teacher is supported but not singled out, a related model (another version "
                      "of the same teacher, say) explains the observations equally well.")
    return points


def answer_view(suspect: str, teacher: Mapping[str, Any]) -> dict[str, Any]:
    log10_lr = as_number(teacher.get("log10_lr"))
    css = {"Hp": "hp", "Hd": "hd", "inconclusive": "inc"}
    return {"name": teacher.get("name"), "answer": answer_sentence(suspect, teacher),
            "strength": strength_sentence(teacher), "supports": teacher.get("supports"),
            "css": css.get(teacher.get("supports"), "unknown") if isinstance(teacher.get("supports"), str)
            else "unknown",
            "log10_lr": teacher.get("log10_lr"), "lr": "—" if log10_lr is None else lr_value(log10_lr),
            "bounds": fmt_range(teacher.get("lr_bounds"), fmt_signed), "score": teacher.get("score"),
            "verbal": teacher.get("verbal"), "beats": teacher.get("beats_other_candidates")}


# --------------------------------------------------------------------------------------------------
# Lines of evidence
# --------------------------------------------------------------------------------------------------

def _z_words(z: float) -> str:
    size = abs(z)
    if size >= 3:
        return "far outside the panel's spread"
    if size >= 2:
        return "outside the panel's usual spread"
    if size >= 1:
        return "at the edge of the panel's spread"
    return "within the panel's spread"


def _position(value: float, panel: list[float]) -> str:
    above = sum(v < value for v in panel)
    below = sum(v > value for v in panel)
    span = f"panel {fmt(min(panel))} to {fmt(max(panel))}"
    if above == len(panel):
        return f"higher than all {len(panel)} panel models ({span})"
    if below == len(panel):
        return f"lower than all {len(panel)} panel models ({span})"
    return f"higher than {above} and lower than {below} of the {len(panel)} panel models ({span})"


def _interval_words(ci: Any, panel: list[float]) -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return ""
    low, high = as_number(ci[0]), as_number(ci[1])
    if low is None or high is None:
        return ""
    text = f"; 95% bootstrap interval {fmt(low)} to {fmt(high)}"
    if panel and low > max(panel):
        return text + ", entirely above every panel value"
    if panel and high < min(panel):
        return text + ", entirely below every panel value"
    return text + (", overlapping the panel's range, so the separation is not clear-cut" if panel else "")


def _panel_numbers(entry: Mapping[str, Any]) -> list[float]:
    values = map(as_number, _mapping(entry.get("panel_values")).values())
    return [v for v in values if v is not None]


def describe_line(teacher_name: str, entry: Mapping[str, Any]) -> str:
    """One sentence, built only from the recorded numbers, placing the suspect relative to the panel."""
    value = as_number(entry.get("suspect_value"))
    if value is None:
        return f"Toward {teacher_name}: no value was recorded for the suspect."
    panel = _panel_numbers(entry)
    sentence = f"Toward {teacher_name}, the suspect measures {fmt(value)}"
    sentence += f", {_position(value, panel)}" if panel else " (no panel values recorded)"
    z = as_number(entry.get("z"))
    if z is not None:
        sentence += f"; z = {z:+.2f}, {_z_words(z)}"
    sentence += _interval_words(entry.get("ci95"), panel)
    p_value = as_number(entry.get("p_value"))
    if p_value is not None:
        sentence += "; permutation p " + ("< 0.001" if p_value < 0.001 else f"= {fmt_p(p_value)}")
    return sentence + "."


@dataclass
class LineView:
    """Everything the template shows for one line of evidence, across all candidate teachers."""

    key: str
    title: str
    purpose: str
    statistics: list[str]
    teachers: list[Any]
    rows: list[dict[str, Any]]
    sentences: list[str]
    components: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    figure: dict[str, Any] | None = None
    #: True/False when findings say whether the line enters the likelihood ratio; None when they don't.
    fused: bool | None = None


def _line_keys(teachers: list[Mapping[str, Any]]) -> list[str]:
    found: list[str] = []
    for teacher in teachers:
        found += [k for k in _mapping(teacher.get("evidence")) if k not in found]
    return [k for k in LINES if k in found] + sorted(k for k in found if k not in LINES)


def _entry(teacher: Mapping[str, Any], line: str) -> Mapping[str, Any]:
    return _mapping(_mapping(teacher.get("evidence")).get(line))


def _row(label: Any, kind: str, cells: list[str]) -> dict[str, Any]:
    return {"label": label, "kind": kind, "cells": cells}


def _line_rows(panel: list[Any], entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows: suspect, each panel model, z / interval / p / prompts, scalar extras. Columns: teachers."""
    refs = list(panel)
    for entry in entries:
        refs += [r for r in _mapping(entry.get("panel_values")) if r not in refs]
    rows = [_row("suspect", "suspect", [fmt(e.get("suspect_value")) for e in entries])]
    rows += [_row(ref, "panel", [fmt(_mapping(e.get("panel_values")).get(ref)) for e in entries])
             for ref in refs[:MAX_ROWS]]
    rows.append(_row("z against the panel", "stat", [fmt_signed(e.get("z")) for e in entries]))
    rows.append(_row("95% interval (suspect)", "stat", [fmt_range(e.get("ci95")) for e in entries]))
    if any("p_value" in e for e in entries):
        rows.append(_row("permutation p", "stat", [fmt_p(e.get("p_value")) for e in entries]))
    rows.append(_row("prompts", "stat", [fmt(e.get("n_prompts")) for e in entries]))
    return rows + _scalar_rows(entries)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar_rows(entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Line-specific single values (counts, rates) as further rows, so nothing recorded is hidden."""
    keys = sorted({k for e in entries for k, v in e.items() if k not in CORE_KEYS and _is_scalar(v)})
    return [_row(key.replace("_", " "), "extra", [fmt(e.get(key)) for e in entries])
            for key in keys[:MAX_ROWS]]


def _sub_entries(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Component measures (for example stylometric families): entries nested one or two levels down."""
    found: dict[str, Mapping[str, Any]] = {}
    for key, value in entry.items():
        if key in CORE_KEYS or not isinstance(value, Mapping):
            continue
        if "suspect_value" in value:
            found[key] = value
        else:
            found.update({k: v for k, v in value.items() if isinstance(v, Mapping) and "suspect_value" in v})
    return found


def _components(entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    subs = [_sub_entries(e) for e in entries]
    names = sorted({k for s in subs for k in s})
    rows = []
    for name in names[:MAX_ROWS]:
        cells = []
        for sub in subs:
            item = sub.get(name)
            cells.append("—" if item is None else
                         f"{fmt(item.get('suspect_value'))} (panel {_span(_panel_numbers(item))}; "
                         f"z {fmt_signed(item.get('z'))})")
        rows.append({"label": name.replace("_", " "), "cells": cells})
    return rows


def _span(values: list[float]) -> str:
    return f"{fmt(min(values))} to {fmt(max(values))}" if values else "—"


#: Preferred column order of phrase-like tables; other columns follow alphabetically.
_COLUMN_ORDER = ("phrase", "text", "name", "teacher_rate", "suspect_rate", "panel_base_rate", "log_odds_z")


def _tables(teachers: list[Mapping[str, Any]], entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Lists of records (top phrases, canary hits) as one table per teacher."""
    tables = []
    for teacher, entry in zip(teachers, entries, strict=True):
        for key in sorted(entry):
            rows = _records(entry[key])
            if key in CORE_KEYS or not rows:
                continue
            found = {c for row in rows for c in row}
            columns = [c for c in _COLUMN_ORDER if c in found] + sorted(found - set(_COLUMN_ORDER))
            columns = columns[:8]
            tables.append({"teacher": teacher.get("name"), "key": key.replace("_", " "), "columns": columns,
                           "rows": [[_cell(row.get(c)) for c in columns] for row in rows[:MAX_ROWS]],
                           "more": max(0, len(rows) - MAX_ROWS)})
    return tables


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else fmt(value)


def _fused(findings: Mapping[str, Any], key: str) -> bool | None:
    lines = findings.get("fused_lines")
    return key in lines if isinstance(lines, list) else None


def line_views(findings: Mapping[str, Any], figures: FigureSet) -> list[LineView]:
    teachers = _records(findings.get("teachers"))
    panel = [p.get("name") for p in _records(findings.get("panel"))]
    views = []
    for key in _line_keys(teachers):
        title, purpose = LINES.get(key, (key.replace("_", " ").capitalize(), ""))
        entries = [_entry(t, key) for t in teachers]
        statistics = [as_text(e.get("statistic")) for e in entries if e.get("statistic")]
        views.append(LineView(
            key=key, title=title, purpose=purpose, statistics=list(dict.fromkeys(statistics)),
            teachers=[t.get("name") for t in teachers], rows=_line_rows(panel, entries),
            sentences=[describe_line(_name(t.get("name")), e)
                       for t, e in zip(teachers, entries, strict=True) if e],
            components=_components(entries), tables=_tables(teachers, entries),
            figure=figures.take(f"line_{key}"), fused=_fused(findings, key)))
    return views


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------

class FigureSet:
    """The run's figures as data URIs, so the HTML opens from anywhere and the PDF fetches nothing.

    Named slots (``lr_scale``, ``line_<line>``, ``tippett``) are taken by the sections that show them;
    whatever is left is shown at the end of the findings, so every figure the run produced appears.
    """

    def __init__(self, run_dir: Path) -> None:
        self._stems: dict[str, Path] = {}
        folder = run_dir / "figures"
        paths = sorted(folder.iterdir()) if folder.is_dir() else []
        for path in paths:
            suffix = path.suffix.lower()
            # PNG wins over an SVG of the same stem: smaller, and drawn the same by every renderer.
            wanted = suffix == ".png" or (suffix == ".svg" and path.stem not in self._stems)
            if wanted and path.is_file():
                self._stems[path.stem] = path
        self._taken: set[str] = set()

    def take(self, stem: str) -> dict[str, Any]:
        """The figure for a slot, or a note naming the file that was not produced."""
        self._taken.add(stem)
        path = self._stems.get(stem)
        return self._load(path) if path else {"src": None, "missing": f"figures/{stem}.png", "name": stem}

    def leftovers(self) -> list[dict[str, Any]]:
        return [self._load(p) for stem, p in sorted(self._stems.items()) if stem not in self._taken]

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        rel, size = f"figures/{path.name}", path.stat().st_size
        if size > MAX_FIGURE_BYTES:
            return {"src": None, "missing": f"{rel} ({size:,} bytes, too large to embed)", "name": path.stem}
        mime = "image/png" if path.suffix.lower() == ".png" else "image/svg+xml"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return {"src": f"data:{mime};base64,{data}", "missing": None, "name": path.stem, "rel": rel}


# --------------------------------------------------------------------------------------------------
# Exhibits, method, limitations, custody
# --------------------------------------------------------------------------------------------------

def exhibit_views(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Side-by-side excerpts with the phrases to highlight and their panel base rates."""
    attributed = _mapping(findings.get("conclusion")).get("attributed_teacher")
    views = []
    for exhibit in _records(findings.get("exhibits"))[:MAX_EXHIBITS]:
        phrases = _records(exhibit.get("phrases"))[:MAX_PHRASES]
        views.append({
            "prompt_key": exhibit.get("prompt_key"), "prompt": exhibit.get("prompt"),
            "teacher_name": exhibit.get("teacher_name") or attributed or "candidate teacher",
            "teacher": exhibit.get("teacher"), "suspect": exhibit.get("suspect"),
            "reference": exhibit.get("reference"),
            "reference_name": exhibit.get("reference_name") or "reference model",
            "phrases": phrases, "phrase_texts": [p.get("phrase") for p in phrases]})
    return views


def leak_views(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    leaks = _records(findings.get("identity_leaks"))[:MAX_LEAKS]
    return [dict(leak, matches=[leak.get("match")] if leak.get("match") else []) for leak in leaks]


def scale_rows(teachers: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The verbal scale with each teacher placed in its band, saying when the band was overruled."""
    rows = []
    for index, (low, high, words) in enumerate(VERBAL_SCALE):
        placed = []
        for teacher in teachers:
            if scale_index(teacher.get("log10_lr")) != index:
                continue
            side = "Hp" if (as_number(teacher.get("log10_lr")) or 0) >= 0 else "Hd"
            note = "; within the inconclusive band, so reported as inconclusive" \
                if teacher.get("supports") == "inconclusive" and index > 0 else ""
            placed.append({"name": teacher.get("name"), "note": f"(for {side}{note})"})
        span = f"{low:.1f} to {high:.1f}" if math.isfinite(high) else f"above {low:.1f}"
        rows.append({"range": span, "words": words, "teachers": placed})
    return rows


def data_sentence(data: Mapping[str, Any]) -> str:
    analysed, total = data.get("n_prompts_analysed"), data.get("n_prompts_total")
    if analysed is None:
        return "the number of prompts analysed was not recorded."
    text = f"{fmt(analysed)} prompts answered by every model"
    if total is not None:
        text += f", of {fmt(total)} prompts in the case"
    excluded = _mapping(data.get("excluded"))
    if excluded:
        counts = ", ".join(f"{as_text(k)} {fmt(v)}" for k, v in sorted(excluded.items()))
        text += f" (excluded: {counts})"
    return text + "."


def band_sentence(findings: Mapping[str, Any]) -> str:
    band = _mapping(findings.get("parameters")).get("inconclusive_band")
    if isinstance(band, list) and len(band) == 2 and all(as_number(b) is not None for b in band):
        return (f"A log10 LR between {fmt_signed(band[0])} and {fmt_signed(band[1])} (an LR between "
                f"{lr_value(float(band[0]))} and {lr_value(float(band[1]))}) is reported as inconclusive.")
    return "The band of log10 LR reported as inconclusive was not recorded."


def validation_sentence(validation: Mapping[str, Any]) -> str:
    """What the validation numbers mean for this report, in two or three sentences."""
    cases = validation.get("n_cases")
    pairs = fmt(validation.get("n_pairs"))
    text = (f"The method was validated on {fmt(cases)} cases ({pairs} suspect/teacher pairs) whose "
            "training lineage is known, holding out whole model lineages so that no model is "
            "judged by a calibration it helped to fit.")
    cllr, cllr_min = as_number(validation.get("cllr")), as_number(validation.get("cllr_min"))
    if cllr is not None and cllr_min is not None:
        text += (f" Cllr = {fmt(cllr)} (1 would mean the LRs carry no information), of which "
                 f"{fmt(max(cllr - cllr_min, 0.0))} is calibration loss (Cllr_min = {fmt(cllr_min)}).")
    if (as_number(cases) or 0) and (as_number(cases) or 0) < 30:
        text += f" With only {fmt(cases)} validation cases these error rates are themselves uncertain."
    return text


def validation_rows(validation: Mapping[str, Any]) -> list[dict[str, str]]:
    formatters = {"num": fmt, "pct": fmt_pct}
    rows = [{"label": label, "value": formatters[kind](validation[key])}
            for key, label, kind in VALIDATION_METRICS if key in validation]
    known = {k for k, _, _ in VALIDATION_METRICS} | {"calibration_file", "calibration_sha256"}
    rows += [{"label": key.replace("_", " "), "value": fmt(validation[key])}
             for key in sorted(validation) if key not in known and _is_scalar(validation[key])]
    return rows


def _seconds(step: Mapping[str, Any]) -> str:
    try:
        start = _dt.datetime.fromisoformat(str(step.get("started")))
        end = _dt.datetime.fromisoformat(str(step.get("finished")))
        return f"{(end - start).total_seconds():.0f}"
    except (TypeError, ValueError):
        return "—"


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested mapping as sorted (dotted key, text) rows: model files and their hashes, one per row."""
    if not isinstance(value, Mapping):
        return [(prefix or "value", as_text(value))]
    rows: list[tuple[str, str]] = []
    for key, item in sorted(value.items()):
        nested = isinstance(item, Mapping)
        rows += _flat(item, f"{prefix}{key}/") if nested else [(f"{prefix}{key}", as_text(item))]
    return rows


def _json(value: Any) -> str:
    """JSON text of a parameter, so null, [] and 0 stay distinguishable in the appendix."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def custody_view(manifest: Mapping[str, Any], findings: Mapping[str, Any]) -> dict[str, Any]:
    """The chain-of-custody appendix, from the manifest (falling back to findings where it is silent)."""
    environment = _mapping(manifest.get("environment") or findings.get("environment"))
    parameters = _mapping(manifest.get("parameters") or findings.get("parameters"))
    return {
        "case_file": _mapping(manifest.get("case_file")),
        "inputs": _records(manifest.get("inputs") or findings.get("inputs")),
        "collections": collection_rows(_records(manifest.get("inputs") or findings.get("inputs"))),
        "model": _flat(manifest.get("model") or findings.get("model") or {}),
        "parameters": sorted((str(k), v if isinstance(v, str) else _json(v)) for k, v in parameters.items()),
        "parameters_sha256": manifest.get("parameters_sha256") or findings.get("parameters_sha256"),
        "environment": sorted((k, as_text(v)) for k, v in environment.items() if k != "packages"),
        "packages": sorted(_mapping(environment.get("packages")).items()),
        "steps": [dict(s, seconds=_seconds(s)) for s in _records(manifest.get("steps"))],
        # The report's own files are recorded after rendering: any entry for them here is a stale one.
        "artifacts": sorted((str(rel), _mapping(a)) for rel, a in _mapping(manifest.get("artifacts")).items()
                            if rel not in (HTML_NAME, PDF_NAME)),
    }


def collection_rows(inputs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per source collected with ``forensics collect``: who answered what, when, with which settings."""
    rows = []
    for entry in inputs:
        c = _mapping(entry.get("collection"))
        if not c:
            continue
        rows.append({"name": entry.get("name"), "role": as_text(entry.get("role")),
                     "endpoint": "; ".join(as_text(v) for v in c.get("endpoints") or []),
                     "model": "; ".join(as_text(v) for v in c.get("models") or []),
                     "served": "; ".join(as_text(v) for v in c.get("served_models") or []),
                     "parameters": "; ".join(_json(p) for p in c.get("parameters") or []),
                     "span": f"{as_text(c.get('first'))} to {as_text(c.get('last'))}",
                     "counts": f"{as_text(c.get('answered'))} answered, {as_text(c.get('truncated'))} cut at "
                               f"max_tokens, {as_text(c.get('failed'))} failed"})
    return rows


def timestamp(findings: Mapping[str, Any], manifest: Mapping[str, Any]) -> _dt.datetime:
    """The report's fixed date: when the findings were generated, so reruns give the same PDF metadata."""
    for value in (findings.get("generated"), manifest.get("created")):
        try:
            stamp = _dt.datetime.fromisoformat(str(value))
        except ValueError:
            continue
        return stamp.astimezone(_dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=_dt.UTC)
    return _dt.datetime(2000, 1, 1, tzinfo=_dt.UTC)


def context(findings: Mapping[str, Any], manifest: Mapping[str, Any], figures: FigureSet) -> dict[str, Any]:
    """Everything the template needs: the template itself computes nothing."""
    teachers = _records(findings.get("teachers"))
    suspect = _name(findings.get("suspect"))
    validation, data = _mapping(findings.get("validation")), _mapping(findings.get("data"))
    outcome = outcome_of(findings)
    return {
        "case": as_text(findings.get("case")) or "(no case id)", "suspect": findings.get("suspect"),
        "title": as_text(findings.get("title")) or f"Was {suspect} trained on a candidate teacher's outputs?",
        "generated": as_text(findings.get("generated")) or "(not recorded)",
        "stamp": timestamp(findings, manifest).isoformat(),
        "version": as_text(_mapping(findings.get("environment")).get("forensics")) or __version__,
        "outcome_class": {"attributed": "attributed", "inconclusive": "inconclusive"}.get(outcome, "none"),
        "headline": headline(findings), "statement": _mapping(findings.get("conclusion")).get("statement"),
        "answers": [answer_view(suspect, t) for t in teachers], "does_not_show": does_not_show(findings),
        "lr_scale": figures.take("lr_scale"),
        "propositions": _mapping(findings.get("propositions")),
        "candidates": _records(findings.get("candidates")), "panel": _records(findings.get("panel")),
        "data_sentence": data_sentence(data),
        "lines": line_views(findings, figures),
        "exhibits": exhibit_views(findings), "n_exhibits": len(_records(findings.get("exhibits"))),
        "leaks": leak_views(findings), "n_leaks": len(_records(findings.get("identity_leaks"))),
        "band_sentence": band_sentence(findings), "scale_rows": scale_rows(teachers),
        "validation": validation, "validation_rows": validation_rows(validation),
        "fused_lines": [str(x) for x in findings.get("fused_lines") or []],
        "validation_sentence": validation_sentence(validation), "tippett": figures.take("tippett"),
        "limitations": (findings.get("limitations") if isinstance(findings.get("limitations"), list)
                        else [])[:MAX_ROWS],
        "warnings": _records(data.get("warnings"))[:MAX_ROWS],
        "custody": custody_view(manifest, findings),
        "other_figures": figures.leftovers(),
        "limits": {"response": RESPONSE_LIMIT, "prompt": PROMPT_LIMIT},
    }


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

def _environment() -> Any:
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


class OfflineFetcher:
    """WeasyPrint URL fetcher that serves only ``data:`` URLs and files inside the run folder.

    A report about hostile text must reach neither the network nor the rest of the disk while it is
    rendered; every refusal is logged and kept in :attr:`refused` so tests and reviewers can see it.
    """

    def __init__(self, root: Path) -> None:
        from weasyprint.urls import URLFetcher

        check = self.check

        class _Fetcher(URLFetcher):
            def fetch(self, url: str, headers: Any = None) -> Any:
                check(url)
                return super().fetch(url, headers)

        self.root = root.resolve()
        self.refused: list[str] = []
        self.fetcher = _Fetcher(allowed_protocols=("data", "file"), allow_redirects=False, timeout=1)

    def check(self, url: str) -> None:
        """Raise (WeasyPrint then skips the resource) unless ``url`` is data: or a run-folder file."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "data" or (scheme == "file" and self._inside(url)):
            return
        self.refused.append(url[:200])
        LOGGER.warning("report: refused to fetch %r (only data: URLs and run-folder files)", url[:200])
        raise ValueError(f"refused to fetch {url[:200]!r}")

    def _inside(self, url: str) -> bool:
        path = Path(unquote(urlsplit(url).path)).resolve()
        return path == self.root or self.root in path.parents


@dataclass
class PdfResult:
    data: bytes
    pages: int
    refused: list[str]


def render_pdf(html: str, run_dir: str | Path, attachments: Mapping[str, bytes],
               when: _dt.datetime) -> PdfResult:
    """HTML -> PDF/A-3b with ``attachments`` embedded; fixed dates so the metadata is the same every run."""
    import weasyprint

    offline = OfflineFetcher(Path(run_dir))
    document = weasyprint.HTML(string=html, base_url=Path(run_dir).resolve().as_uri() + "/",
                               url_fetcher=offline.fetcher)
    files = [weasyprint.Attachment(file_obj=io.BytesIO(data), name=name, description=f"{name} of this run",
                                   created=when, modified=when, relationship="Data",
                                   url_fetcher=offline.fetcher)
             for name, data in attachments.items()]
    rendered = document.render(pdf_variant=PDF_VARIANT)
    data = rendered.write_pdf(attachments=files, pdf_variant=PDF_VARIANT)
    return PdfResult(data=data, pages=len(rendered.pages), refused=offline.refused)


def _read_json(path: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed object and the exact bytes (the bytes are what the PDF attaches)."""
    try:
        raw = path.read_bytes()
        value = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", path=path, fix="run the earlier steps of the case first") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(f"not valid JSON ({error})", path=path,
                         fix="re-run the step that writes it") from None
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path=path, fix="re-run the step that writes it")
    return value, raw


@dataclass
class Report:
    """What :func:`build` produced; ``pages`` and ``refused`` are for display and tests."""

    html: Path
    pdf: Path
    pages: int
    refused: list[str]


def build(run_dir: str | Path) -> Report:
    """Render report.html and report.pdf into the run folder (atomically) and record both in the manifest."""
    run_dir = Path(run_dir)
    findings_path, manifest_path = run_dir / FINDINGS_NAME, run_dir / MANIFEST_NAME
    findings, findings_bytes = _read_json(findings_path)
    manifest = Manifest.load(run_dir)
    html = render_html(findings, manifest.data, run_dir)
    html_path, pdf_path = run_dir / HTML_NAME, run_dir / PDF_NAME
    atomic_write_text(html_path, html)
    attachments = {MANIFEST_NAME: manifest_path.read_bytes() if manifest_path.exists() else b"{}\n",
                   FINDINGS_NAME: findings_bytes}
    pdf = render_pdf(html, run_dir, attachments, timestamp(findings, manifest.data))
    atomic_write_bytes(pdf_path, pdf.data)
    manifest = Manifest.load(run_dir)
    manifest.record_artifact(html_path, STEP)
    manifest.record_artifact(pdf_path, STEP)
    manifest.save()
    return Report(html=html_path, pdf=pdf_path, pages=pdf.pages, refused=pdf.refused)


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Build the report of a run folder; returns ``(html_path, pdf_path)``."""
    report = build(run_dir)
    return report.html, report.pdf


def run_step(case: Any, run: Any) -> dict[str, Any]:
    """Step 07 of the pipeline: the report reads only the run folder, so the case itself is not needed."""
    report = build(run.root)
    return {"html": str(report.html), "pdf": str(report.pdf), "pages": report.pages,
            "refused_urls": len(report.refused)}
