"""Fusion weights and decision rules the shipped method was measured against (earlier versions' among them).

Why: several choices in the engine look as if they leave evidence unused or could be made either way, and
each was measured before it was kept. Every variant is decided by the validation itself
(:func:`forensics.validation.held_out`, both schemes, calibrations refitted in every fold on the variant's
own scores); only the variant changes.

* **Fusion weights.** The fused score is the plain mean of the fused lines' z
  (:func:`forensics.weighing.fuse`). The semantic line alone separates better than the formatting line, so
  more weight on it might name more students: ``semantic weight 0.6 / 0.7 / 0.8`` weigh it so, the rest
  shared equally by the other fused lines (a line that could not be computed is left out, as in the mean).
* **A family's rivals.** Against independence a family is scored alone, so a student of a sister family
  (gpt-3.5-turbo's, say) scores high for gpt-4 too, a misleading Hd pair. ``family less 0.2 / 0.3 x best
  rival`` subtracts that share of the best other family's score (when positive) before the family level is
  calibrated, so a family whose resemblance another candidate explains counts for less.
* **How a family of several members is scored.** A family's score is its best member's
  (:func:`forensics.weighing.family_scores`): Hp is "trained on *some* model of it". ``family scored by its
  members' mean`` and ``family scored by a soft maximum (t = 0.5)`` (0.5 log of the mean of exp(score / 0.5))
  take less from the single closest member, so a student of a sister family that resembles one snapshot
  counts for less, and a student of the family that resembles one snapshot more than the other too.
* **How a one-member family is weighed.** A family of one member carries its member's teacher-level LR
  (:func:`forensics.calibration.family_level`, since panel-relative-fused-v8). ``one-member families at
  family level (v7)`` weighs them with the family calibration, as before, which can state two strengths for
  one proposition; ``family calibration fitted on several-member families only`` also leaves one-member
  families out of the family calibration's fit. ``every teacher its own family`` is a case file without
  ``family:`` (the calibrations refitted so), where the family level then adds nothing to the teacher level.
* **Small panels.** Since panel-relative-fused-v10 nothing is named unless the references are of at least
  two model lines (:data:`forensics.case.MIN_PANEL_FAMILIES`; in the validation a line is a lineage of the
  labels, so two guanacos are one). ``nothing named below three references (v8, v9)`` is the rule it
  replaced, whatever the references' lines; ``references of one line name a candidate too`` drops the rule.
  Below the shipped rule's counts, ``one-candidate cases`` counts the control/teacher pairs whose
  teacher-level LR supports Hp per panel size and, for sub-panels, whether they are of one line: what a
  case with that one candidate and no family would be attributed on where its panel allows naming anything.
* **Which family is named.** :func:`forensics.weighing.decide` names the *leading* family (highest score)
  when the candidate-vs-candidate LR favours it over every other. ``any supported family`` also names a
  supported family that is not the leader when the comparison favours it over every other family.
* **Which teacher is named.** Within the family named, the *leading* member is named when the comparison
  favours it over every sibling. ``any supported member`` also names a supported sibling the comparison
  favours over every other member. On this benchmark no student is documented to one snapshot of a
  family (a vicuna's label is "gpt-3.5-turbo", both snapshots count as right), so its teacher counts can
  only rise and say nothing about whether the snapshot named is the right one.

Counted per scheme: on full panels, students named to a documented family / to a wrong one, students with
a teacher named, controls attributed; on sub-panels of 2 and 3 references the same for families; the family
level's held-out pair AUC and Cllr (the weights change them, the rules do not). Appended to
``benchmarks/results/decision_variants.txt``.

    python benchmarks/bench_decision_variants.py [--labels ../shared/data/alpaca_eval/LABELS.csv]
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from unittest import mock

import labelled_benchmark
import numpy as np
import pandas as pd

from forensics import validation, weighing
from forensics.case import MIN_PANEL_FAMILIES, Parameters

SEMANTIC_WEIGHTS = (0.6, 0.7, 0.8)
RIVAL_SHARES = (0.2, 0.3)


def weighted(pairs: pd.DataFrame, semantic_weight: float) -> pd.DataFrame:
    """The pair table with each score ``semantic_weight`` x the semantic z plus the rest x the mean of the
    other fused lines' z (the mean of what is there where a line could not be computed, as
    :func:`forensics.weighing.fuse` leaves it out)."""
    semantic = pairs["z_embedding"]
    others = pairs[[f"z_{line}" for line in weighing.FUSED_LINES if line != "embedding"]].mean(axis=1)
    score = semantic_weight * semantic + (1 - semantic_weight) * others
    plain = pairs[[f"z_{line}" for line in weighing.FUSED_LINES]].mean(axis=1)
    return pairs.assign(score=score.where(np.isfinite(score), plain))


def restated(preferences: pd.DataFrame, pairs: pd.DataFrame, reweighted: pd.DataFrame) -> pd.DataFrame:
    """The comparison statistic with its fused-difference half (:func:`forensics.weighing.comparison_statistic`)
    taken from the ``reweighted`` pair scores instead of the shipped ones, so a fusion variant is compared
    with its own scores too (its semantic-preference half does not change)."""
    keys = ["set", "suspect", "teacher"]
    change = reweighted.set_index(keys)["score"] - pairs.set_index(keys)["score"]
    lookup = change.to_dict()
    shift = [(lookup[(s, u, a)] - lookup[(s, u, b)]) / (2 * np.sqrt(2)) for s, u, a, b in
             zip(preferences["set"], preferences["suspect"], preferences["a"], preferences["b"], strict=True)]
    return preferences.assign(statistic=preferences["statistic"] + np.asarray(shift, dtype=float))


def family_scored_by(tables: validation.LevelTables, pairs: pd.DataFrame,
                     aggregate: Callable[[np.ndarray], float]) -> validation.LevelTables:
    """The tables with each family of several members scored by ``aggregate`` of its members' scores (the
    best member, which the comparisons use, unchanged)."""
    score = pairs.set_index(["set", "suspect", "teacher"])["score"]
    families = tables.family
    new = [aggregate(np.array([score[(row.set, row.suspect, m)] for m in row.members.split(", ")], dtype=float))
           if row.n_members > 1 else row.score for row in families.itertuples()]
    return dataclasses.replace(tables, family=family_leads(families.assign(score=new)))


def family_leads(families: pd.DataFrame) -> pd.DataFrame:
    """The family table with each family's rival lead (v11) recomputed from its (variant) scores: how far the
    best other family of its case scores above it. A family of one member keeps its member's lead: it is
    weighed at teacher level, as its member is."""
    best_other = families.groupby(["set", "suspect"], sort=False)["score"].transform(
        lambda s: [np.nanmax(np.delete(s.to_numpy(), i)) if len(s) > 1 else -np.inf for i in range(len(s))])
    lead = (best_other - families["score"]).clip(lower=0.0)
    return families.assign(rival_lead=lead.where(families["n_members"] > 1, families["rival_lead"]))


def soft_maximum(scores: np.ndarray, temperature: float = 0.5) -> float:
    return float(temperature * np.log(np.mean(np.exp(scores / temperature))))


def one_member_families_at_family_level(tables: validation.LevelTables) -> validation.LevelTables:
    """The tables with every family counted as one of several, so the family calibration weighs all of them
    (:func:`forensics.validation.transform_level`), as panel-relative-fused-v7 did."""
    families = tables.family.assign(n_members=tables.family["n_members"].clip(lower=2))
    return dataclasses.replace(tables, family=families)


@contextlib.contextmanager
def family_fitted_on_several_members() -> Iterator[None]:
    """Within it, the calibrations leave one-member families out of the family level's fit (they are still
    tested, and weighed at teacher level)."""
    shipped = validation.never_fitted

    def never_fitted(frame: pd.DataFrame) -> pd.Series:
        out = shipped(frame)
        return out | (frame["n_members"] == 1) if "n_members" in frame.columns else out

    with mock.patch.object(validation, "never_fitted", never_fitted):
        yield


def level_tables(pairs: pd.DataFrame, preferences: pd.DataFrame, rival_share: float = 0.0) -> validation.LevelTables:
    """The validation's tables for these pairs, their rival leads (v11) recomputed from the pairs' scores and
    families; with ``rival_share``, each family's score less that share of the best other family's score in
    its case (when positive), and no rival lead for families of several members (the share replaces the
    discount there). The
    comparison pairs keep the unadjusted families (their best members do not change)."""
    pairs = validation.with_rival_leads(pairs)
    families = validation.family_table(pairs)
    comparison = validation.comparison_table(families, preferences)
    if rival_share:
        best_other = families.groupby(["set", "suspect"], sort=False)["score"].transform(
            lambda s: [np.nanmax(np.delete(s.to_numpy(), i)) for i in range(len(s))])
        several = families["n_members"] > 1  # a one-member family is weighed at teacher level, lead and all
        families = families.assign(score=families["score"] - rival_share * best_other.clip(lower=0),
                                   rival_lead=families["rival_lead"].where(~several, 0.0))
    return validation.LevelTables(pairs, families, comparison, preferences)


def promoted(entries: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries with ``chosen`` scored above every other, so :func:`forensics.weighing.decide` takes it as
    the leader and weighs it exactly as it weighs a leader."""
    top = max(float(e["score"]) for e in entries if weighing._finite(e["score"])) + 1.0
    return [dict(e, score=top) if e is chosen else dict(e) for e in entries]


