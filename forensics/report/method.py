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
            "phrases": phrases, "phrase_texts": [p.get("phrase") for p in phrases]})
    return views


def leak_views(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    leaks = records_of(findings.get("identity_leaks"))[:MAX_LEAKS]
    return [dict(leak, matches=[leak.get("match")] if leak.get("match") else []) for leak in leaks]


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
             for key in sorted(validation) if key not in known and is_scalar(validation[key])]
    return rows
