"""The answer in words: one sentence per candidate, its strength, what the result does not show."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from forensics.calibration import verbal_for
from forensics.escaping import as_text
from forensics.lr_words import as_number, lr_phrase, lr_value, verbal_words
from forensics.report.numbers import fmt, fmt_range, fmt_signed
from forensics.report.reading import mapping_of, records_of, short_name
from forensics.results import CAUTION_OPENINGS


def answer_sentence(suspect: str, teacher: Mapping[str, Any], singled_out: bool | None = None,
                    named: str | None = None, family_supported: bool | None = None) -> str:
    """The plain one-sentence answer for one candidate (teacher or family), from ``supports`` and whether the
    conclusion singled it out among the candidates (``None``: not recorded); ``named`` is the candidate of
    the same kind the conclusion named, if any; ``family_supported`` (teachers only) whether the conclusion
    found the teacher's family supported (a teacher is named only within a supported family)."""
    name, supports = short_name(teacher.get("name")), teacher.get("supports")
    members = teacher.get("members")
    what = (f"a model of the {name} family" if isinstance(members, list) and len(members) > 1 else name)
    if supports == "Hp":
        sentence = f"The evidence supports the proposition that {suspect} was trained on outputs of {what}."
        if singled_out is False and named:
            sentence += (f" It is not, however, the candidate the evidence singles out: {short_name(named)} "
                         "fits the suspect better.")
        elif singled_out is False and family_supported is False:
            sentence += (" It is not, however, singled out: the evidence does not support its family as a "
                         "whole, and a teacher is named only within a family the evidence supports.")
        elif singled_out is False:
            sentence += (f" It does not, however, single out {name}: another candidate fits the suspect as well "
                         "or nearly as well.")
        return sentence
    if supports == "Hd":
        return f"The evidence supports the proposition that {suspect} was developed independently of {what}."
    if supports == "inconclusive":
        return (f"Inconclusive for {name}: the evidence does not meaningfully favour either proposition, "
                "so no statement can be made either way.")
    recorded = as_text(supports)[:80] or "none"
    return f"No reliable answer was recorded for {name} (recorded outcome: {recorded})."


def strength_sentence(teacher: Mapping[str, Any]) -> str:
    """Strength in words and as an LR with its log10 value, noting when the LR sits at its ELUB bound."""
    log10_lr = as_number(teacher.get("log10_lr"))
    verbal = as_text(verbal_words(teacher))
    if log10_lr is None:
        return f"Strength of evidence: {verbal}; no likelihood ratio was recorded."
    sentence = (f"Strength of evidence: {verbal}. The observations are {lr_phrase(log10_lr)} "
                f"(likelihood ratio about {lr_value(log10_lr)}; log10 LR = {log10_lr:+.3f}).")
    if _at_bound(log10_lr, teacher.get("lr_bounds")):
        sentence += (" This is the strongest likelihood ratio the calibration allows in this direction (its "
                     "empirical bound, ELUB, set by how many labelled cases back the calibration): no stronger "
                     "statement is made.")
    return sentence + rival_sentence(teacher)


#: Rival discounts smaller than this (log10) are not worth a sentence: the LR would read "divided by about 1".
MIN_DISCOUNT_TOLD = 0.025


def rival_sentence(candidate: Mapping[str, Any]) -> str:
    """Why a trailing candidate's LR is lower than its score alone would give (the calibration's rival
    discount), what it would be without, where that changes its words, and what the discount does not mean;
    empty when less than :data:`MIN_DISCOUNT_TOLD` was taken off."""
    lead, discount = as_number(candidate.get("rival_lead")), as_number(candidate.get("rival_discount"))
    log10_lr = as_number(candidate.get("log10_lr"))
    rival, name = candidate.get("rival"), short_name(candidate.get("name"))
    if not rival or lead is None or discount is None or log10_lr is None or discount < MIN_DISCOUNT_TOLD:
        return ""
    family = isinstance(candidate.get("members"), list) and len(candidate["members"]) > 1
    whose = "its best member's fused score is" if family else "its fused score is"
    without = log10_lr + discount
    words = (f" Without it the likelihood ratio would be about {lr_value(without)} "
             f"({verbal_for(without)})." if verbal_for(without) != verbal_for(log10_lr) else "")
    source = f"a model of the {name} family" if family else name
    return (f" This likelihood ratio already weighs that another candidate{' family' if family else ''}, "
            f"{short_name(rival)}, resembles the suspect more, measured against the panel ({whose} "
            f"{lead:.2f} higher): resemblance that a candidate of another family explains better counts for less, "
            f"and the calibration divided the likelihood ratio by about {lr_value(discount)} for it (log10 "
            f"{discount:.2f}).{words} This does not exclude that {source} was a source too: a suspect trained on "
            "the outputs of both could show this pattern.")