def any_supported_family(teachers: Sequence[Mapping[str, Any]], families: Sequence[Mapping[str, Any]],
                         compare: Callable[[str, str], float], band: Sequence[float],
                         enough_references: bool = True) -> dict[str, Any]:
    """As shipped, but when the leading family is not named, a supported family favoured over every other
    one is (the highest-scoring such family)."""
    shipped = weighing.decide(teachers, families, compare, band, enough_references=enough_references)
    if shipped["attributed_family"] is not None:
        return shipped
    for family in sorted(families, key=lambda f: -f["score"] if weighing._finite(f["score"]) else np.inf):
        if family["supports"] == "Hp":
            decision = weighing.decide(teachers, promoted(families, family), compare, band,
                                       enough_references=enough_references)
            if decision["attributed_family"] is not None:
                return decision
    return shipped


def any_supported_member(teachers: Sequence[Mapping[str, Any]], families: Sequence[Mapping[str, Any]],
                         compare: Callable[[str, str], float], band: Sequence[float],
                         enough_references: bool = True) -> dict[str, Any]:
    """As shipped, but when the family named stands alone, a supported member favoured over every sibling is
    named (the highest-scoring such member)."""
    shipped = weighing.decide(teachers, families, compare, band, enough_references=enough_references)
    if shipped["outcome"] != "family attributed":
        return shipped
    members = next(f["members"] for f in families if f["name"] == shipped["attributed_family"])
    for teacher in sorted((t for t in teachers if t["name"] in members and weighing._finite(t["score"])),
                          key=lambda t: -t["score"]):
        if teacher["supports"] == "Hp":
            decision = weighing.decide(promoted(teachers, teacher), families, compare, band,
                                       enough_references=enough_references)
            if decision["attributed_teacher"] is not None:
                return decision
    return shipped


