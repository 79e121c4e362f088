"""Which statistic the candidate-vs-candidate comparison ("trained on A rather than B") should calibrate.

Why: when two families both resemble the suspect more than the panel does, the conclusion names one only if
the comparison LR favours it over every other (:func:`forensics.weighing.decide`). From v4 to v5 the
comparison calibrated the difference of the two families' fused scores. Each fused score is a z against the panel's
pooled spread of affinities to *every* candidate, but two snapshots or sister lines of one vendor are close
to each other for every model, so the spread of the panel's *preference* for A over B is much narrower than
that pooled spread. The variant measured here standardises the suspect's preference by exactly that:

* ``fused difference`` - ``score(A) - score(B)`` of the families' best members (shipped until
  panel-relative-fused-v6);
* ``semantic preference z`` (shipped since v6, :func:`forensics.scoring.preference_z`) - on the semantic
  line, ``d(X) = sim(X, a) - sim(X, b)`` for the best members a and b; ``(d(suspect) - mean d(panel)) /
  sd d(panel)``, read for the panel's size like every z (:func:`forensics.scoring.panel_size_z`);
* ``mean of both`` - their mean, after scaling the preference z to the fused difference's spread.

For each: the comparison pairs' AUC (all, and between families of one vendor, from the labels' ``vendor``
column), then the conclusions of every student and control, decided as the validation decides them (family
supports from held-out family LRs; comparisons calibrated without the tested lineage, and across prompt
sources without the tested source), counted as students named to a documented family / to a wrong one.
The shipped statistic's rows reproduce ``forensics calibrate``'s ``validation/cases.csv`` family counts
(a check of this harness; sub-panels left out). Appended to ``benchmarks/results/comparison_variants.txt``.

    python benchmarks/bench_comparison_variants.py [--labels ../shared/data/alpaca_eval/LABELS.csv]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forensics import validation  # noqa: E402
from forensics.calibration import Calibration  # noqa: E402
from forensics.case import Parameters  # noqa: E402
from forensics.scoring import panel_size_z  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT.parent / "shared" / "data" / "alpaca_eval" / "LABELS.csv"
RESULTS = ROOT / "benchmarks" / "results" / "comparison_variants.txt"
VARIANTS = ("fused difference", "semantic preference z", "mean of both")


def preference_z(bench: validation.Benchmark, params: Parameters) -> dict[tuple[str, str, str, str], float]:
    """(prompt set, suspect, a, b) -> the semantic preference z of every ordered pair of candidates
    (full panels; every prompt set the validation scores, samples included)."""
    none_drawn = {}
    out = {}
    for prompt_set, idx in bench.prompt_sets().items():
        none_drawn.setdefault(len(idx), np.empty((0, len(idx)), dtype=int))
        for corpus in validation.benchmark_cases(bench, idx):
            openings = {s: bench.openings[s][idx] for s in corpus.sources}
            sim = validation.semantic_measurement(corpus, openings, params, none_drawn[len(idx)]).openings
            at = {s: i for i, s in enumerate(corpus.sources)}
            refs = [at[r] for r in corpus.references]
            for a, b in itertools.permutations(corpus.teachers, 2):
                own = sim[at[corpus.suspect], at[a]] - sim[at[corpus.suspect], at[b]]
                panel = sim[refs, at[a]] - sim[refs, at[b]]
                raw = (own - panel.mean()) / panel.std(ddof=1)
                out[(prompt_set, corpus.suspect, a, b)] = float(panel_size_z(raw, len(refs)))
    return out


def comparison_rows(families: pd.DataFrame, prefs: dict[tuple[str, str, str, str], float]) -> pd.DataFrame:
    """Every ordered pair of families of every full-panel case, with each variant's statistic."""
    rows = []
    full = families[~families["set"].map(validation.is_subpanel)]
    for (prompt_set, suspect), group in full.groupby(["set", "suspect"], sort=True):
        for a, b in itertools.permutations(list(group.itertuples()), 2):
            rows.append({"set": prompt_set, "suspect": suspect, "role": a.role, "lineage": a.lineage,
                         "a": a.family, "b": b.family, "hp_a": a.hp, "hp_b": b.hp,
                         "fused difference": a.score - b.score,
                         "semantic preference z": prefs[(prompt_set, suspect, a.best_member, b.best_member)]})
    frame = pd.DataFrame(rows)
    scale = frame["fused difference"].std() / frame["semantic preference z"].std()
    frame["mean of both"] = (frame["fused difference"] + scale * frame["semantic preference z"]) / 2
    return frame


def calibrated_pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """The labelled comparison pairs: a student's documented family against an undocumented one (Hp) and
    the mirror (Hd); a mixed student's two documented families are not compared (both are right)."""
    students = rows[rows["role"] == "student"]
    return students[students["hp_a"] != students["hp_b"]].assign(hp=lambda f: f["hp_a"])


def fitted(labelled: pd.DataFrame, column: str, keep: pd.Series) -> Calibration:
    """The comparison calibration on the rows ``keep`` selects, as :func:`forensics.validation.fit_levels`."""
    train = labelled[keep & ~validation.never_fitted(labelled)]
    sets = [(g[column].to_numpy(), g["hp"].to_numpy()) for _, g in train.groupby("set", sort=True)]
    return Calibration.fit(train[column].to_numpy(), train["hp"].to_numpy(), bound_sets=sets)


