"""Weighing the evidence: each line's panel-relative z, fusion, families, the decision (a library; step 06,
:mod:`forensics.evidence`, calls it and writes ``findings.json``).

Each line (semantic, shared wording, stylometric, markers) yields, per candidate teacher T, a z-score of
the suspect's lean towards T beyond the reference panel's (:mod:`forensics.scoring`).

**Fusion.** The fused score is the *mean* of the semantic, shared-wording and formatting z: what the suspect
says first in its answers and with which words (each beyond the panel's consensus answer to each prompt), and
how it formats them, each leaning towards T beyond the panel. The shared-wording line
(:mod:`forensics.wording`) joined in panel-relative-fused-v7: on the development benchmark (``forensics
calibrate``) family pair AUC 0.954 -> 0.964 (cross-source 0.949 -> 0.960), Cllr 0.439 -> 0.394 (0.462 ->
0.411), no control case attributed on any prompt set or sub-panel (v6: 2), as many students named to a
documented family with full panels (134 -> 133 of 192) and more with sub-panels of 2 and 3 references (272 ->
311 of 896), but a few more named to a wrong family (6 -> 9 of 192, all the one student whose answers open
like a sister family's). Until panel-relative-fused-v5 the fused score was the *minimum* of the semantic and
formatting z, because the semantic line on raw cosines could carry a score alone on a confound: terse
human-written answers read like a terse teacher's openings (an unseen human-data control was once attributed
that way). The semantic line now removes each prompt's panel consensus before comparing
(:mod:`forensics.semantic`), which takes most of that confound out at its source (on the development
benchmark, control pairs above LR 2 on that line alone 9 -> 2), so the fusion can use both lines' information
instead of only the weaker. Measured on the development benchmark (``forensics calibrate``,
leave-one-lineage-out; ``benchmarks/bench_semantic_variants.py``), against the minimum of the same lines:
family pair AUC 0.950 -> 0.954, Cllr 0.465 -> 0.439, and fewer controls attributed (the 128-prompt source: 1
of 5 -> 0; sub-panels of 2 references: 5 -> 1 of 140).

**Families and candidates.** Teachers are grouped by the case file's families
(:func:`forensics.case.family_groups`); a family's score is its best member's. The calibrations
(:mod:`forensics.calibration`) turn teacher and family scores into LRs against independence (a family of
one member carries its member's LR, :func:`forensics.calibration.family_level`: since
panel-relative-fused-v8), and the
suspect's preference for one candidate over another (:func:`comparison_statistic`) into an LR for "trained
on A rather than B"; :func:`decide` names the most specific candidate those LRs support. Since
panel-relative-fused-v11 the LRs against independence weigh each candidate's rival lead too
(:func:`rival_leads`; :mod:`forensics.calibration`, "The rival discount"): a candidate out-scored by one of
another family loses support, a leader is weighed by its score alone. Measured against v10 on the
development benchmark (``forensics calibrate``; README, "What v11 of the method changed"): no attribution
changed, the LRs of trailing candidates fell, family Cllr 0.405 -> 0.384 leave-one-lineage-out.

**Comparing candidates.** Two views of the preference for A over B are averaged. The semantic preference
z (since panel-relative-fused-v6) measures the suspect's preference on the answer openings against the
panel's spread of the *same* preference: two siblings are close for every model, so the panel's spread of
preferences between them is narrow, and only against it does a real preference stand out (until v6 the
comparison calibrated the fused scores' difference alone, measured in the panel's wide spread of
affinities to *every* candidate, and close siblings looked tied: students named to a documented family 129
-> 134 and to a wrong one 9 -> 6 of 192 leave-one-lineage-out cases). The fused scores' difference,
divided by sqrt(2) to put a difference of two z-scale scores on their scale (a priori, not fitted), brings
in what the semantic preference cannot see: which candidate's words and formatting the suspect shares.
Their mean (since panel-relative-fused-v9), measured against the semantic preference alone by the
validation itself (``benchmarks/bench_comparison_variants.py``): see the README ("What v9 of the method
changed"). The wording line's own preference z, alone or averaged with the semantic one, was measured and
not adopted (README, "Measured and not adopted").
Measured and not adopted (``benchmarks/bench_decision_variants.py``): more weight on the semantic line
than the plain mean (0.6-0.8) separates a little better but attributes human-data controls on panels of 2
and 3 references and names more wrong families; scoring a family less a share of its best rival's score
(a resemblance another candidate explains counts for less) separates better but makes the family
calibration more liberal, and controls with 3 references are attributed (v11's rival discount differs:
it leaves the calibration of leaders as it was and only lowers trailing candidates' LRs); naming a supported family or
member that is not the leader by score but that the comparison favours names more students and more wrong
families (families), or snapshots the benchmark cannot check (members).
The co-clustering line is reported beside the others but not fused (its UMAP/HDBSCAN cost is too high
for the validation's many cases, so the calibration could not cover it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from forensics.scoring import naive_z, panel_relative, preference_z, rate_z, rounded

if TYPE_CHECKING:
    from forensics.semantic import SemanticMatrices
    from forensics.wording import WordingMatrices

#: Lines whose z-scores enter the fused score (order = report order); the fused score is their mean
#: (module docstring). The marker line is computed and reported but not fused: human-data controls whose
#: crowd-written answers borrow a teacher's phrases (a known impurity of such data) reach marker z of 5-9.
FUSED_LINES = ("embedding", "wording", "stylometry")
#: Stylometric families whose z makes the stylometric line: formatting habits. Burrows' and Cosine Delta on
#: the most frequent words, character 3-grams and topic-masked n-grams are computed and reported, not
#: fused: on the development benchmark they followed register (human-written prose reads like the terse
#: teacher) and the panel's composition (near-twin references made the spread tiny) more than lineage.
STYLO_FAMILIES = ("formatting",)
#: Share of bootstrap replicates in which a teacher must out-score every other candidate.
BEATS_LEVEL = 0.95


# ----------------------------------------------------------------------------------------- lines

def matrix_line(sim: np.ndarray, boot: np.ndarray | None, sources: Sequence[str], suspect: str,
                teachers: Sequence[str], references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Panel-relative z of one similarity matrix (full and bootstrap) per teacher."""
    full = panel_relative(np.asarray(sim, dtype=float), sources, suspect, teachers, references)
    reps = panel_relative(np.asarray(boot, dtype=float), sources, suspect, teachers, references) \
        if boot is not None and np.size(boot) else None
    out = {}
    for t in teachers:
        out[t] = {"suspect": float(full[t]["suspect"]), "references": np.ravel(full[t]["references"]),
                  "z": float(full[t]["z"]), "boot_z": reps[t]["z"] if reps else np.empty(0),
                  "boot_suspect": reps[t]["suspect"] if reps else np.empty(0)}
    return out


