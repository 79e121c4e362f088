"""The lines of evidence: one view per line, rows per teacher, a sentence built from the numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forensics.escaping import as_text
from forensics.lr_words import as_number
from forensics.report.constants import MAX_ROWS
from forensics.report.figure_set import FigureSet
from forensics.report.numbers import fmt, fmt_p, fmt_range, fmt_signed
from forensics.report.reading import is_scalar, mapping_of, records_of, short_name

#: Lines of evidence in the order the report presents them; other lines found in findings follow.
LINES = {
    "embedding": ("Semantic similarity (sentence embeddings)",
                  "How close the meaning and wording of the opening of each response (its first words) is "
                  "to the opening of the candidate teacher's response to the same prompt."),
    "wording": ("Shared wording (answer openings)",
                "How many of the same words and word pairs the opening of each response (its first words) "
                "shares with the opening of the candidate teacher's response to the same prompt, beyond the "
                "words every model uses for that prompt."),
    "stylometry": ("Formatting habits (stylometry)",
                   "Formatting habits (lists, headers, emphasis, openings and closings, sentence length): habits a "
                   "model picks up from the text it was trained on, largely independent of topic. Only they make "
                   "the score; function-word frequencies, character n-grams and topic-masked text are shown "
                   "beside them as components and do not enter it."),
    "markers": ("Teacher-specific phrases and identity markers",
                "Phrases the candidate teacher uses more than the reference panel does, self-identification "
                "as another model, and investigator-supplied canary strings. In the "
                "phrase table the rates are the share of answers containing the phrase, and log odds z is how "
                "strongly the phrase separates the teacher (weighted log-odds ratio, in standard errors)."),
    "clusters": ("Co-clustering of responses",
                 "Whether the suspect's responses fall in the same groups as the teacher's more often than "
                 "the panel's do, when all responses are clustered together. Clusters mostly follow the topic "
                 "of the prompt, so answers to one prompt often share a cluster whoever wrote them: values near "
                 "1 are common, and candidates whose answers always fall in the same clusters as one another get "
                 "identical values."),
}
#: How the method section names each line in a sentence ("the mean of the z-scores of the ... lines").
SHORT_NAMES = {"embedding": "semantic", "wording": "shared-wording", "stylometry": "formatting",
               "markers": "markers", "clusters": "co-clustering"}
#: The terms the evidence tables use, in plain words (the report's glossary).
GLOSSARY = (
    ("z against the panel", "how unusual the suspect's value is beside the reference models' values: the "
     "distance from their mean in their standard deviations, converted to allow for how few models estimate "
     "that spread, so that 2 is as unusual as two standard deviations out against a large panel"),
    ("95% interval (suspect)", "the range the suspect's value would take in 95% of resamplings of the prompts "
     "(bootstrap): how much it depends on which prompts happened to be asked"),
    ("permutation p", "the share of random reshufflings of which answers belong to which model that give a "
     "value at least as extreme: a small value says such a pattern would rarely arise if the answers were "
     "unrelated to the model that gave them (it is not the probability that they are unrelated)"),
    ("naive z", "the z computed without first removing what every model says to the same prompt; shown so the "
     "effect of that correction (for length and register shared by all models) can be seen"),
    ("full answers", "the same semantic measure on whole answers instead of their openings (reported, not "
     "part of the likelihood ratio)"),
    ("raw similarity", "the average cosine similarity of each model's answer openings to the teacher's, before "
     "any correction"),
    ("noise share / noise included", "in co-clustering, the share of the teacher's answers that fall in no "
     "cluster, and the line's values when those answers are counted as well"),
    ("formatting", "markdown and discourse habits: headers, lists, bold, typical openings and closings, line "
     "and sentence lengths"),
    ("mfw Burrows / Cosine Delta", "distances between models over the rates of their most frequent words "
     "(standard authorship-attribution measures)"),
    ("char ngrams / distorted ngrams", "the same over character sequences, and over text with topic words "
     "masked so that only function words and punctuation remain (text distortion)"),
    ("markers", "phrases that set the teacher apart (section 3), counted per 100 words"),
)
#: Fields every evidence entry has; anything else is shown as a further measure.
CORE_KEYS = frozenset({"statistic", "suspect_value", "panel_values", "z", "ci95", "n_prompts", "p_value"})


def _z_words(z: float) -> str:
    """How unusual the z says the suspect is beside the panel. The z is read for the panel's size
    (:func:`forensics.scoring.panel_size_z`): the normal deviate of the same tail probability, so "2" is as
    unusual as two standard deviations out against a large panel (with few references, the suspect is then
    further than that from the few references' own mean). The rank among the panel's models is said apart."""
    size = abs(z)
    if size >= 3:
        return "as unusual as more than three standard deviations from the mean of a large panel"
    if size >= 2:
        return "as unusual as two to three standard deviations from the mean of a large panel"
    if size >= 1:
        return "as unusual as one to two standard deviations from the mean of a large panel"
    return "no more unusual than one standard deviation from the mean of a large panel"


def _position(value: float, panel: list[float]) -> str:
    above = sum(v < value for v in panel)
    below = sum(v > value for v in panel)
    equal = len(panel) - above - below
    span = f"panel {fmt(min(panel))} to {fmt(max(panel))}"
    if above == len(panel):
        return f"higher than all {len(panel)} panel models ({span})"
    if below == len(panel):
        return f"lower than all {len(panel)} panel models ({span})"
    tied = f", equal to {equal}," if equal else ""
    return f"higher than {above}{tied} and lower than {below} of the {len(panel)} panel models ({span})"


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
    values = map(as_number, mapping_of(entry.get("panel_values")).values())
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
        found += [k for k in mapping_of(teacher.get("evidence")) if k not in found]
    return [k for k in LINES if k in found] + sorted(k for k in found if k not in LINES)


def _entry(teacher: Mapping[str, Any], line: str) -> Mapping[str, Any]:
    return mapping_of(mapping_of(teacher.get("evidence")).get(line))


def _row(label: Any, kind: str, cells: list[str]) -> dict[str, Any]:
    return {"label": label, "kind": kind, "cells": cells}


def _line_rows(panel: list[Any], entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows: suspect, each panel model, z / interval / p / prompts, scalar extras. Columns: teachers."""
    refs = list(panel)
    for entry in entries:
        refs += [r for r in mapping_of(entry.get("panel_values")) if r not in refs]
    rows = [_row("suspect", "suspect", [fmt(e.get("suspect_value")) for e in entries])]
    rows += [_row(ref, "panel", [fmt(mapping_of(e.get("panel_values")).get(ref)) for e in entries])
             for ref in refs[:MAX_ROWS]]
    rows.append(_row("z against the panel", "stat", [fmt_signed(e.get("z")) for e in entries]))
    rows.append(_row("95% interval (suspect)", "stat", [fmt_range(e.get("ci95")) for e in entries]))
    if any("p_value" in e for e in entries):
        rows.append(_row("permutation p", "stat", [fmt_p(e.get("p_value")) for e in entries]))
    rows.append(_row("prompts", "stat", [fmt(e.get("n_prompts")) for e in entries]))
    return rows + _scalar_rows(entries)


def _scalar_rows(entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Line-specific single values (counts, rates) as further rows, so nothing recorded is hidden."""
    keys = sorted({k for e in entries for k, v in e.items() if k not in CORE_KEYS and is_scalar(v)})
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
            rows = records_of(entry[key])
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


def fused_lines_phrase(findings: Mapping[str, Any]) -> str:
    """The fused lines named in words, "semantic, shared-wording and formatting" ("" without the list)."""
    lines = findings.get("fused_lines")
    names = [SHORT_NAMES.get(str(k), str(k).replace("_", " ")) for k in lines] if isinstance(lines, list) else []
    if len(names) < 2:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _fused(findings: Mapping[str, Any], key: str) -> bool | None:
    lines = findings.get("fused_lines")
    return key in lines if isinstance(lines, list) else None


def line_views(findings: Mapping[str, Any], figures: FigureSet) -> list[LineView]:
    teachers = records_of(findings.get("teachers"))
    panel = [p.get("name") for p in records_of(findings.get("panel"))]
    views = []
    for key in _line_keys(teachers):
        title, purpose = LINES.get(key, (key.replace("_", " ").capitalize(), ""))
        entries = [_entry(t, key) for t in teachers]
        statistics = [as_text(e.get("statistic")) for e in entries if e.get("statistic")]
        views.append(LineView(
            key=key, title=title, purpose=purpose, statistics=list(dict.fromkeys(statistics)),
            teachers=[t.get("name") for t in teachers], rows=_line_rows(panel, entries),
            sentences=[describe_line(short_name(t.get("name")), e)
                       for t, e in zip(teachers, entries, strict=True) if e],
            components=_components(entries), tables=_tables(teachers, entries),
            figure=figures.take(f"line_{key}"), fused=_fused(findings, key)))
    return views


# --------------------------------------------------------------------------------------------------
# Figures
