"""Which statistic the candidate-vs-candidate comparison ("trained on A rather than B") should calibrate.

Why: when two families both resemble the suspect more than the panel does, the conclusion names one only if
the comparison LR favours it over every other (:func:`forensics.weighing.decide`). From v4 to v5 the
comparison calibrated the difference of the two families' fused scores. Each fused score is a z against
the panel's pooled spread of affinities to *every* candidate, but two snapshots or sister lines of one
vendor are close to each other for every model, so the spread of the panel's *preference* for A over B is
much narrower than that pooled spread. The variant measured here standardises the suspect's preference by
exactly that:

* ``fused difference`` - ``score(A) - score(B)`` of the families' best members (shipped in v4 and v5);
* ``semantic preference z`` (shipped v6 to v8, :func:`forensics.scoring.preference_z`) - on the semantic
  line, ``d(X) = sim(X, a) - sim(X, b)`` for the best members a and b; ``(d(suspect) - mean d(panel)) /
  sd d(panel)``, read for the panel's size like every z (:func:`forensics.scoring.panel_size_z`);
* ``shipped (v9)`` - the mean of the two, the fused difference divided by sqrt(2) (a difference of two
  z-scale scores), a scale fixed a priori (:func:`forensics.weighing.comparison_statistic`);
* ``mean of both, ... scaled ...`` - the same mean with the preference z scaled to the fused difference's
  spread over every full-panel pair of candidates of the benchmark (v6 and v7's runner-up: a fitted scale);
* ``wording preference z`` - the same preference z on the shared-wording line (:mod:`forensics.wording`,
  fused since v7), and ``semantic and wording preference z`` - the mean of the two preference z.

For each: the AUC of the labelled comparison pairs the calibration is fitted on (all, and between families
of one vendor, from the labels' ``vendor`` column), then the conclusions of every student and control,
decided by the validation itself (:func:`forensics.validation.held_out`, both schemes) with the variant as
the comparison statistic, counted over the full-panel cases as students named to a documented family / to a
wrong one. The shipped statistic's rows are therefore ``forensics calibrate``'s ``validation/cases.csv``
family counts. Appended to ``benchmarks/results/comparison_variants.txt``.

    python benchmarks/bench_comparison_variants.py [--labels ../shared/data/alpaca_eval/LABELS.csv]
"""

from __future__ import annotations

import itertools

import labelled_benchmark
import numpy as np
import pandas as pd

from forensics import validation
from forensics.case import Parameters
from forensics.scoring import preference_z
from forensics.wording import overlap_matrices

KEYS = ["set", "suspect", "a", "b"]


def line_preferences(bench: validation.Benchmark, params: Parameters) -> pd.DataFrame:
    """The suspect's preference z for a over b on the semantic line (answer openings, as step 02 measures
    them) and on the shared-wording line, every scored case and ordered pair of candidates."""
    overlap = validation.wording_overlap(bench, params.opening_words)
    rows = []
    for prompt_set, idx, corpus in validation.scored_cases(bench):
        openings = {s: bench.openings[s][idx] for s in corpus.sources}
        measured = validation.semantic_measurement(corpus, openings, params)
        words = overlap_matrices(corpus, overlap.for_case(corpus, idx), np.empty((0, len(idx)), dtype=int),
                                 params.opening_words)
        references = list(corpus.references)
        rows += [{"set": prompt_set, "suspect": corpus.suspect, "a": a, "b": b,
                  "semantic_z": preference_z(measured.openings, list(measured.sources), corpus.suspect, a, b,
                                             references),
                  "wording_z": preference_z(words.similarity, list(words.sources), corpus.suspect, a, b,
                                            references)}
                 for a, b in itertools.permutations(corpus.teachers, 2)]
    return pd.DataFrame(rows)


