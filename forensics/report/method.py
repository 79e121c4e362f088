"""Exhibits, the verbal scale, the inconclusive band and the validated error rates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from forensics.escaping import MAX_PHRASES
from forensics.lr_words import VERBAL_BANDS, as_number, band_index, band_range, lr_value
from forensics.report.constants import MAX_EXHIBITS, MAX_LEAKS
from forensics.report.numbers import fmt, fmt_pct, fmt_signed
from forensics.report.reading import is_scalar, mapping_of, records_of

#: Validation metrics per level, in the order and words the method section uses.
LEVEL_METRICS = (
    ("n_pairs", "pairs scored", "num"),
    ("pair_auc", "area under the ROC curve of the likelihood ratios over pairs (1 = perfect separation)", "num"),
    ("cllr", "Cllr: overall cost of the LRs (0 = perfect, 1 = uninformative)", "num"),
    ("cllr_min", "Cllr_min: the cost left after perfect calibration (discrimination only)", "num"),
    ("rate_misleading_hp", "misleading evidence when Hp is true (LR < 1)", "pct"),
    ("rate_misleading_hd", "misleading evidence when Hd is true (LR > 1)", "pct"),
)
#: Case outcomes: (key, words, key of the denominator).
CASE_METRICS = (
    ("students_family_attributed_correctly", "students attributed to a documented teacher family", "n_students"),
    ("students_attributed_correctly", "students attributed to a documented teacher", "n_students"),
    ("students_misattributed_family", "students attributed to a family they did not learn from", "n_students"),
    ("false_attributions_controls", "human-data controls attributed a teacher or family", "n_controls"),
    ("controls_with_a_supported_teacher_or_family", "human-data controls with any supported candidate",
     "n_controls"),
)
#: The case outcomes shown per small panel size: family attributions, right and wrong, and controls with a
#: supported candidate (why nothing is named with references of one model line; absent from older calibrations).
PANEL_METRICS = tuple(m for m in CASE_METRICS if m[0] in ("students_family_attributed_correctly",
                                                         "students_misattributed_family",
                                                         "false_attributions_controls",
                                                         "controls_with_a_supported_teacher_or_family"))
LEVEL_NAMES = {"family": "family (trained on some model of the family)", "teacher": "teacher",
               "comparison": "candidate against candidate"}


def exhibit_views(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Side-by-side excerpts with the phrases to highlight and their panel base rates."""
    attributed = mapping_of(findings.get("conclusion")).get("attributed_teacher")
    views = []
    for exhibit in records_of(findings.get("exhibits"))[:MAX_EXHIBITS]:
        phrases = records_of(exhibit.get("phrases"))[:MAX_PHRASES]
        views.append({
            "prompt_key": exhibit.get("prompt_key"), "prompt": exhibit.get("prompt"),
            "teacher_name": exhibit.get("teacher_name") or attributed or "candidate teacher",
            "teacher": exhibit.get("teacher"), "suspect": exhibit.get("suspect"),
            "reference": exhibit.get("reference"),
            "reference_name": exhibit.get("reference_name") or "reference model",
            "similarity_suspect_teacher": exhibit.get("similarity_suspect_teacher"),
            "similarity_reference_teacher": exhibit.get("similarity_reference_teacher"),
            "phrases": phrases, "phrase_texts": [p.get("phrase") for p in phrases]})
    return views


