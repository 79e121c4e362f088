"""Everything the template needs, computed here so the template computes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forensics import __version__
from forensics.escaping import RESPONSE_LIMIT, as_text
from forensics.lr_words import as_number
from forensics.report.appendix import custody_view, timestamp
from forensics.report.constants import MAX_ROWS, PROMPT_LIMIT
from forensics.report.figure_set import FigureSet
from forensics.report.lines import GLOSSARY, fused_lines_phrase, line_views
from forensics.report.method import (
    band_sentence,
    exhibit_views,
    identity_rows,
    leak_views,
    scale_rows,
    validation_rows,
    validation_sentence,
)
from forensics.report.reading import mapping_of, records_of, short_name
from forensics.report.sentences import (
    answer_views,
    comparison_sentence,
    cover_cautions,
    data_sentence,
    does_not_show,
    outcome_of,
    several_member_families,
)
from forensics.results import contract_problem


def families_on_the_scale(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Families of several members as the verbal-scale table names them (beside their members' rows)."""
    return [dict(f, name=f"{as_text(f.get('name'))} (family)") for f in several_member_families(findings)]


def context(findings: Mapping[str, Any], manifest: Mapping[str, Any], figures: FigureSet) -> dict[str, Any]:
    """Everything the template needs: the template itself computes nothing."""
    teachers = records_of(findings.get("teachers"))
    suspect = short_name(findings.get("suspect"))
    teacher_answers, family_answers = answer_views(findings)
    validation, data = mapping_of(findings.get("validation")), mapping_of(findings.get("data"))
    outcome = outcome_of(findings)
    return {
        "case": as_text(findings.get("case")) or "(no case id)", "suspect": findings.get("suspect"),
        "title": as_text(findings.get("title")) or f"Was {suspect} trained on a candidate teacher's outputs?",
        "generated": as_text(findings.get("generated")) or "(not recorded)",
        "stamp": timestamp(findings, manifest).isoformat(),
        "contract_problem": contract_problem(findings),
        "version": as_text(mapping_of(findings.get("environment")).get("forensics")) or __version__,
        "outcome_class": {"attributed": "attributed", "family attributed": "attributed",
                          "inconclusive": "inconclusive"}.get(outcome, "none"),
        # The conclusion is worded once, by step 06 (evidence.py); the report quotes it rather than rewording it.
        "statement": as_text(mapping_of(findings.get("conclusion")).get("statement"))
        or "No conclusion statement was recorded in the findings.",
        "answers": teacher_answers, "family_answers": family_answers,
        # a named teacher leads the cover; otherwise the families, where the answer then lies
        "teachers_first": outcome == "attributed" or not family_answers,
        "comparison_sentence": comparison_sentence(findings), "does_not_show": does_not_show(findings),
        "cautions": cover_cautions(findings),
        "lr_scale": figures.take("lr_scale"),
        "propositions": mapping_of(findings.get("propositions")),
        "candidates": records_of(findings.get("candidates")), "panel": records_of(findings.get("panel")),
        "data_sentence": data_sentence(data),
        "lines": line_views(findings, figures),
        "exhibits": exhibit_views(findings), "n_exhibits": len(records_of(findings.get("exhibits"))),
        "leaks": leak_views(findings), "n_leaks": len(records_of(findings.get("identity_leaks"))),
        "identity_rows": identity_rows(findings), "glossary": GLOSSARY,
        "band_sentence": band_sentence(findings),
        "scale_rows": scale_rows([*teachers, *families_on_the_scale(findings)]),
        "validation": validation, "validation_rows": validation_rows(validation),
        "fused_lines": fused_lines_phrase(findings),
        # the method paragraph describes the rival discount only where the calibration applied one
        "rival_discount": any(as_number(mapping_of(level).get("rival_slope")) or 0
                              for level in mapping_of(validation.get("levels")).values()),
        "validation_sentence": validation_sentence(validation, data.get("n_prompts_analysed")),
        "tippett": figures.take("tippett"),
        "limitations": (findings.get("limitations") if isinstance(findings.get("limitations"), list)
                        else [])[:MAX_ROWS],
        "warnings": records_of(data.get("warnings"))[:MAX_ROWS],
        "custody": custody_view(manifest, findings),
        "other_figures": figures.leftovers(),
        "limits": {"response": RESPONSE_LIMIT, "prompt": PROMPT_LIMIT},
    }