def _at_bound(log10_lr: float, bounds: Any) -> bool:
    if not isinstance(bounds, list | tuple) or len(bounds) != 2:
        return False
    return any(b is not None and abs(log10_lr - b) < 1e-6 for b in map(as_number, bounds))


OUTCOMES = ("attributed", "family attributed", "no teacher supported", "inconclusive")


def outcome_of(findings: Mapping[str, Any]) -> str:
    """One of :data:`OUTCOMES`, derived from the teachers when not recorded."""
    conclusion = mapping_of(findings.get("conclusion"))
    outcome = conclusion.get("outcome")
    if outcome in OUTCOMES:
        return outcome
    if conclusion.get("attributed_teacher"):
        return "attributed"
    supports = [t.get("supports") for t in records_of(findings.get("teachers"))]
    return "inconclusive" if all(s == "inconclusive" for s in supports) else "no teacher supported"


def cover_cautions(findings: Mapping[str, Any]) -> list[str]:
    """The case's limitations that bear on the answer itself (:data:`forensics.results.CAUTION_OPENINGS`),
    repeated on the cover beside the answer: a reader who stops at the answer must meet them there."""
    limitations = findings.get("limitations")
    texts = [as_text(x) for x in limitations] if isinstance(limitations, list) else []
    return [t for t in texts if t.startswith(CAUTION_OPENINGS)]


def does_not_show(findings: Mapping[str, Any]) -> list[str]:
    """What the result does NOT show, adapted to the outcome and the numbers of this case."""
    suspect = short_name(findings.get("suspect"))
    teachers = records_of(findings.get("teachers"))
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
    outcome = outcome_of(findings)
    if outcome == "family attributed":
        points.append("It does not show which member of the family (which snapshot or version) the outputs "
                      "came from: the members resemble each other too closely for these observations to tell.")
    families = records_of(findings.get("families"))
    if outcome != "attributed" or any(c.get("supports") == "Hd" for c in [*teachers, *families]):
        points.append("An inconclusive result or support for Hd (for any candidate) does not prove "
                      "independence: a small amount of teacher data, or data passed through another model, may "
                      "leave no measurable trace.")
    conclusion = mapping_of(findings.get("conclusion"))
    named = conclusion.get("attributed_teacher")
    unnamed = [t for t in teachers if t.get("supports") == "Hp" and t.get("name") != named]
    if any(_family_supported(t, conclusion) is not False for t in unnamed):
        points.append("Where a teacher is supported but not singled out, a related model (another version "
                      "of the same teacher, say) explains the observations equally well or nearly so.")
    if any(_family_supported(t, conclusion) is False for t in unnamed):
        points.append("Where a teacher is supported but its family is not, the resemblance to that one model "
                      "does not hold up once its family is weighed as a whole (the family's likelihood ratio "
                      "allows for a suspect resembling one of several related models by chance).")
    return points


def answer_view(suspect: str, teacher: Mapping[str, Any], singled_out: bool | None = None,
                named: str | None = None, family_supported: bool | None = None) -> dict[str, Any]:
    """One candidate's (teacher's or family's) answer, strength and numbers for the cover and the LR table."""
    log10_lr = as_number(teacher.get("log10_lr"))
    css = {"Hp": "hp", "Hd": "hd", "inconclusive": "inc"}
    members = teacher.get("members")
    answer = answer_sentence(suspect, teacher, singled_out, named, family_supported)
    return {"name": teacher.get("name"), "answer": answer,
            "members": ", ".join(as_text(m) for m in members) if isinstance(members, list) else "",
            "strength": strength_sentence(teacher), "supports": teacher.get("supports"),
            "css": css.get(teacher.get("supports"), "unknown") if isinstance(teacher.get("supports"), str)
            else "unknown",
            "log10_lr": teacher.get("log10_lr"), "lr": "—" if log10_lr is None else lr_value(log10_lr),
            "bounds": fmt_range(teacher.get("lr_bounds"), fmt_signed), "score": teacher.get("score"),
            "verbal": verbal_words(teacher), "family": as_text(teacher.get("family"))}