def embedding_lines(matrices: SemanticMatrices) -> dict[str, dict[str, Any]]:
    """Per teacher: the semantic line's panel-relative z (openings, full and bootstrap), the naive z and
    raw similarities beside it, and the whole-answer statistic (``full_answers``, reported, not fused)."""
    sources, suspect, references = list(matrices.sources), matrices.suspect, list(matrices.references)
    teachers = list(matrices.teachers)
    out = matrix_line(matrices.openings, matrices.openings_boot, sources, suspect, teachers, references)
    whole = matrix_line(matrices.full_answers, None, sources, suspect, teachers, references) \
        if matrices.full_answers is not None else None
    for t in teachers:
        out[t]["naive_z"] = naive_z(matrices.openings, sources, suspect, t, references)
        out[t]["raw_similarity"] = {s: rounded(matrices.openings[sources.index(s), sources.index(t)])
                                    for s in [suspect, *references]}
        out[t]["full_answers"] = {**whole[t], "naive_z": naive_z(matrices.full_answers, sources, suspect, t,
                                                                 references)} if whole is not None else None
    return out


def wording_lines(matrices: WordingMatrices, suspect: str, teachers: Sequence[str],
                  references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per teacher: the shared-wording line's panel-relative z (full and bootstrap)."""
    return matrix_line(matrices.similarity, matrices.boot, matrices.sources, suspect, teachers, references)


def stylometry_lines(stylo: Mapping[str, Any], suspect: str, teachers: Sequence[str],
                     references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per teacher: each family's panel-relative z and the stylometric line (mean of the fused families)."""
    sources = stylo["sources"]
    fams = {f: matrix_line(np.asarray(stylo["families"][f]["sim"]),
                           np.asarray(stylo["families"][f].get("boot", [])), sources, suspect, teachers,
                           references)
            for f in sorted(stylo["families"])}
    out = {}
    for t in teachers:
        used = [fams[f][t] for f in STYLO_FAMILIES if f in fams]
        boot = [u["boot_z"] for u in used if np.size(u["boot_z"])]
        out[t] = {"z": float(np.mean([u["z"] for u in used])),
                  "boot_z": np.mean(boot, axis=0) if boot else np.empty(0),
                  "families": {f: fams[f][t] for f in fams},
                  "boot_suspect": fams[STYLO_FAMILIES[0]][t]["boot_suspect"]}
    return out


def rate_lines(data: Mapping[str, Mapping[str, Any]], teachers: Sequence[str],
               references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per teacher: z of the suspect's rate against the references' rates (full data and every replicate).

    For lines whose raw values are one rate per source and teacher: the marker line (teacher-marker
    phrases, each reference measured on phrases chosen without it) and co-clustering. ``data[t]`` holds
    ``suspect``, ``references`` (per reference), ``boot_suspect`` and ``boot_references`` (per replicate).
    """
    full = rate_z({t: data[t]["suspect"] for t in teachers},
                  {t: data[t]["references"] for t in teachers}, references)
    n_boot = min(np.size(_array(data[t].get("boot_suspect"))) for t in teachers)
    boots = [rate_z({t: data[t]["boot_suspect"][b] for t in teachers},
                    {t: {r: data[t]["boot_references"][r][b] for r in references} for t in teachers},
                    references) for b in range(n_boot)]
    return {t: {"z": full[t], "boot_z": np.array([b[t] for b in boots]),
                "boot_suspect": _array(data[t].get("boot_suspect")),
                "suspect": data[t]["suspect"], "references": data[t]["references"]} for t in teachers}


def cluster_lines(rates: Mapping[str, Mapping[str, Any]], teachers: Sequence[str],
                  references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`rate_lines` of the co-clustering rates, with the z of the rates counting noise as a cluster
    (``noise_z``, no replicates); ``rates[t]`` as :func:`forensics.clustering.rates_from_counts` gives it."""
    out = rate_lines(rates, teachers, references)
    noisy = rate_z({t: rates[t]["noise_included"]["suspect"] for t in teachers},
                   {t: rates[t]["noise_included"]["references"] for t in teachers}, references)
    for t in teachers:
        out[t]["noise_z"] = noisy[t]
    return out


# ----------------------------------------------------------------------------------------- fusion

def comparison_statistic(matrices: SemanticMatrices, scores: Mapping[str, float], a: str, b: str) -> float:
    """The statistic the comparison level calibrates: how much more the suspect resembles candidate ``a``
    than ``b``, as the mean of two standardised views of that preference (module docstring, "Comparing
    candidates").

    - the semantic preference z: the suspect's preference for ``a`` over ``b`` on the answer openings,
      against the scoring panel's spread of the same preference (:func:`forensics.scoring.preference_z`),
      which sees fine differences between close candidates;
    - the difference of the two candidates' fused scores over sqrt(2): each fused score is on a z scale, and
      the difference of two such scores spreads by sqrt(2) when they vary independently; it carries the
      shared-wording and formatting lines, which the semantic preference does not see.

    Equal weights, fixed a priori (not fitted). NaN (read as no evidence either way) when either view is
    undefined. Antisymmetric: the statistic of (b, a) is minus that of (a, b).
    """
    preference = preference_z(matrices.openings, matrices.sources, matrices.suspect, a, b, matrices.references)
    difference = (scores[a] - scores[b]) / np.sqrt(2.0)
    return float((preference + difference) / 2.0)


def fuse(line_z: Mapping[str, Mapping[str, float]], teachers: Sequence[str]) -> dict[str, float]:
    """The mean of the fused lines' z per teacher (a line that could not be computed is left out)."""
    out = {}
    for t in teachers:
        values = [line_z[line][t] for line in FUSED_LINES if line in line_z and np.isfinite(line_z[line][t])]
        out[t] = float(np.mean(values)) if values else float("nan")
    return out


def fuse_boot(line_boot: Mapping[str, Mapping[str, np.ndarray]],
              teachers: Sequence[str]) -> dict[str, np.ndarray]:
    """Fused score (:func:`fuse`) per bootstrap replicate (lines without replicates are left out)."""
    out = {}
    for t in teachers:
        reps = [np.asarray(line_boot[line][t], dtype=float) for line in FUSED_LINES
                if line in line_boot and np.size(line_boot[line][t])]
        if not reps:
            out[t] = np.empty(0)
            continue
        n = min(len(r) for r in reps)
        out[t] = np.nanmean(np.stack([r[:n] for r in reps]), axis=0)
    return out


def beats_others(boot_scores: Mapping[str, np.ndarray], full_scores: Mapping[str, float]) -> dict[str, float]:
    """Share of replicates in which each teacher's fused score is strictly above every other's.

    With one candidate there is nothing to beat (share 1); without replicates the full-data ranking
    decides (share 1 or 0).
    """
    teachers = list(full_scores)
    if len(teachers) == 1:
        return {teachers[0]: 1.0}
    if any(np.size(boot_scores[t]) == 0 for t in teachers):
        best = max(teachers, key=lambda t: full_scores[t])
        return {t: float(t == best) for t in teachers}
    n = min(len(boot_scores[t]) for t in teachers)
    stack = np.stack([boot_scores[t][:n] for t in teachers])
    out = {}
    for i, t in enumerate(teachers):
        others = np.delete(stack, i, axis=0)
        out[t] = float(np.mean(stack[i] > others.max(axis=0)))
    return out


def family_scores(scores: Mapping[str, float], groups: Mapping[str, Sequence[str]]) -> dict[str, tuple[float, str]]:
    """Per family: the best member's score and that member.

    Hp for a family is "trained on outputs of *some* model of it", so the member the suspect resembles most
    carries it; the family calibration is fitted on exactly this statistic, so the advantage a family of
    several members gets from taking a maximum is part of what is calibrated, not a bias.
    """
    out = {}
    for family, members in groups.items():
        finite = [m for m in members if np.isfinite(scores[m])]
        best = max(finite, key=lambda m: scores[m]) if finite else members[0]
        out[family] = (float(scores[best]) if finite else float("nan"), best)
    return out


def rival_leads(scores: Mapping[str, float], groups: Mapping[str, Sequence[str]]
                ) -> dict[str, tuple[float, str | None]]:
    """Per teacher: (its rival lead, the rival): how far the best-scoring candidate *outside its family*
    scores above it, and that candidate; (0, None) when none does (it leads, or there is no other family).

    The calibration's rival discount (:mod:`forensics.calibration`) weighs it: a resemblance that another
    candidate explains better counts for less. Siblings of one family are not each other's rivals (Hp for a
    family is "some member"); teachers declared without a family are families of their own, so undeclared
    siblings do discount each other. NaN for a teacher without a score; candidates without one are nobody's
    rival. A family's lead is its best member's (a family's score is its best member's, and the best scores
    outside it are the other families' best members).
    """
    out: dict[str, tuple[float, str | None]] = {}
    for teacher, best in best_of_other_families(scores, groups).items():
        if not np.isfinite(scores[teacher]):
            out[teacher] = (float("nan"), None)
        elif best is None or scores[best] <= scores[teacher]:
            out[teacher] = (0.0, None)
        else:
            out[teacher] = (float(scores[best] - scores[teacher]), best)
    return out


def best_of_other_families(scores: Mapping[str, float], groups: Mapping[str, Sequence[str]]
                           ) -> dict[str, str | None]:
    """Per teacher (sorted): the best-scoring candidate outside its family (ties by name), None where no other
    family has a finite score. A trailing candidate's rival (:func:`rival_leads`), or a leader's runner-up,
    which ``forensics plan`` holds while the leader's own score moves (:mod:`forensics.plan`)."""
    family_of = {m: family for family, members in groups.items() for m in members}
    out: dict[str, str | None] = {}
    for teacher in sorted(family_of):
        others = sorted((t for t in family_of if family_of[t] != family_of[teacher] and np.isfinite(scores[t])),
                        key=lambda t: (-scores[t], t))
        out[teacher] = others[0] if others else None
    return out


def decide(teachers: Sequence[Mapping[str, Any]], families: Sequence[Mapping[str, Any]],
           compare: Callable[[str, str], float], band: Sequence[float],
           enough_references: bool = True) -> dict[str, Any]:
    """The conclusion at family and teacher level: the most specific statement the evidence supports.

    ``teachers`` and ``families`` carry ``name``, ``score``, ``log10_lr`` and ``supports`` (families also
    ``members`` and ``best_member``); ``compare(a, b)`` is the calibrated log10 LR of "trained on A rather
    than B" for two candidate teachers; two families are compared through their best members.

    - A **family** is attributed when its LR supports Hp and it is favoured over *every* other candidate
      family by the candidate-vs-candidate LR (provenance testing: the other candidates are controls too).
      A clear lead is thereby named even when a second family also resembles the suspect more than the
      panel does, and two families that cannot be told apart give "inconclusive", naming both.
    - A **teacher** is attributed when its family is, its own LR supports Hp, and (in a family of several
      members) it is favoured over every sibling by the same comparison; otherwise the family stands alone.
    - Without ``enough_references`` (references of fewer than :data:`forensics.case.MIN_PANEL_FAMILIES`
      model lines) nothing is attributed: the outcome is "inconclusive" when a candidate or family supports
      Hp, else "no teacher supported" (the constant says why).
    """
    high = float(band[1])
    supported_t = [t["name"] for t in teachers if t["supports"] == "Hp"]
    supported_f = [f["name"] for f in families if f["supports"] == "Hp"]
    # every outcome carries every key (empty comparisons where none were made): one shape for readers
    base = {"candidates_supported": supported_t, "families_supported": supported_f,
            "attributed_teacher": None, "attributed_family": None, "family_comparisons": {},
            "sibling_comparisons": {}}
    ranked = sorted((f for f in families if _finite(f["score"])), key=lambda f: -f["score"])
    if not ranked or ranked[0]["supports"] != "Hp" or not enough_references:
        outcome = "inconclusive" if supported_f or supported_t else "no teacher supported"
        return {**base, "outcome": outcome}
    top = ranked[0]
    rivals = {f["name"]: compare(top["best_member"], f["best_member"]) for f in ranked[1:]}
    if any(v <= high for v in rivals.values()):
        return {**base, "outcome": "inconclusive", "family_comparisons": _rounded_map(rivals)}
    base.update(attributed_family=top["name"], family_comparisons=_rounded_map(rivals))
    members = [t for t in teachers if t["name"] in top["members"] and _finite(t["score"])]
    best = max(members, key=lambda t: t["score"])
    siblings = {t["name"]: compare(best["name"], t["name"]) for t in members if t is not best}
    base["sibling_comparisons"] = _rounded_map(siblings)
    if best["supports"] == "Hp" and all(v > high for v in siblings.values()):
        return {**base, "outcome": "attributed", "attributed_teacher": best["name"]}
    return {**base, "outcome": "family attributed"}


def _finite(value: Any) -> bool:
    return value is not None and bool(np.isfinite(value))


def _rounded_map(values: Mapping[str, float]) -> dict[str, float]:
    return {k: rounded(v) for k, v in sorted(values.items())}


def _array(value: Any) -> np.ndarray:
    """Bootstrap replicates as a float array, whether they come from JSON (list/None) or memory."""
    return np.empty(0) if value is None else np.asarray(value, dtype=float)