def with_panel_rule(pairs: pd.DataFrame, may_name: Callable[[pd.DataFrame], pd.Series]) -> pd.DataFrame:
    """The pairs with another rule for which panels may name a candidate: ``n_panel_lines`` (what the
    shipped rule reads) set to enough lines where ``may_name`` holds, one where it does not."""
    return pairs.assign(n_panel_lines=np.where(may_name(pairs), MIN_PANEL_FAMILIES, 1))


def one_candidate_cases(done: validation.LevelTables) -> str:
    """Control/teacher pairs whose held-out teacher-level LR supports Hp, per panel size and, for sub-panels,
    whether their references are of one line (module docstring)."""
    controls = done.teacher[(done.teacher["role"] == "control") & ~done.teacher["set"].map(validation.is_all_but)]
    one_line = controls["n_panel_lines"] < MIN_PANEL_FAMILIES
    size = [f"{validation.subpanel_size(s)} references{' of one line' if single else ''}"
            if validation.is_subpanel(s) else "full panels" for s, single in zip(controls["set"], one_line,
                                                                                   strict=True)]
    counts = [f"{name} {int((rows['supports'] == 'Hp').sum())} of {len(rows)}"
              for name, rows in controls.groupby(size, sort=True)]
    return "one-candidate cases, control/teacher pairs supporting Hp: " + ", ".join(counts)


