"""Step 06: assemble ``findings.json`` from the lines' artifacts (docs/FINDINGS.md).

Reads what steps 00-05 wrote, scores every candidate teacher with :mod:`forensics.weighing`, converts
scores to likelihood ratios with the shipped calibration, picks exhibits, writes limitations generated
from the case, and copies the chain-of-custody facts from the manifest. Every number is recomputed from
the artifacts on each run; nothing is typed by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forensics import weighing
from forensics.calibration import (
    DEFAULT_CALIBRATION,
    FINGERPRINT_MIN_WORDS,
    Calibration,
    CalibrationSet,
    calibration_record,
    comparable_answer,
    family_level,
    labelled_model_matches,
    repeats,
    supports,
    verbal,
    verbal_for,
)
from forensics.case import MIN_PANEL_FAMILIES, declared_families, family_groups, panel_families
from forensics.custody import environment, utc_now
from forensics.errors import ForensicsError
from forensics.lr_words import lr_value
from forensics.results import CAUTION_OPENINGS, SCHEMA, Findings, LineScores
from forensics.scoring import MIN_PANEL, line_entry, percentile_interval, rounded
from forensics.semantic import ARTIFACT, FULL_STATISTIC, SemanticMatrices, read_matrices
from forensics.wording import ARTIFACT as WORDING_ARTIFACT
from forensics.wording import WordingMatrices
from forensics.wording import read_matrices as read_wording

if TYPE_CHECKING:
    from forensics.case import Case
    from forensics.custody import RunFolder
    from forensics.exchanges import AlignedCorpus

STEP = "06_evidence"
N_EXHIBITS = 3
MIN_EXHIBIT_WORDS = 25
#: How many times shorter (or longer) than every reference model's the suspect's median answer must be for
#: the report to name length as an alternative explanation (a disclosure, not part of the decision).
LENGTH_RATIO = 2.0
MAX_LEAKS = 20
#: Each line's figure: (line, value axis, title).
LINE_FIGURES = (
    ("embedding", "affinity (cosine)", "Semantic line (answer openings): lean towards each teacher"),
    ("wording", "affinity (share of words and word pairs in common)",
     "Shared wording (answer openings): lean towards each teacher"),
    ("stylometry", "affinity (negative Cosine Delta, formatting habits)",
     "Formatting habits (stylometry line): suspect against the panel"),
    ("markers", "teacher-marker phrases per 100 words", "Markers line: suspect against the panel"),
    ("clusters", "Share of prompts where the answer shares the teacher's cluster",
     "Co-clustering with each candidate teacher"),
)


# ----------------------------------------------------------------------------------------- scoring

def score_lines(semantic: SemanticMatrices, stylo: Mapping[str, Any], markers: Mapping[str, Any],
                wording: WordingMatrices, suspect: str, teachers: Sequence[str],
                references: Sequence[str]) -> LineScores:
    """Line z (full and bootstrap) per teacher, the fused score and how often each teacher wins.

    Every line's raw per-source values (the semantic, wording and stylometric similarity matrices, the
    marker rates) go through the panel-relative scorer here, in one place. Shared by the pipeline (from the
    artifacts) and by validation (from the same measurements in memory), so the validated method is the
    reported one (the JSON artifacts round the stylometric and marker values to 6 decimals; the
    validation does not).
    """
    roles = (semantic.suspect, tuple(semantic.teachers), tuple(semantic.references))
    if roles != (suspect, tuple(teachers), tuple(references)):
        raise ForensicsError(f"the semantic matrices were measured for suspect, teachers, references {roles}, "
                             f"not for this case's {(suspect, tuple(teachers), tuple(references))}",
                             path=ARTIFACT, fix="re-run the case from step 02 (forensics run)")
    if tuple(wording.sources) != tuple(semantic.sources):
        raise ForensicsError(f"the wording matrices were measured for sources {list(wording.sources)}, not for "
                             f"this case's {list(semantic.sources)}", path=WORDING_ARTIFACT,
                             fix="re-run the case from step 03 (forensics run)")
    return assemble({"embedding": weighing.embedding_lines(semantic),
                     "wording": weighing.wording_lines(wording, suspect, teachers, references),
                     "stylometry": weighing.stylometry_lines(stylo, suspect, teachers, references),
                     "markers": weighing.rate_lines(markers["teachers"], teachers, references)}, teachers)


def score_clusters(clusters: Mapping[str, Any] | None, teachers: Sequence[str],
                   references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The co-clustering line through the same scorer (empty without step 05's artifact)."""
    from forensics.clustering import rates_from_counts

    if not clusters:
        return {}
    counts = clusters.get("co_clustering_counts") or {}
    complete = all(t in counts and sorted(counts[t].get("references", {})) == sorted(references)
                   and sorted(counts[t].get("boot_references", {})) == sorted(references) for t in teachers)
    if not complete:
        raise ForensicsError("artifacts/clusters.json lacks the co-clustering counts of this case's teachers "
                             "and references", path="artifacts/clusters.json",
                             fix="re-run the case from step 05 (forensics run)")
    return weighing.cluster_lines({t: rates_from_counts(counts[t]) for t in teachers}, teachers, references)


def assemble(lines: Mapping[str, Mapping[str, Mapping[str, Any]]], teachers: Sequence[str]) -> LineScores:
    """The scored lines (line -> teacher -> z, boot_z, ...) fused, with each teacher's bootstrap wins."""
    line_z = {name: {t: line[t]["z"] for t in teachers} for name, line in lines.items()}
    line_boot = {name: {t: line[t]["boot_z"] for t in teachers} for name, line in lines.items()}
    fused = weighing.fuse(line_z, teachers)
    fused_boot = weighing.fuse_boot(line_boot, teachers)
    return LineScores(line_z=line_z, line_boot=line_boot, fused=fused, fused_boot=fused_boot,
                      beats=weighing.beats_others(fused_boot, fused), embedding=lines.get("embedding", {}),
                      wording=lines.get("wording", {}), stylometry=lines.get("stylometry", {}),
                      markers=lines.get("markers", {}))


# ----------------------------------------------------------------------------------------- entries