def answer_views(findings: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(teachers, families): every candidate's answer, with whether the conclusion singled it out.

    Families of one member are left out of the second list: their answer is their teacher's.
    """
    suspect = short_name(findings.get("suspect"))
    conclusion = mapping_of(findings.get("conclusion"))
    named_t, named_f = conclusion.get("attributed_teacher"), conclusion.get("attributed_family")
    recorded = "outcome" in conclusion
    teachers = [answer_view(suspect, t, (t.get("name") == named_t) if recorded else None, named_t or named_f,
                            _family_supported(t, conclusion))
                for t in records_of(findings.get("teachers"))]
    families = [answer_view(suspect, f, (f.get("name") == named_f) if recorded else None, named_f)
                for f in several_member_families(findings)]
    return _strongest_first(teachers), _strongest_first(families)


def several_member_families(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The findings' families of several members (a family of one is its member's row already)."""
    return [f for f in records_of(findings.get("families"))
            if isinstance(f.get("members"), list) and len(f["members"]) > 1]


def _family_supported(teacher: Mapping[str, Any], conclusion: Mapping[str, Any]) -> bool | None:
    """Whether the conclusion lists the teacher's family (itself, without one) as supported; None when the
    findings do not record supported families."""
    supported = conclusion.get("families_supported")
    if not isinstance(supported, list):
        return None
    return (teacher.get("family") or teacher.get("name")) in supported


def _strongest_first(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates the reader most needs first: by log10 LR, highest first (ties keep case order)."""
    return sorted(views, key=lambda v: -(as_number(v.get("log10_lr")) or -math.inf))


def comparison_sentence(findings: Mapping[str, Any]) -> str:
    """How strongly the evidence favours the leading family over each other one (and its best member over
    each sibling), saying when a comparison sits at the comparison calibration's bound."""
    conclusion = mapping_of(findings.get("conclusion"))
    levels = mapping_of(mapping_of(findings.get("validation")).get("levels"))
    bounds = [mapping_of(levels.get("comparison")).get(side) for side in ("lower", "upper")]
    leader = short_name(conclusion.get("attributed_family") or "the leading candidate family")
    parts, capped = [], False
    for key, what in (("family_comparisons", f"of training on {leader} rather than on each other candidate family"),
                      ("sibling_comparisons", f"of training on the leading member of {leader} rather than on "
                                              f"each sibling")):
        values = {str(k): as_number(v) for k, v in mapping_of(conclusion.get(key)).items()}
        values = {k: v for k, v in values.items() if v is not None}
        capped = capped or any(_at_bound(v, bounds) for v in values.values())
        if values:
            listed = "; ".join(f"{short_name(k)}: about {lr_value(v)} (log10 {v:+.2f})"
                               for k, v in sorted(values.items(), key=lambda kv: kv[1]))
            parts.append(f"{what}, {listed}")
    if not parts:
        return ""
    text = "Candidate against candidate, the likelihood ratio " + "; and ".join(parts) + "."
    bound = as_number(bounds[1])
    if capped and bound is not None:
        text += (f" A comparison at log10 \u00b1{abs(bound):.2f} sits at the bound of the candidate-against-"
                 f"candidate calibration: the strongest value it allows, set by how many labelled cases back it.")
    return text


def data_sentence(data: Mapping[str, Any]) -> str:
    """How many prompts were analysed, of how many, and why the others were left out.

    Reads what step 06 (evidence.py) writes: ``n_prompts_analysed`` and the step-00 coverage under ``coverage``
    (``prompts_total``, and ``excluded``, one record per prompt with the sources it was missing from or
    empty in).
    """
    analysed = data.get("n_prompts_analysed")
    if analysed is None:
        return "the number of prompts analysed was not recorded."
    coverage = mapping_of(data.get("coverage"))
    text = f"{fmt(analysed)} prompts answered by every model"
    if coverage.get("prompts_total") is not None:
        text += f", of {fmt(coverage.get('prompts_total'))} prompts in the case"
    excluded = records_of(coverage.get("excluded"))
    if excluded:
        text += f" (excluded: {_exclusions(excluded)})"
    return text + "."


def _exclusions(excluded: list[Mapping[str, Any]]) -> str:
    """'2: 1 missing from a model, 1 with an empty response' (a prompt can count in both)."""
    missing = sum(1 for e in excluded if e.get("missing_from"))
    empty = sum(1 for e in excluded if e.get("empty_from"))
    parts = [f"{fmt(missing)} missing from a model" if missing else "",
             f"{fmt(empty)} with an empty response" if empty else ""]
    reasons = ", ".join(part for part in parts if part)
    return f"{fmt(len(excluded))}" + (f": {reasons}" if reasons else "")