def variant_statistics(pairs: pd.DataFrame, preferences: pd.DataFrame,
                       lines: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Variant name -> a preference table (``statistic`` = the variant's) for every ordered pair of candidates
    of every scored case, the shape :func:`forensics.validation.comparison_table` and
    :func:`forensics.validation.held_out` take. ``preferences`` is the shipped statistic
    (:func:`forensics.validation.benchmark_tables`), kept as the first variant to check that this script
    rebuilds it exactly."""
    rows = []
    for (prompt_set, suspect), group in pairs.groupby(["set", "suspect"], sort=True):
        scores = dict(zip(group["teacher"], group["score"], strict=True))
        rows += [{"set": prompt_set, "suspect": suspect, "a": a, "b": b, "difference": scores[a] - scores[b]}
                 for a in scores for b in scores if a != b]
    both = preferences.merge(pd.DataFrame(rows), on=KEYS, validate="one_to_one").merge(lines, on=KEYS,
                                                                                       validate="one_to_one")
    full = ~both["set"].map(validation.is_subpanel)
    scale = both.loc[full, "difference"].std() / both.loc[full, "semantic_z"].std()
    rebuilt = (both["semantic_z"] + both["difference"] / np.sqrt(2)) / 2
    if not np.allclose(rebuilt, both["statistic"], atol=1e-9, equal_nan=True):
        raise SystemExit("the shipped comparison statistic is not what this script rebuilds")
    statistics = {"shipped (v9): mean of the semantic preference z and the fused difference / sqrt(2)":
                  both["statistic"],
                  "fused difference (v4-v5)": both["difference"],
                  "semantic preference z (v6-v8)": both["semantic_z"],
                  "mean of both, the preference z scaled to the fused difference's spread on the benchmark":
                  (both["difference"] + scale * both["semantic_z"]) / 2,
                  "wording preference z": both["wording_z"],
                  "semantic and wording preference z": (both["semantic_z"] + both["wording_z"]) / 2}
    return {name: both[KEYS].assign(statistic=values) for name, values in statistics.items()}


def counts(cases: pd.DataFrame) -> str:
    """Per prompt-set group (full panels; not the unions of all sources but one, which re-use the others'
    answers): students named to a documented family / a wrong one; controls attributed."""
    cases = cases[~cases["set"].map(validation.is_subpanel) & ~cases["set"].map(validation.is_all_but)]
    cases = cases.assign(group=cases["set"].map(validation.size_group), named=cases["attributed_family"] != "none")
    parts = []
    for group, rows in cases.groupby("group", sort=True):
        students, controls = rows[rows["role"] == "student"], rows[rows["role"] == "control"]
        parts.append(f"{group} {int((students['named'] & students['correct_family']).sum())}/{len(students)} "
                     f"wrong {int((students['named'] & ~students['correct_family']).sum())} "
                     f"controls {int(controls['named'].sum())}")
    total = cases[cases["role"] == "student"]
    return (f"all sets: {int((total['named'] & total['correct_family']).sum())} right, "
            f"{int((total['named'] & ~total['correct_family']).sum())} wrong of {len(total)} student cases; "
            + "; ".join(parts))


def subpanel_counts(cases: pd.DataFrame) -> str:
    """Sub-panel cases (2 and 3 references): students named to a documented family / a wrong one; controls
    attributed ("" where the scheme has none)."""
    sub = cases[cases["set"].map(validation.is_subpanel)]
    if sub.empty:
        return ""
    students, controls = sub[sub["role"] == "student"], sub[sub["role"] == "control"]
    named = students["attributed_family"] != "none"
    return (f"; sub-panels: {int((named & students['correct_family']).sum())} right, "
            f"{int((named & ~students['correct_family']).sum())} wrong of {len(students)} student cases, controls "
            f"{int((controls['attributed_family'] != 'none').sum())} of {len(controls)}")


def main() -> None:
    from sklearn.metrics import roc_auc_score

    labels = labelled_benchmark.labels_argument(__doc__.splitlines()[0])
    params = Parameters()
    bench = labelled_benchmark.embedded_benchmark(labels, params)
    pairs, preferences = validation.benchmark_tables(bench, params, every_line=False)
    families = validation.family_table(pairs)
    vendor = bench.labels.dropna(subset=["family"]).groupby("family")["vendor"].first().to_dict()
    lines = []
    lines_z = line_preferences(bench, params)
    for variant, statistic in variant_statistics(pairs, preferences, lines_z).items():
        tables = validation.LevelTables(pairs, families, validation.comparison_table(families, statistic), statistic)
        labelled = tables.comparison[validation.pooled(tables.comparison)]
        same_vendor = labelled[[vendor.get(a) == vendor.get(b) for a, b in zip(labelled["a"], labelled["b"],
                                                                                strict=True)]]
        if not lines:
            lines.append(f"candidate-vs-candidate comparison variants on {labels.name} "
                         f"({len(bench.prompt_keys)} prompts, {len(labelled)} labelled family comparison pairs the "
                         f"calibration is fitted on, the all-prompts set and each source, {len(same_vendor)} between "
                         f"families of one vendor); decided by validation.held_out")
        lines.append(f"  {variant}: AUC {roc_auc_score(labelled['hp'], labelled['statistic']):.4f}, between "
                     f"families of one vendor {roc_auc_score(same_vendor['hp'], same_vendor['statistic']):.4f}")
        for scheme in validation.SCHEMES:
            cases = validation.held_out(tables, scheme, params.inconclusive_band)[1]
            lines.append(f"    {scheme}: {counts(cases)}{subpanel_counts(cases)}")
    labelled_benchmark.append_result("comparison_variants.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