def lr_fields(score: float, cal: Calibration, band: Sequence[float],
              lead: tuple[float, str | None] = (0.0, None)) -> dict[str, Any]:
    """A score's calibrated log10 LR with its bounds, verbal equivalent and the proposition it supports;
    ``lead`` is its rival lead and rival (:func:`forensics.weighing.rival_leads`), which the calibration's
    rival discount weighs; ``rival_discount`` is what that took off the bounded log10 LR (less than the rival
    slope times the lead where the LR would sit at a bound either way)."""
    rival_lead, rival = lead
    finite = bool(np.isfinite(score))
    log10_lr = cal.log10_lr(score, rival_lead) if finite else 0.0
    return {"log10_lr": rounded(log10_lr), "lr_bounds": [rounded(cal.lower), rounded(cal.upper)],
            "at_bound": bool(log10_lr in (cal.lower, cal.upper)), "verbal": verbal(log10_lr),
            "supports": supports(log10_lr, tuple(band)),
            "rival_lead": rounded(rival_lead) if finite else None, "rival": rival if finite else None,
            "rival_discount": rounded(cal.log10_lr(score) - log10_lr) if finite else None}


def teacher_entry(verdict: Mapping[str, Any], family: str, scored: LineScores,
                  semantic: SemanticMatrices, wording: WordingMatrices, markers: Mapping[str, Any],
                  clusters: Mapping[str, Any] | None, cluster_lines: Mapping[str, Mapping[str, Any]],
                  references: Sequence[str], n_prompts: int) -> dict[str, Any]:
    """A teacher's findings entry: its verdict (score, LR; :func:`conclude`) and every line's evidence."""
    name = verdict["name"]
    lines = {
        "embedding": _embedding_entry(scored.embedding[name], semantic, n_prompts),
        "wording": _matrix_entry(scored.wording[name], references, n_prompts, wording.statistic()),
        "stylometry": _stylometry_entry(scored.stylometry[name], references, n_prompts),
        "markers": _marker_entry(scored.markers[name], scored.line_z["markers"][name], markers["teachers"][name],
                                 n_prompts),
    }
    if clusters is not None and name in cluster_lines:
        lines["clusters"] = _cluster_entry(clusters["co_clustering"][name], cluster_lines[name])
    return {
        **verdict,
        "family": family,
        "score_ci95": percentile_interval(scored.fused_boot[name]),
        "beats_other_candidates": bool(scored.beats[name] >= weighing.BEATS_LEVEL),
        "beats_share": rounded(scored.beats[name]),
        "evidence": lines,
    }


def _matrix_entry(line: Mapping[str, Any], references: Sequence[str], n_prompts: int,
                  statistic: str) -> dict[str, Any]:
    """The entry of a line scored from a similarity matrix (:func:`forensics.weighing.matrix_line`)."""
    boot = {"suspect": line["boot_suspect"], "z": line["boot_z"]} if np.size(line["boot_z"]) else None
    return line_entry(line, boot, list(references), n_prompts, statistic)


def _embedding_entry(line: Mapping[str, Any], semantic: SemanticMatrices, n_prompts: int) -> dict[str, Any]:
    refs = list(semantic.references)
    entry = {**_matrix_entry(line, refs, n_prompts, semantic.statistic()), "naive_z": line["naive_z"],
             "raw_similarity": line["raw_similarity"]}
    if line["full_answers"] is not None:
        entry["full_answers"] = {**line_entry(line["full_answers"], None, refs, n_prompts, FULL_STATISTIC),
                                 "naive_z": line["full_answers"]["naive_z"]}
    return entry


def _cluster_entry(entry: Mapping[str, Any], line: Mapping[str, Any]) -> dict[str, Any]:
    """Step 05's co-clustering entry with its z against the panel (pooled over the candidates) and the
    interval of that z, scored here like every other line; reported, never fused."""
    return {**entry, "z": rounded(line["z"]), "z_ci95": percentile_interval(line["boot_z"]),
            "noise_included": {**entry["noise_included"], "z": rounded(line["noise_z"])}}


def _stylometry_entry(line: Mapping[str, Any], references: Sequence[str], n_prompts: int) -> dict[str, Any]:
    fams = {}
    for fam, v in line["families"].items():
        fams[fam] = {"suspect_value": rounded(v["suspect"]),
                     "panel_values": {r: rounded(x) for r, x in zip(references, v["references"], strict=True)},
                     "z": rounded(v["z"]), "ci95": percentile_interval(v["boot_suspect"]),
                     "z_ci95": percentile_interval(v["boot_z"]), "fused": fam in weighing.STYLO_FAMILIES}
    main = line["families"][weighing.STYLO_FAMILIES[0]]
    return {"statistic": "panel-relative affinity of formatting habits (headers, lists, bold, code, "
                         "openings and closings, refusals, length of lines and sentences: Cosine Delta on "
                         "their z-scored rates); the word and character families are listed as components",
            "suspect_value": rounded(main["suspect"]),
            "panel_values": {r: rounded(x) for r, x in zip(references, main["references"], strict=True)},
            "z": rounded(line["z"]), "ci95": percentile_interval(line["boot_suspect"]),
            "z_ci95": percentile_interval(line["boot_z"]), "n_prompts": n_prompts, "families": fams}


def _marker_entry(line: Mapping[str, Any], z: float, data: Mapping[str, Any], n_prompts: int) -> dict[str, Any]:
    return {"statistic": "rate of the teacher's over-used phrases in the suspect's answers against each "
                         "reference's rate (each reference measured on phrases chosen without it), "
                         f"{data.get('unit', '')}",
            "suspect_value": rounded(line["suspect"]),
            "panel_values": {r: (None if v is None else rounded(v)) for r, v in line["references"].items()},
            "teacher_value": rounded(data["teacher"]),
            "z": rounded(z), "ci95": percentile_interval(line["boot_suspect"]),
            "z_ci95": percentile_interval(line["boot_z"]), "n_prompts": n_prompts, "n_markers": data["n_markers"],
            "top_markers": [{k: row.get(k) for k in ("phrase", "z", "teacher_rate", "suspect_rate",
                                                     "panel_rate")} for row in data["markers"][:15]]}