def named_family(fams: pd.DataFrame, compare: Callable[[str, str], float], band: tuple[float, float]) -> str | None:
    """The family level of :func:`forensics.weighing.decide`, with ``compare`` taking family names: the
    leading family when it supports Hp and the comparison favours it over every other beyond the band."""
    ranked = fams[np.isfinite(fams["score"])].sort_values("score", ascending=False, kind="stable")
    if ranked.empty or ranked["supports"].iloc[0] != "Hp":
        return None
    top = ranked["family"].iloc[0]
    rivals = [compare(top, other) for other in ranked["family"].iloc[1:]]
    return top if all(v > float(band[1]) for v in rivals) else None


def decisions(tested_families: pd.DataFrame, rows: pd.DataFrame, column: str, scheme: str,
              band: tuple[float, float]) -> pd.DataFrame:
    """Each tested case's attributed family under the variant (the validation's folds and decision rule)."""
    labelled = calibrated_pairs(rows)
    sources = validation.prompt_sources(list(rows["set"].unique()))
    tested = tested_families[~tested_families["set"].map(validation.is_subpanel)]
    out = []
    for (prompt_set, lineage), group in tested.groupby(["set", "lineage"], sort=True):
        keep = labelled["lineage"] != lineage
        if scheme == "cross_source":
            keep &= labelled["set"].isin(sources) & (labelled["set"] != prompt_set)
        cal = fitted(labelled, column, keep)
        for suspect, fams in group.groupby("suspect", sort=True):
            stat = rows[(rows["set"] == prompt_set) & (rows["suspect"] == suspect)].set_index(["a", "b"])[column]
            attributed = named_family(fams, lambda a, b, stat=stat, cal=cal: cal.log10_lr(stat[(a, b)]), band)
            documented = set(fams.loc[fams["hp"] == 1, "family"])
            out.append({"set": prompt_set, "suspect": suspect, "role": fams["role"].iloc[0],
                        "attributed_family": attributed, "right": attributed in documented})
    return pd.DataFrame(out)


def counts(decided: pd.DataFrame) -> str:
    """Per prompt-set group: students named to a documented family / a wrong one; controls attributed."""
    parts = []
    decided = decided.assign(group=decided["set"].map(validation.size_group))
    for group, rows in decided.groupby("group", sort=True):
        students, controls = rows[rows["role"] == "student"], rows[rows["role"] == "control"]
        named = students["attributed_family"].notna()
        parts.append(f"{group} {int((named & students['right']).sum())}/{len(students)} "
                     f"wrong {int((named & ~students['right']).sum())} "
                     f"controls {int(controls['attributed_family'].notna().sum())}")
    total = decided[decided["role"] == "student"]
    named = total["attributed_family"].notna()
    return (f"all sets: {int((named & total['right']).sum())} right, {int((named & ~total['right']).sum())} wrong "
            f"of {len(total)} student cases; " + "; ".join(parts))


def main() -> None:
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    args = parser.parse_args()
    params = Parameters()
    bench = validation.load_benchmark(args.labels, params.max_response_chars)
    validation.embed_benchmark(bench, None, params.opening_words)
    pairs, preferences = validation.benchmark_tables(bench, params, every_line=False)
    families = validation.family_table(pairs)
    tables = validation.LevelTables(pairs, families, validation.comparison_table(families, preferences), preferences)
    band = params.inconclusive_band
    rows = comparison_rows(families, preference_z(bench, params))
    vendor = bench.labels.dropna(subset=["family"]).groupby("family")["vendor"].first().to_dict()
    labelled = calibrated_pairs(rows)
    same_vendor = labelled[[vendor.get(a) == vendor.get(b) for a, b in zip(labelled["a"], labelled["b"], strict=True)]]
    lines = [f"candidate-vs-candidate comparison variants on {args.labels.name} ({len(bench.prompt_keys)} prompts, "
             f"{len(labelled)} labelled family comparison pairs over the all-prompts set, each source and the samples, "
             f"{len(same_vendor)} between families of one vendor)"]
    held = {scheme: validation.held_out(tables, scheme, band) for scheme in validation.SCHEMES}
    for scheme, (_, cases) in held.items():
        shipped = cases.rename(columns={"correct_family": "right"}).assign(
            attributed_family=lambda f: f["attributed_family"].replace("none", None))
        lines.append(f"  {scheme}: validation/cases.csv as forensics calibrate decides them: "
                     f"{counts(shipped[~shipped['set'].map(validation.is_subpanel)])}")
    for variant in VARIANTS:
        lines.append(f"  {variant}: AUC {roc_auc_score(labelled['hp'], labelled[variant]):.4f}, between families "
                     f"of one vendor {roc_auc_score(same_vendor['hp'], same_vendor[variant]):.4f}")
        for scheme, (done, _) in held.items():
            lines.append(f"    {scheme}: {counts(decisions(done.family, rows, variant, scheme, band))}")
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(text + "\n\n")


if __name__ == "__main__":
    main()