def leak_views(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    leaks = records_of(findings.get("identity_leaks"))[:MAX_LEAKS]
    return [dict(leak, matches=[leak.get("match")] if leak.get("match") else []) for leak in leaks]


def identity_rows(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per model, how many of its answers name a vendor or model as itself (by vendor) and how many only
    call it an AI or a language model: the suspect's own statements read against every model's base rate."""
    counts = mapping_of(findings.get("identity_counts"))
    rows = []
    for source in sorted(counts):
        entry = mapping_of(counts[source])
        by_vendor = mapping_of(entry.get("by_vendor"))
        named = ", ".join(f"{vendor} {fmt(n)}" for vendor, n in sorted(by_vendor.items())) or "none"
        rows.append({"source": source, "named": named, "unnamed": entry.get("unnamed"),
                     "suspect": source == findings.get("suspect")})
    return rows


def scale_rows(teachers: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The verbal scale with each teacher placed in its band, saying when the band was overruled."""
    rows = []
    for index, (low, high, phrase) in enumerate(VERBAL_BANDS):
        words = f"{phrase}{' either way' if index == 0 else ''} ({band_range(index)})"
        placed = []
        for teacher in teachers:
            if band_index(teacher.get("log10_lr")) != index:
                continue
            side = "Hp" if (as_number(teacher.get("log10_lr")) or 0) >= 0 else "Hd"
            note = "; within the inconclusive band, so reported as inconclusive" \
                if teacher.get("supports") == "inconclusive" and index > 0 else ""
            placed.append({"name": teacher.get("name"), "note": f"(for {side}{note})"})
        span = f"{low:.1f} to {high:.1f}" if math.isfinite(high) else f"above {low:.1f}"
        rows.append({"range": span, "words": words, "teachers": placed})
    return rows


def band_sentence(findings: Mapping[str, Any]) -> str:
    band = mapping_of(findings.get("parameters")).get("inconclusive_band")
    if isinstance(band, list) and len(band) == 2 and all(as_number(b) is not None for b in band):
        return (f"A log10 LR between {fmt_signed(band[0])} and {fmt_signed(band[1])} (an LR between "
                f"{lr_value(float(band[0]))} and {lr_value(float(band[1]))}) is reported as inconclusive.")
    return "The band of log10 LR reported as inconclusive was not recorded."


def validation_sentence(validation: Mapping[str, Any], n_prompts: Any = None) -> str:
    """What the validation numbers mean for this report, in two to four sentences, the last on validation
    cases of about this case's size (:func:`size_sentence`)."""
    cases = mapping_of(validation.get("cases"))
    family = mapping_of(validation.get("family"))
    n_cases = cases.get("n_cases")
    text = (f"The method was validated on {fmt(n_cases)} cases ({fmt(cases.get('n_students'))} students of "
            f"documented teachers, {fmt(cases.get('n_controls'))} human-data controls) whose training lineage is "
            "known, holding out whole model lineages so that no validation case is judged by a calibration it "
            "helped to fit (the calibration that weighs this case is then fitted on all of them); a second "
            "scheme also holds out the prompt source each case is measured on.")
    cllr, cllr_min = as_number(family.get("cllr")), as_number(family.get("cllr_min"))
    if cllr is not None and cllr_min is not None:
        text += (f" At family level Cllr = {fmt(cllr)} (1 would mean the LRs carry no information), of which "
                 f"{fmt(max(cllr - cllr_min, 0.0))} is calibration loss (Cllr_min = {fmt(cllr_min)}).")
    if (as_number(n_cases) or 0) and (as_number(n_cases) or 0) < 30:
        text += f" With only {fmt(n_cases)} validation cases these error rates are themselves uncertain."
    size = size_sentence(validation, n_prompts)
    return f"{text} {size}" if size else text


def size_sentence(validation: Mapping[str, Any], n_prompts: Any) -> str:
    """The validated outcomes at the prompt-set size nearest this case's ('' when either is unknown).

    Attribution rates depend on how many prompts a case has (fewer prompts, fewer students named), so the
    reader gets the rates of validation cases of about this size, not only those of the whole benchmark.
    """
    n = as_number(n_prompts)
    sizes = [mapping_of(v) for v in mapping_of(validation.get("per_prompt_set")).values()]
    keys = ("n_prompts", "n_students", "students_family_attributed_correctly", "n_controls",
            "false_attributions_controls")
    sizes = [v for v in sizes if all(is_scalar(v.get(k)) and as_number(v.get(k)) is not None for k in keys)]
    if n is None or not sizes:
        return ""
    near = min(sizes, key=lambda v: (abs(as_number(v["n_prompts"]) - n), -as_number(v["n_students"])))
    wrong = near.get("students_misattributed_family")
    wrong_part = ""
    if is_scalar(wrong) and as_number(wrong) is not None:
        wrong_part = (" and none to a family they did not learn from" if as_number(wrong) == 0
                      else f" and {fmt(wrong)} to a family they did not learn from")
    return (f"On the validation cases of {fmt(near['n_prompts'])} prompts, the validated size nearest this "
            f"case's {fmt(n_prompts)}, the method attributed {fmt(near['students_family_attributed_correctly'])} "
            f"of {fmt(near['n_students'])} students to a documented family{wrong_part}, and "
            f"{fmt(near['false_attributions_controls'])} of {fmt(near['n_controls'])} human-data controls to "
            f"any teacher or family.")


def panel_rows(validation: Mapping[str, Any]) -> list[dict[str, str]]:
    """The case outcomes with small panels (the validation's sub-panels of 2 and 3 references), one row per
    panel size and outcome: how much less the method can say, and how much more often it errs, with few
    references. Entries that are not well-formed are left out."""
    rows = []
    entries = [mapping_of(v) for v in mapping_of(validation.get("per_panel_size")).values()]
    for entry in sorted((e for e in entries if as_number(e.get("n_panel")) is not None),
                        key=lambda e: (as_number(e["n_panel"]), e.get("one_line") is True)):
        one_line = entry.get("one_line") is True
        panel = f"{fmt(entry['n_panel'])} references{' of one model line' if one_line else ''}"
        note = "; such panels name nothing" if one_line else ""
        for key, label, total in PANEL_METRICS:
            if all(is_scalar(entry.get(k)) and as_number(entry.get(k)) is not None for k in (key, total)):
                rows.append({"label": f"with panels of {panel} (drawn from the full panels; all prompts and "
                                      f"samples{note}): {label}",
                             "lolo": f"{fmt(entry[key])} of {fmt(entry[total])}", "cross": "—"})
    return rows


def validation_rows(validation: Mapping[str, Any]) -> list[dict[str, str]]:
    """The validated error rates, one row per measure: leave one lineage out, and each prompt source held out.

    Per level the figures pool every prompt set (all prompts and each prompt source alone); the case
    outcomes of the first scheme are those on all prompts, of the second over every held-out source.
    """
    formatters = {"num": fmt, "pct": fmt_pct}
    cross = mapping_of(validation.get("cross_source"))
    rows = []
    for level in ("family", "teacher", "comparison"):
        mine, other = mapping_of(validation.get(level)), mapping_of(cross.get(level))
        for key, label, kind in LEVEL_METRICS:
            values = [formatters[kind](m[key]) if m.get(key) is not None and is_scalar(m[key]) else "—"
                      for m in (mine, other)]
            if values != ["—", "—"]:
                rows.append({"label": f"{LEVEL_NAMES[level]}: {label}", "lolo": values[0], "cross": values[1]})
    mine, other = mapping_of(validation.get("cases")), mapping_of(cross.get("cases"))
    for key, label, total in CASE_METRICS:
        values = [f"{fmt(m[key])} of {fmt(m.get(total))}" if m.get(key) is not None and is_scalar(m[key]) else "—"
                  for m in (mine, other)]
        if values != ["—", "—"]:
            rows.append({"label": label, "lolo": values[0], "cross": values[1]})
    rows += panel_rows(validation)
    for name, level in sorted(mapping_of(validation.get("levels")).items()):
        level = mapping_of(level)
        if is_scalar(level.get("lower")) and is_scalar(level.get("upper")):
            label = f"{LEVEL_NAMES.get(name, name)}: LR bounds the calibration data support (ELUB, log10)"
            bounds = f"{fmt_signed(level['lower'])} to {fmt_signed(level['upper'])}"
            rows.append({"label": label, "lolo": bounds, "cross": "(shipped calibration)"})
    return rows