def family_entries(scores: Mapping[str, float], groups: Mapping[str, Sequence[str]], cal: CalibrationSet,
                   band: Sequence[float], leads: Mapping[str, tuple[float, str | None]] | None = None
                   ) -> list[dict[str, Any]]:
    """Per family (case order): members, the best member and its score, and the family's LR (a family of
    one member carries its member's, :func:`forensics.calibration.family_level`); ``leads``: the teachers'
    rival leads where the caller has them (:func:`forensics.weighing.rival_leads`)."""
    out = []
    leads = leads if leads is not None else weighing.rival_leads(scores, groups)
    family_of = {m: family for family, members in groups.items() for m in members}
    for name, (score, best) in weighing.family_scores(scores, groups).items():
        level = family_level(len(groups[name]))
        lead, rival = leads[best]
        out.append({"name": name, "members": list(groups[name]), "best_member": best, "score": rounded(score),
                    **lr_fields(score, cal[level], band, (lead, family_of[rival] if rival else None))})
    return out


def conclude(suspect: str, scores: Mapping[str, float], groups: Mapping[str, Sequence[str]], cal: CalibrationSet,
             band: Sequence[float], semantic: SemanticMatrices,
             reference_family: Mapping[str, str | None] | None = None
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """From the fused scores to the verdict: each teacher's and family's LR, and the conclusion.

    ``groups`` maps each family to its members (:func:`forensics.case.family_groups`); ``semantic`` is
    the semantic line's measurement with the scoring panel, from which, with the fused scores, candidates
    are compared with each other (:func:`comparison`); ``reference_family`` the references' declared
    families (:attr:`forensics.case.Case.reference_family`; none declared: each reference is a model line of
    its own), which say whether the panel may name a candidate (:data:`forensics.case.MIN_PANEL_FAMILIES`).
    Returns the teachers' verdicts (name, score, LR fields), the family entries and the conclusion with its
    statement.
    """
    members = [m for ms in groups.values() for m in ms]
    leads = weighing.rival_leads(scores, groups)
    teachers = [{"name": t, "score": rounded(scores[t]), **lr_fields(scores[t], cal["teacher"], band, leads[t])}
                for t in members]
    families = family_entries(scores, groups, cal, band, leads)
    n_references = len(semantic.references)
    n_lines = panel_families(semantic.references, reference_family or {})
    conclusion = weighing.decide(teachers, families, comparison(cal["comparison"], semantic, scores), band,
                                 enough_references=n_lines >= MIN_PANEL_FAMILIES)
    conclusion["statement"] = statement(suspect, teachers, families, conclusion, n_references, n_lines)
    return teachers, families, conclusion


def comparison(cal: Calibration, semantic: SemanticMatrices,
               scores: Mapping[str, float]) -> Callable[[str, str], float]:
    """log10 LR of "trained on A rather than B" for two candidate teachers (the comparison level), from the
    suspect's preference between them (:func:`forensics.weighing.comparison_statistic`: the semantic
    preference and the fused scores' difference); 0 (no evidence either way) where the statistic is
    undefined."""
    def compare(a: str, b: str) -> float:
        return cal.log10_lr_or_zero(weighing.comparison_statistic(semantic, scores, a, b))
    return compare


def leave_one_reference_out(semantic: SemanticMatrices, stylo: Mapping[str, Any], wording: WordingMatrices,
                            suspect: str, teachers: Sequence[str], references: Sequence[str],
                            groups: Mapping[str, Sequence[str]], cal: CalibrationSet, band: Sequence[float],
                            reference_family: Mapping[str, str | None] | None = None
                            ) -> list[tuple[str, dict[str, Any]]]:
    """(left-out reference, conclusion) for each reference that can be left out (:func:`removable_references`):
    the case decided again without it.

    A finding that one reference model decides is only as sound as that reference's independence (two
    versions of one model in a panel make it look more uniform than independent models are), so the
    report says whether the conclusion survives leaving out any one of them. Only the fused lines are
    re-scored (full data, no replicates): the conclusion rests on nothing else. The left-out reference
    still counts in the panel consensus the semantic and wording similarities were measured against, as it
    does in the standardisation of the stylometric features: only the scoring panel changes.
    """
    family_of = reference_family or {}
    fused_families = {f: {"sim": v["sim"]} for f, v in stylo["families"].items() if f in weighing.STYLO_FAMILIES}
    out = []
    words = dataclasses.replace(wording, boot=np.empty((0, *np.shape(wording.similarity))))
    for left in removable_references(references, family_of):
        kept = [r for r in references if r != left]
        reduced = dataclasses.replace(semantic, references=tuple(kept), full_answers=None,
                                      openings_boot=np.empty((0, *np.shape(semantic.openings))))
        scored = assemble({"embedding": weighing.embedding_lines(reduced),
                           "wording": weighing.wording_lines(words, suspect, teachers, kept),
                           "stylometry": weighing.stylometry_lines({"sources": stylo["sources"],
                                                                    "families": fused_families},
                                                                   suspect, teachers, kept)}, teachers)
        out.append((left, conclude(suspect, scored.fused, groups, cal, band, reduced, family_of)[2]))
    return out


def removable_references(references: Sequence[str], family_of: Mapping[str, str | None]) -> list[str]:
    """The references the case can be decided again without: those whose absence leaves enough references to
    score (:data:`forensics.scoring.MIN_PANEL`) of enough model lines to name a candidate
    (:data:`forensics.case.MIN_PANEL_FAMILIES`). Without any other, every attribution would "change" by
    construction, which says nothing about the evidence."""
    out = []
    for left in references:
        kept = [r for r in references if r != left]
        if len(kept) >= MIN_PANEL and panel_families(kept, family_of) >= MIN_PANEL_FAMILIES:
            out.append(left)
    return out


def robustness_sentence(conclusion: Mapping[str, Any], left_out: Sequence[tuple[str, Mapping[str, Any]]],
                        n_references: int, n_lines: int | None = None, kept: Sequence[str] = ()) -> str | None:
    """Whether the conclusion survives leaving out each reference in turn; without the check, why, when the
    panel is large enough to name a candidate (``n_lines``: its model lines, :func:`forensics.case.panel_families`,
    by default one per reference; None for panels too small to name one: their limitation says more).
    ``kept``: the references that could not be left out (:func:`removable_references`), which the
    conclusion then rests on."""
    if not left_out:
        if (n_references if n_lines is None else n_lines) < MIN_PANEL_FAMILIES:
            return None
        every = "both" if n_references == 2 else f"all {n_references}"
        return (f"The case was not decided again with each reference left out: without any one of its "
                f"{n_references} references too few references or model lines would remain to name a candidate, "
                f"so a conclusion here rests on {every} of them.")
    return _left_out_sentence(conclusion, left_out) + _kept_sentence(kept)


def _kept_sentence(kept: Sequence[str]) -> str:
    if not kept:
        return ""
    one = len(kept) == 1
    return (f" {', '.join(kept)} {'was' if one else 'were'} not left out: without {'it' if one else 'any one of them'}"
            f" the panel would be of one model line, so the conclusion rests on {'it' if one else 'them'}.")


def _left_out_sentence(conclusion: Mapping[str, Any], left_out: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    def key(c: Mapping[str, Any]) -> tuple[Any, ...]:
        return c["outcome"], c.get("attributed_family"), c.get("attributed_teacher")

    n = len(left_out)
    lead = (f"Decided again with {left_out[0][0]} left out" if n == 1
            else f"Decided again with each of the {n} references left out in turn")
    changed = [(r, c) for r, c in left_out if key(c) != key(conclusion)]
    if not changed:
        return f"{lead}, the conclusion is the same" + (": no single one of them decides it." if n > 1 else ".")
    parts = "; ".join(f"without {r}, {_outcome_words(c)}" for r, c in changed)
    return (f"{lead}, the conclusion changes in {len(changed)} of {n} ({parts}): it rests on the panel's size and "
            f"make-up (a smaller panel is read more cautiously, and a reference that is not independent of the "
            f"teachers or of the other references moves it), and more independent references would make it firmer.")


def _outcome_words(conclusion: Mapping[str, Any]) -> str:
    outcome = conclusion["outcome"]
    if outcome == "attributed":
        return f"attributed to {conclusion['attributed_teacher']}"
    if outcome == "family attributed":
        return f"attributed to the {conclusion['attributed_family']} family"
    return outcome


# ----------------------------------------------------------------------------------------- conclusion

def statement(suspect: str, teachers: Sequence[Mapping[str, Any]], families: Sequence[Mapping[str, Any]],
              conclusion: Mapping[str, Any], n_references: int = MIN_PANEL_FAMILIES,
              n_lines: int | None = None) -> str:
    """One plain-language sentence for the legal reader: the most specific statement the evidence supports
    (``n_lines``: the panel's model lines, :func:`forensics.case.panel_families`; by default one per reference)."""
    outcome = conclusion["outcome"]
    supported = conclusion.get("families_supported") or conclusion.get("candidates_supported") or []
    n_lines = n_references if n_lines is None else n_lines
    if n_lines < MIN_PANEL_FAMILIES and supported:
        return (f"Inconclusive: the evidence leans towards training on outputs of {', '.join(supported)}, but "
                f"the {n_references} reference model{'s' if n_references != 1 else ''} "
                f"{'are' if n_references != 1 else 'is'} of only {n_lines} model line{'s' if n_lines != 1 else ''}, "
                f"so no candidate is named: how much independent models vary cannot be estimated from versions "
                f"of one model (references of at least {MIN_PANEL_FAMILIES} model lines are needed).")
    family = next((f for f in families if f["name"] == conclusion.get("attributed_family")), None)
    lead = _lead_factor(conclusion.get("family_comparisons", {}))
    if outcome == "attributed":
        name = conclusion["attributed_teacher"]
        t = next(t for t in teachers if t["name"] == name)
        return (f"The evidence supports the proposition that {suspect} was trained on outputs of {name}: "
                f"the observations are about {lr_value(t['log10_lr'])} times more probable if it was than if "
                f"it was developed independently ({verbal_for(t['log10_lr'])}){lead}.")
    if outcome == "family attributed" and family is not None:
        members = ", ".join(family["members"])
        return (f"The evidence supports the proposition that {suspect} was trained on outputs of a model of "
                f"the {family['name']} family ({members}): the observations are about "
                f"{lr_value(family['log10_lr'])} times more probable if it was than if it was developed "
                f"independently of that family ({verbal_for(family['log10_lr'])}){lead}; it does not single "
                f"out one member of the family.")
    if outcome == "inconclusive" and not conclusion.get("families_supported"):
        return _teacher_without_family(conclusion.get("candidates_supported") or [], families)
    if outcome == "inconclusive":
        supported = conclusion["families_supported"]
        names = ", ".join(supported)
        several = (" (each against independence)" if len(supported) > 1 else "")
        either = ("; it is consistent with training on any one of them or on several" if len(supported) > 1
                  else "")
        return (f"Inconclusive: the evidence leans towards training on outputs of {names}{several}, but does "
                f"not single out one candidate over the others{either}.")
    return (f"No candidate teacher or family is supported: for none of them is {suspect}'s resemblance, beyond "
            f"what the reference panel shows, strong enough to favour training on its outputs.")


def _teacher_without_family(names: Sequence[str], families: Sequence[Mapping[str, Any]]) -> str:
    """The inconclusive case where a teacher's own LR supports Hp but no family's does.

    The two levels are calibrated separately, and a family's statistic is its best member's, so it allows
    for the suspect resembling one of several models by chance; the conclusion names a teacher only within
    a family the evidence supports. Said plainly, so the reader does not take the teacher's row for a
    finding.
    """
    listed = ", ".join(names) or "a candidate"
    theirs = [f for f in families if any(n in f["members"] for n in names)]
    family_words = "; ".join(f"{f['name']}: LR about {lr_value(f['log10_lr'])}, {verbal_for(f['log10_lr'])}"
                             for f in theirs
                             if f.get("log10_lr") is not None)
    return (f"Inconclusive: the evidence leans towards training on outputs of {listed}, but not towards "
            f"{'its family' if len(theirs) == 1 else 'their families'}"
            f"{f' ({family_words})' if family_words else ''}, and a teacher is named only within a family the "
            f"evidence supports.")


def _lead_factor(comparisons: Mapping[str, float]) -> str:
    """", and, were it trained on one of the candidate families, ... favour this one over each of the others
    by a factor of N or more" (or nothing): the comparison's propositions are "trained on A rather than B", so
    the sentence says what they assume; N is the weakest of the comparisons."""
    if not comparisons:
        return ""
    weakest = min(comparisons.values())
    return (f", and, were it trained on one of the candidate families, the observations favour this one over "
            f"each of the others by a factor of {lr_value(weakest)} or more")


# ----------------------------------------------------------------------------------------- exhibits

def exhibits(corpus: AlignedCorpus, per_prompt: pd.DataFrame, teacher: str, marker_rows: Sequence[Mapping[str, Any]],
             n: int = N_EXHIBITS) -> list[dict[str, Any]]:
    """The prompts where the suspect is closest to the teacher beyond the closest reference.

    Each exhibit shows the same prompt's answers from the teacher, the suspect and the reference closest
    to the teacher on that prompt, with the teacher's marker phrases found in both answers and their base
    rate across the panel. The answers are kept whole (the report cuts long ones with a visible note): an
    exhibit cut here would look complete in the report.
    """
    rows = per_prompt[per_prompt["teacher"] == teacher]
    wide = rows.pivot(index="prompt_key", columns="source", values="similarity")
    refs = list(corpus.references)
    index = {k: i for i, k in enumerate(corpus.prompt_keys)}
    words = pd.Series({k: len(corpus.responses[corpus.suspect][index[k]].split()) for k in wide.index})
    # one-line answers ("Hello world") are alike for every model: exhibits show habits, so need some text
    eligible = wide[words.reindex(wide.index) >= MIN_EXHIBIT_WORDS] if (words >= MIN_EXHIBIT_WORDS).any() else wide
    margin = (eligible[corpus.suspect] - eligible[refs].max(axis=1)).sort_values(ascending=False, kind="stable")
    out = []
    for key in list(margin.index[:n]):
        i = index[key]
        closest = str(wide.loc[key, refs].astype(float).idxmax())
        suspect_text, teacher_text = corpus.responses[corpus.suspect][i], corpus.responses[teacher][i]
        both = (_padded_words(suspect_text), _padded_words(teacher_text))
        phrases = [{"phrase": m["phrase"], "panel_base_rate": m.get("panel_rate")}
                   for m in marker_rows if all(f" {m['phrase']} " in words for words in both)][:8]
        out.append({"prompt_key": key, "prompt": corpus.prompts[i], "teacher_name": teacher,
                    "teacher": teacher_text, "suspect": suspect_text,
                    "reference": corpus.responses[closest][i], "reference_name": closest,
                    "similarity_suspect_teacher": rounded(wide.loc[key, corpus.suspect]),
                    "similarity_reference_teacher": rounded(wide.loc[key, closest]), "phrases": phrases})
    return out


def _padded_words(text: str) -> str:
    """The text's words (the markers' tokenizer) joined by spaces and padded, for whole-phrase lookup."""
    from forensics.stylometry import tokenize

    return f" {' '.join(tokenize(text))} "


def identity_leaks(markers: Mapping[str, Any], sources: Sequence[str]) -> list[dict[str, Any]]:
    """The suspect's identity statements verbatim (at most :data:`MAX_LEAKS`; counts cover every source)."""
    leaks = markers.get("identity", {}).get("transcripts", [])
    return [dict(t) for t in leaks if t["source"] in sources][:MAX_LEAKS]


# ----------------------------------------------------------------------------------------- limitations

def limitations(case: Case, corpus: AlignedCorpus, coverage: Mapping[str, Any], teachers: Sequence[Mapping[str, Any]],
                families: Sequence[Mapping[str, Any]], cal: CalibrationSet, robustness: str | None = None) -> list[str]:
    """Limitations and alternative explanations that apply to *this* case, generated from its facts
    (``robustness``: :func:`robustness_sentence`, placed with the panel's own limitations)."""
    out = []
    refs = corpus.references
    n = len(corpus.prompt_keys)
    for caution in (repeated_answers(corpus),
                    fitted_on_the_suspect(corpus.responses[corpus.suspect], cal.metrics.get("labelled_answers"))):
        if caution:
            out.append(caution)
    panel = small_panel(len(refs), cal.metrics.get("summary", {}).get("per_panel_size", {}),
                        panel_families(refs, case.reference_family))
    if panel:
        out.append(panel)
    elif len(refs) < 5:
        out.append(f"The reference panel has only {len(refs)} models; the spread of independent models is "
                   f"estimated from few of them, so panel-relative scores are uncertain.")
    if robustness:
        out.append(robustness)
    if n < 300:
        out.append(f"Only {n} prompts were analysed; stylometric profiles are more reliable with more text "
                   f"(thousands of words per model).")
    small = below_validated_size(n, cal.metrics.get("summary", {}).get("per_prompt_set", {}))
    if small:
        out.append(small)
    conversations = len(set(corpus.groups)) if corpus.groups is not None else n
    if conversations < n:
        out.append(f"The {n} prompts are turns of {conversations} conversations (a prompt outside any counts as "
                   f"one): the intervals resample whole conversations and the co-clustering test permutes them "
                   f"whole, because turns of one conversation are not independent evidence; the likelihood "
                   f"ratios were calibrated on single-turn prompts.")
    base = case.suspect.base_model
    shared = [r.name for r in case.references if base and r.base_model and r.base_model == base]
    if shared:
        out.append(f"{', '.join(shared)} share the suspect's base model ({base}): resemblance inherited from "
                   f"the base model is absorbed by the panel for them, which can mask or mimic teacher signal.")
    elif not base:
        out.append("The suspect's base model is not stated in the case file; resemblance inherited from a "
                   "shared base model cannot be ruled out as an alternative explanation.")
    close = sorted((t for t in teachers if t["supports"] == "Hp"), key=lambda t: -t["log10_lr"])
    length = length_outside_panel(corpus, [t["name"] for t in close])
    if length:
        out.append(length)
    if len(close) > 1:
        out.append(f"More than one candidate teacher is supported ({', '.join(t['name'] for t in close)}); "
                   f"candidates that resemble each other cannot always be told apart.")
    if any(len(f["members"]) > 1 and f["supports"] == "Hp" for f in families):
        out.append("Members of one family (snapshots or versions of one model line) are told apart with the "
                   "candidate-versus-candidate calibration, which was fitted on candidates of different "
                   "families: the labelled data rarely document which snapshot a student learned from, so "
                   "naming one member is less validated than naming the family.")
    out.append("The teachers' outputs were sampled at one point in time; a student trained on an earlier "
               "snapshot of a teacher may resemble the sampled outputs less (or another candidate more).")
    out.append("The evidence cannot distinguish direct collection of a teacher's outputs from training on a "
               "public dataset generated with that teacher, or on text written by people who used it.")
    t, f = cal["teacher"], cal["family"]
    out.append(f"The likelihood ratios are calibrated on labelled pairs ({t.n_hp} trained-on and {t.n_hd} "
               f"independent suspect/teacher pairs; {f.n_hp} and {f.n_hd} suspect/family pairs, over several "
               f"prompt sets). They are bounded to [{t.lower:+.2f}, {t.upper:+.2f}] (teacher) and "
               f"[{f.lower:+.2f}, {f.upper:+.2f}] (family) in log10: with this many labelled models, stronger "
               f"values would claim more than the calibration data can show (empirical lower and upper "
               f"bounds); more labelled students and controls are what would raise them. A family of one "
               f"member carries its member's teacher-level likelihood ratio: the propositions are the same.")
    excluded = coverage.get("excluded") or []
    if excluded:
        many = len(excluded) != 1
        out.append(f"{len(excluded)} prompt{'s were' if many else ' was'} excluded because a source lacked a "
                   "(non-empty) answer; see the data warnings.")
    return out


def median_words(texts: Sequence[str]) -> float:
    return float(np.median([len(t.split()) for t in texts])) if len(texts) else float("nan")


def length_outside_panel(corpus: AlignedCorpus, supported: Sequence[str]) -> str | None:
    """A sentence when the suspect's answers are far shorter or longer (:data:`LENGTH_RATIO`) than every
    reference model's: answer length is an alternative explanation the panel then cannot absorb (terse
    answers resemble each other whatever wrote them, and no panel model shows how much), so the reader is
    told, with the supported candidates' own lengths beside it."""
    suspect = median_words(corpus.responses[corpus.suspect])
    panel = [median_words(corpus.responses[r]) for r in corpus.references]
    if not panel or not np.isfinite(suspect) or not all(np.isfinite(panel)):
        return None
    if suspect * LENGTH_RATIO < min(panel):
        which = "shorter"
    elif suspect > LENGTH_RATIO * max(panel):
        which = "longer"
    else:
        return None
    span = f"{min(panel):g}" if min(panel) == max(panel) else f"{min(panel):g} to {max(panel):g}"
    teachers = "".join(f"; the supported candidate {name} answers with a median of "
                       f"{median_words(corpus.responses[name]):g} words" for name in supported)
    return (f"{CAUTION_OPENINGS[0]}{which} (median {suspect:g} words) than every reference model's "
            f"(median {span} words){teachers}. Answers of similar length resemble each other "
            f"whatever wrote them, and no model of the panel shows how much, so part of a resemblance to a "
            f"candidate of similar length may be owed to length alone; a panel including models that answer "
            f"at this length would weigh it.")


def fitted_on_the_suspect(answers: Sequence[str], fingerprints: Any) -> str | None:
    """A sentence when the suspect's answers are, word for word, those of a model in the labelled data the
    calibration was fitted on (:func:`forensics.calibration.labelled_model_matches`): either the suspect is
    that model, and the case is no independent test of the calibration, or it reproduces that model's
    published answers; the reader must know either way."""
    matches = labelled_model_matches(list(answers), fingerprints)
    if not matches:
        return None
    name, role, count, compared = matches[0]
    words = fingerprints.get("min_words", FINGERPRINT_MIN_WORDS)
    return (f"{CAUTION_OPENINGS[1]}the calibration was fitted on: {count} of its {compared} distinct answers of "
            f"{words} words or more are word for word answers of {name} (a {role} of the labelled data). Either the "
            f"suspect is {name}, or a service relaying it, and its own answers helped fit the calibration that "
            f"weighs them, so this case is no independent test of it (the validation's held-out figures, each "
            f"model weighed by a calibration fitted without its lineage, are the fair measure of how reliable "
            f"its likelihood ratios are); or it reproduces {name}'s published answers word for word, which a "
            f"model developed independently of them does not do.")


def repeated_answers(corpus: AlignedCorpus) -> str | None:
    """A sentence when the suspect's answers are, word for word, a candidate's or a reference's answers to
    the same prompts (enough of those of :data:`~forensics.calibration.FINGERPRINT_MIN_WORDS` words or more
    for :func:`forensics.calibration.repeats`): a model answering for itself does not repeat most of another's
    long answers, so the file holds that source's answers (the same model, or a service
    relaying it) or the suspect reproduces them; the likelihood ratios weigh neither possibility."""
    own = [comparable_answer(a) for a in corpus.responses[corpus.suspect]]
    compared = [i for i, a in enumerate(own) if a]
    counts = {}
    for source in [*corpus.teachers, *corpus.references]:
        theirs = corpus.responses[source]
        counts[source] = sum(own[i] == comparable_answer(theirs[i]) for i in compared)
    repeated = sorted(((k, s) for s, k in counts.items() if repeats(k, len(compared))), key=lambda x: (-x[0], x[1]))
    if not repeated:
        return None
    count, source = repeated[0]
    return (f"{CAUTION_OPENINGS[2]}{source}: {count} of its {len(compared)} answers of {FINGERPRINT_MIN_WORDS} "
            f"words or more are word for word {source}'s answer to the same prompt. A model answering for "
            f"itself does not repeat so many of another's long answers (related models share a few): either the "
            f"suspect's file holds {source}'s answers (the same model, or a service relaying it; check how the "
            f"file was collected) or the suspect reproduces them from its training data. The likelihood ratios "
            f"weigh neither possibility.")


def below_validated_size(n: int, per_prompt_set: Mapping[str, Mapping[str, Any]]) -> str | None:
    """A sentence when the case is smaller than every validated prompt set on which no human-data control
    had a supported teacher or family.

    The validation measures outcomes on prompt sets of several sizes; the smallest size from which on no
    control was attributed, nor even had a candidate supported (which only the decision rule keeps from
    being named), is what the method is known to be safe at. Calibrations from before the count of
    supported controls was recorded are read by their attributions alone.
    """
    sets = sorted(per_prompt_set.values(), key=lambda v: v["n_prompts"])
    unsafe = [v for v in sets if _controls_alarmed(v)]
    safe_from = min((v["n_prompts"] for v in sets if not unsafe or v["n_prompts"] > max(
        u["n_prompts"] for u in unsafe)), default=None)
    worst = max(unsafe, key=lambda v: v["n_prompts"]) if unsafe else None
    if safe_from is None and worst is not None:  # even the largest validated size was not free of it
        return (f"Even at the largest validated size ({worst['n_prompts']} prompts), {_controls_alarmed(worst)} "
                f"of {worst['n_controls']} human-data controls had a supported teacher or family: no validated "
                f"case size is known to be free of that, so a conclusion here is less reliable than the "
                f"validated error rates suggest.")
    if safe_from is None or n >= safe_from:
        return None
    detail = ""
    if worst and worst["false_attributions_controls"]:
        detail = (f" (with {worst['n_prompts']} prompts, {worst['false_attributions_controls']} of "
                  f"{worst['n_controls']} human-data controls were attributed a teacher)")
    elif worst:
        detail = (f" (with {worst['n_prompts']} prompts, {_controls_alarmed(worst)} of {worst['n_controls']} "
                  f"human-data controls had a supported teacher or family, though none was named)")
    return (f"Only {n} prompts were analysed, fewer than {safe_from}, the smallest validated size from which "
            f"on no human-data control had a supported teacher or family{detail}: a conclusion in a case this "
            f"small is less reliable than the validated error rates suggest; collect more prompts.")


def _controls_alarmed(entry: Mapping[str, Any]) -> int:
    """Human-data controls of a validated prompt set that were attributed or had a candidate supported."""
    return max(int(entry.get("false_attributions_controls", 0)),
               int(entry.get("controls_with_a_supported_teacher_or_family", 0)))


def small_panel(n_panel: int, per_panel_size: Mapping[str, Mapping[str, Any]], n_lines: int | None = None
                ) -> str | None:
    """A sentence quoting the validated outcomes with panels of this case's size, when it is one of the
    sub-panel sizes the validation measured (None otherwise, and for calibrations without them).

    The panel-relative z and its calibration rest on the panel: with two or three references the panel's
    mean and spread are poorly estimated (two versions of one model make it look uniform), and the
    validation measured how often controls and students were then attributed. ``n_lines``: the panel's
    model lines (:func:`forensics.case.panel_families`; by default one per reference); below
    :data:`forensics.case.MIN_PANEL_FAMILIES` the panel names nothing, and the sentence says why.
    """
    n_lines = n_panel if n_lines is None else n_lines
    one_line = n_lines < MIN_PANEL_FAMILIES
    # an entry without ``one_line`` is an older calibration's, validated under v8/v9's rule (nothing named
    # below three references, whatever their lines): its outcomes are not this rule's, so it is not quoted
    entry = next((v for v in per_panel_size.values() if v.get("n_panel") == n_panel
                  and "one_line" in v and bool(v["one_line"]) == one_line), None)
    if one_line:
        return too_small_to_attribute(n_panel, n_lines, entry)
    if entry is None:
        return None
    full = entry.get("full_panels") or ["?", "?"]
    controls = entry["false_attributions_controls"]
    return (f"The reference panel has only {n_panel} models. On the validation cases scored with panels of "
            f"{n_panel} references (drawn from their full panels of {full[0]} to {full[1]}), the method "
            f"attributed {entry['students_family_attributed_correctly']} of {entry['n_students']} students to a "
            f"documented family, {entry['students_misattributed_family']} to a family they did not learn from, "
            f"and {controls} of {entry['n_controls']} human-data controls to a teacher or family"
            + (": with a panel this small an attribution is less reliable than the likelihood ratio says."
               if controls else ".")
            + " More independent references (other developers, other training data; not versions of one "
              "model, which make the panel look more uniform than independent models are) make the findings "
              "firmer.")


def too_small_to_attribute(n_panel: int, n_lines: int, entry: Mapping[str, Any] | None) -> str:
    """The limitation of a panel of too few model lines to name any candidate
    (:data:`forensics.case.MIN_PANEL_FAMILIES`), with how often the validation's human-data controls had a
    supported candidate with such panels, when its ``entry`` records that (the reason the likelihood ratios
    of such a case are not a finding)."""
    supported = entry.get("controls_with_a_supported_teacher_or_family") if entry else None
    measured = (f" On the validation cases scored with {n_panel} references of one model line, {supported} of "
                f"{entry['n_controls']} human-data control cases had a teacher or family whose likelihood ratio "
                f"supported Hp." if supported else "")
    models = f"{n_panel} model{'s' if n_panel != 1 else ''}"
    return (f"The reference panel's {models} {'are' if n_panel != 1 else 'is'} of only {n_lines} model "
            f"line{'s' if n_lines != 1 else ''} (references sharing a family count once): too few to name a "
            f"candidate (references of at least {MIN_PANEL_FAMILIES} model lines are needed), because how much "
            f"independent models vary cannot be estimated from versions of one model, which look alike on "
            f"everything; the likelihood ratios are shown, but they are not a finding.{measured} Add independent "
            f"references (other developers, other training data) and run the case again.")


# ----------------------------------------------------------------------------------------- step 06

def run_step(case: Case, run: RunFolder) -> dict[str, Any]:
    """Step 06: score, calibrate, decide, and write ``findings.json`` and the evidence figures."""
    from forensics.exchanges import load_corpus

    corpus = load_corpus(run, case)
    art = {name: run.read_json(f"artifacts/{name}.json") for name in ("stylometry", "markers", "coverage")}
    art["semantic"] = read_matrices(run)
    art["wording"] = read_wording(run)
    clusters = run.read_json("artifacts/clusters.json") if run.path("artifacts/clusters.json").exists() else None
    per_prompt = run.read_parquet("artifacts/semantic_prompts.parquet")
    findings = build_findings(case, corpus, art, clusters, per_prompt, run.manifest().data)
    run.write_json("findings.json", findings.to_json(), step=STEP)
    write_figures(run, corpus, findings, art)
    return {"conclusion": findings.conclusion.to_json(),
            "teachers": {t.name: {"log10_lr": t.log10_lr, "verbal": t.verbal, "supports": t.supports}
                         for t in findings.teachers}}


def build_findings(case: Case, corpus: AlignedCorpus, art: Mapping[str, Any], clusters: Mapping[str, Any] | None,
                   per_prompt: pd.DataFrame, manifest: Mapping[str, Any],
                   calibration_path: str | Path | None = None) -> Findings:
    """The findings of a case from its artifacts, checked against the contract (:class:`Findings`)."""

    cal_path = calibration_path or DEFAULT_CALIBRATION
    cal = CalibrationSet.load(cal_path)
    band = case.parameters.inconclusive_band
    refs, n = list(corpus.references), len(corpus.prompt_keys)
    scored = score_lines(art["semantic"], art["stylometry"], art["markers"], art["wording"], corpus.suspect,
                         corpus.teachers, refs)
    groups = family_groups(corpus.teachers, declared_families(case.teachers))
    family_of = {m: f for f, members in groups.items() for m in members}
    verdicts, families, conclusion = conclude(corpus.suspect, scored.fused, groups, cal, band, art["semantic"],
                                              case.reference_family)
    left_out = leave_one_reference_out(art["semantic"], art["stylometry"], art["wording"], corpus.suspect,
                                       corpus.teachers, refs, groups, cal, band, case.reference_family)
    not_left_out = [r for r in refs if r not in {left for left, _ in left_out}]
    verdict_of = {v["name"]: v for v in verdicts}
    clustered = score_clusters(clusters, corpus.teachers, refs)
    teachers = [teacher_entry(verdict_of[t], family_of[t], scored, art["semantic"], art["wording"],
                              art["markers"], clusters, clustered, refs, n) for t in corpus.teachers]
    best = max(teachers, key=lambda t: -np.inf if t["score"] is None else t["score"])
    shown = conclusion["attributed_teacher"] or best["name"]
    marker_rows = art["markers"]["teachers"][shown]["markers"]
    return Findings.from_json({
        "schema": SCHEMA,
        "case": case.case_id,
        "title": case.title,
        "suspect": corpus.suspect,
        "propositions": {
            "Hp": f"{corpus.suspect} was trained on outputs of the candidate teacher",
            "Hd": f"{corpus.suspect} was developed independently of the candidate teacher"},
        "candidates": [{"name": s.name, "why": s.why} for s in case.teachers],
        "panel": [{"name": s.name, "role": "reference", "why": s.why, "base_model": s.base_model,
                   "family": s.family} for s in case.references],
        "data": _data_block(art["coverage"], n, case.warnings),
        "fused_lines": list(weighing.FUSED_LINES),
        "teachers": teachers,
        "families": families,
        "conclusion": conclusion,
        "exhibits": exhibits(corpus, per_prompt, shown, marker_rows),
        "identity_leaks": identity_leaks(art["markers"], [corpus.suspect]),
        "identity_counts": art["markers"].get("identity", {}).get("sources", {}),
        "canaries": art["markers"].get("canaries"),
        "limitations": limitations(case, corpus, art["coverage"], teachers, families, cal,
                                   robustness_sentence(conclusion, left_out, len(refs),
                                                       panel_families(refs, case.reference_family),
                                                       not_left_out)),
        "validation": {**calibration_record(cal_path), **cal.metrics.get("summary", {}),
                       "cross_source": cal.metrics.get("cross_source")},
        "inputs": [{**{k: i.get(k) for k in ("name", "role", "path", "sha256")},
                    **({"collection": i["collection"]} if i.get("collection") else {})}
                   for i in manifest.get("inputs", [])],
        "model": {k: manifest.get("model", {}).get(k) for k in ("name", "fingerprint")},
        "parameters": manifest.get("parameters", case.parameters.to_dict()),
        "parameters_sha256": manifest.get("parameters_sha256"),
        "environment": environment(),
        "generated": utc_now(),
    })


def _data_block(coverage: Mapping[str, Any], n: int, case_warnings: Sequence[str]) -> dict[str, Any]:
    warnings = [dict(w) for w in coverage.get("warnings", [])]
    warnings += [_case_warning(w) for w in case_warnings]
    return {"n_prompts_analysed": n, "coverage": {k: v for k, v in coverage.items() if k != "warnings"},
            "warnings": warnings}


def _case_warning(text: str) -> dict[str, Any]:
    """A case-file warning ("code: message", :attr:`forensics.case.Case.warnings`) as a data warning: its
    own code, no source model, its origin the case file (a source could be named "case file")."""
    code, sep, message = text.partition(": ")
    if not sep or not code.replace("_", "").isalnum():
        code, message = "case", text
    return {"code": code, "source": None, "origin": "case file", "count": 1, "message": message}


def write_figures(run: RunFolder, corpus: AlignedCorpus, findings: Findings, art: Mapping[str, Any]) -> None:
    """Per-line figures, the LR scale of the headline teacher, the source heatmaps and the Tippett plot."""
    from forensics import figures

    teachers = findings.teachers
    for line, label, title in LINE_FIGURES:
        entries = {t.name: getattr(t.evidence, line).to_json() for t in teachers
                   if getattr(t.evidence, line, None) is not None}
        if entries:
            run.write_figure(f"figures/line_{line}", figures.line_summary(
                entries, title=title, value_label=label, suspect=corpus.suspect,
                xlim=(-0.02, 1.02) if line == "clusters" else None), step=STEP)
    conclusion = findings.conclusion
    head = next((t for t in teachers if t.name == conclusion.attributed_teacher),
                next((f for f in findings.families if f.name == conclusion.attributed_family),
                     max(teachers, key=lambda t: t.log10_lr)))
    run.write_figure("figures/lr_scale", figures.lr_scale_figure(
        head.log10_lr, findings.parameters["inconclusive_band"], verbal_for(head.log10_lr),
        bounds=head.lr_bounds), step=STEP)
    semantic: SemanticMatrices = art["semantic"]
    # each row of the semantic matrix is seen from its own source's consensus: the figure shows both views' mean
    emb = pd.DataFrame((semantic.openings + semantic.openings.T) / 2, index=semantic.sources, columns=semantic.sources)
    sty_src = art["stylometry"]["sources"]
    sty = pd.DataFrame(art["stylometry"]["families"]["mfw_cosine_delta"]["sim"], index=sty_src, columns=sty_src)
    roles = figures.Roles.of(corpus)
    run.write_figure("figures/similarity_heatmaps", figures.similarity_heatmaps(emb, sty, roles), step=STEP)
    tippett = (findings.validation.model_extra or {}).get("tippett")
    if tippett:
        run.write_figure("figures/tippett", figures.tippett_plot(tippett["hp"], tippett["hd"]), step=STEP)