def tally(cases: pd.DataFrame, panel_lines: pd.Series) -> str:
    """Students of the all-prompts set named to a documented family (where the scheme tests it); full panels:
    students to a documented / wrong family, with a teacher named, controls attributed; then the same for
    families on each sub-panel size, those of one line apart (``panel_lines``: each (set, suspect)'s real
    model lines, which a variant's panel rule may have overwritten in its own tables)."""
    every = cases[(cases["set"] == validation.ALL_PROMPTS) & (cases["role"] == "student")]
    parts = [f"all prompts: family {int(every['correct_family'].sum())} of {len(every)}"] if len(every) else []
    sub = cases["set"].map(validation.is_subpanel)
    size = cases.loc[sub, "set"].map(validation.subpanel_size)
    lines = pd.Series([panel_lines[key] for key in zip(cases["set"], cases["suspect"], strict=True)],
                      index=cases.index)
    one_line = lines[sub] < MIN_PANEL_FAMILIES
    unions = cases["set"].map(validation.is_all_but)  # the unions of all sources but one re-use their answers
    groups = [("full panels", cases[~sub & ~unions])] + [
        (f"panels of {n}{' of one line' if single else ''}", rows)
        for (n, single), rows in cases[sub].groupby([size, one_line], sort=True)]
    for name, rows in groups:
        students, controls = rows[rows["role"] == "student"], rows[rows["role"] == "control"]
        named = students["attributed_family"] != "none"
        text = (f"{name}: family {int((named & students['correct_family']).sum())} right / "
                f"{int((named & ~students['correct_family']).sum())} wrong of {len(students)}")
        if name == "full panels":
            text += f", teacher named {int((students['attributed'] != 'none').sum())}"
        parts.append(text + f", controls attributed {int((controls['attributed_family'] != 'none').sum())} "
                            f"of {len(controls)}")
    return "; ".join(parts)


def main() -> None:
    labels = labelled_benchmark.labels_argument(__doc__.splitlines()[0])
    params = Parameters()
    bench = labelled_benchmark.embedded_benchmark(labels, params)
    pairs, preferences = validation.benchmark_tables(bench, params, every_line=False)
    panel_lines = pairs.groupby(["set", "suspect"], sort=False)["n_panel_lines"].first()
    variants: list[tuple[str, validation.LevelTables, validation.DecisionRule]] = [
        ("shipped (equal weights, leading family and member)", level_tables(pairs, preferences), weighing.decide)]
    variants += [(f"semantic weight {w}", level_tables(weighted(pairs, w),
                                                       restated(preferences, pairs, weighted(pairs, w))),
                  weighing.decide) for w in SEMANTIC_WEIGHTS]
    variants += [(f"family less {c} x best rival", level_tables(pairs, preferences, c), weighing.decide)
                 for c in RIVAL_SHARES]
    variants += [("any supported family", level_tables(pairs, preferences), any_supported_family),
                 ("any supported member", level_tables(pairs, preferences), any_supported_member),
                 ("one-member families at family level (v7)",
                  one_member_families_at_family_level(level_tables(pairs, preferences)), weighing.decide)]
    variants += [("family scored by its members' mean", family_scored_by(level_tables(pairs, preferences), pairs,
                                                                          lambda v: float(np.mean(v))),
                  weighing.decide),
                 ("family scored by a soft maximum (t = 0.5)",
                  family_scored_by(level_tables(pairs, preferences), pairs, soft_maximum), weighing.decide)]
    variants += [("every teacher its own family", level_tables(pairs.assign(family=pairs["teacher"]), preferences),
                  weighing.decide),
                 ("nothing named below three references (v8, v9)",
                  level_tables(with_panel_rule(pairs, lambda p: p["n_panel"] >= 3), preferences), weighing.decide),
                 ("references of one line name a candidate too",
                  level_tables(with_panel_rule(pairs, lambda p: p["n_panel"] >= 2), preferences), weighing.decide)]
    fitted_on_several = {"family calibration fitted on several-member families only"}
    variants += [(name, level_tables(pairs, preferences), weighing.decide) for name in sorted(fitted_on_several)]
    lines = [f"fusion weights and decision rules on {labels.name} ({len(bench.prompt_keys)} prompts); decided "
             f"by validation.held_out ({validation.METHOD_VERSION})"]
    for name, tables, rule in variants:
        lines.append(f"  {name}")
        for scheme in validation.SCHEMES:
            with family_fitted_on_several_members() if name in fitted_on_several else contextlib.nullcontext():
                done, cases = validation.held_out(tables, scheme, params.inconclusive_band, rule)
            fitted = done.family[validation.pooled(done.family)]
            metrics = validation.level_metrics(fitted, "score")
            lines.append(f"    {scheme}: family AUC {metrics['pair_auc']:.3f}, Cllr {metrics['cllr']:.3f}; "
                         f"{tally(cases, panel_lines)}")
            if name.startswith("shipped"):
                lines.append(f"      {one_candidate_cases(done)}")
    labelled_benchmark.append_result("decision_variants.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
