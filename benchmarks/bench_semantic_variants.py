"""Which per-prompt statistic the semantic line should use: plain paired cosines or consensus removed.

Why: the semantic line is half of the fused score, and on unseen cases it was the line that a terse
human-data control fooled. This measures, on the development benchmark (``LABELS.csv``, every prompt set
but the random samples, full panels), each variant of the line alone and fused with the formatting line
both ways, their minimum (the fusion before v5) and their mean (since v5):

* ``plain`` - mean paired cosine of the answer openings (the line before panel-relative-fused-v5);
* ``consensus removed`` - the same after each prompt's panel consensus is subtracted
  (:func:`forensics.semantic.consensus_removed`, the line since v5).

At the family level (a family's score is its best member's): pair AUC, leave-one-lineage-out Cllr /
Cllr_min of a logistic calibration refitted without each lineage (``Calibration.fit``, unbounded; the
shipped figures come from ``forensics calibrate``, which also bounds by ELUB, validates across prompt
sources and decides every case), and how many control pairs reach LR > 2. Appended to
``benchmarks/results/semantic_variants.txt``.

    python benchmarks/bench_semantic_variants.py [--labels ../shared/data/alpaca_eval/LABELS.csv]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import labelled_benchmark
import numpy as np
import pandas as pd

from forensics import validation, weighing
from forensics.calibration import Calibration, cllr
from forensics.case import Parameters
from forensics.exchanges import AlignedCorpus
from forensics.results import LineScores
from forensics.semantic import consensus_removed, per_prompt_similarity, semantic_matrices

VARIANTS = ("plain", "consensus removed")
FUSIONS = ("minimum", "mean")
LR2 = float(np.log10(2.0))


def embedding_z(corpus: validation.AlignedCorpus, openings: dict[str, np.ndarray], variant: str,
                params: Parameters) -> dict[str, float]:
    """The semantic line's panel-relative z per teacher under one per-prompt statistic."""
    per_prompt = per_prompt_similarity(openings, corpus.sources)
    if variant == "consensus removed":
        per_prompt = consensus_removed(per_prompt, corpus.sources, corpus.references)
    none = np.empty((0, len(corpus.prompt_keys)), dtype=int)
    matrices = semantic_matrices(corpus, per_prompt, none, opening_words=params.opening_words)
    return {t: v["z"] for t, v in weighing.embedding_lines(matrices).items()}


#: What :func:`scored_full_panel_cases` yields per case.
ScoredCase = tuple[np.ndarray, AlignedCorpus, dict[str, np.ndarray], LineScores, Callable[[str], dict[str, Any]]]


def scored_full_panel_cases(bench: validation.Benchmark, params: Parameters,
                            overlap: validation.BenchmarkOverlap) -> Iterator[ScoredCase]:
    """Every full-panel case of every prompt set but the random samples and the unions of all prompt sources
    but one (both re-use the answers of the others): (its prompt indices, the case, its
    openings' vectors, its fused lines as the pipeline scores them, ``row(t)``: the labelled pair's columns
    for teacher t), what the line benchmarks tabulate."""
    labels = bench.labels.set_index("name")
    family = validation.family_of_teachers(bench.labels)
    formatting = validation.formatting_matrices(bench)
    for prompt_set, idx in bench.prompt_sets().items():
        if validation.is_sample(prompt_set) or validation.is_all_but(prompt_set):
            continue
        for corpus in validation.benchmark_cases(bench, idx):
            openings = {s: bench.openings[s][idx] for s in corpus.sources}
            fmt = {s: (formatting[s][0][idx], formatting[s][1][idx]) for s in corpus.sources}
            scored = validation.score_fused_lines(corpus, openings, fmt, overlap.for_case(corpus, idx), params)
            suspect = labels.loc[corpus.suspect]

            def row(t: str, prompt_set: str = prompt_set, suspect: pd.Series = suspect,
                    name: str = corpus.suspect) -> dict[str, Any]:
                return {"set": prompt_set, "suspect": name, "teacher": t, "family": family[t],
                        "role": suspect["role"], "lineage": suspect["lineage"],
                        "hp": int(suspect["role"] == "student" and validation.teacher_matches(
                            suspect["trained_on_outputs_of"], labels.loc[t, "teacher_name"]))}

            yield idx, corpus, openings, scored, row


def pair_rows(bench: validation.Benchmark, params: Parameters) -> pd.DataFrame:
    """One row per (prompt set, suspect, teacher): each variant's z and the formatting line's z."""
    rows = []
    overlap = validation.wording_overlap(bench, params.opening_words)
    for _, corpus, openings, scored, row in scored_full_panel_cases(bench, params, overlap):
        z = {v: embedding_z(corpus, openings, v, params) for v in VARIANTS}
        rows += [{**row(t), "formatting": scored.line_z["stylometry"][t], **{v: z[v][t] for v in VARIANTS}}
                 for t in corpus.teachers]
    return pd.DataFrame(rows)


def family_metrics(pairs: pd.DataFrame, column: str) -> dict[str, float]:
    """Family-level AUC, leave-one-lineage-out Cllr / Cllr_min and control pairs above LR 2."""
    from sklearn.metrics import roc_auc_score

    fam = (pairs.groupby(["set", "suspect", "family"], sort=True)
           .agg(score=(column, "max"), hp=("hp", "max"), lineage=("lineage", "first"), role=("role", "first"))
           .reset_index())
    llr = pd.Series(np.nan, index=fam.index)
    for lineage in sorted(fam["lineage"].unique()):
        train, test = fam[fam["lineage"] != lineage], fam[fam["lineage"] == lineage]
        cal = Calibration.fit(train["score"].to_numpy(), train["hp"].to_numpy())
        llr[test.index] = cal.intercept + cal.slope * test["score"].to_numpy()
    controls = fam["role"] == "control"
    c, c_min = cllr(llr.to_numpy(), fam["hp"].to_numpy())
    return {"auc": float(roc_auc_score(fam["hp"], fam["score"])), "cllr": c, "cllr_min": c_min,
            "controls_above_2": int((llr[controls] > LR2).sum()), "controls_max": float(llr[controls].max()),
            "n_pairs": len(fam)}


def header(title: str, labels: Path, bench: validation.Benchmark) -> str:
    """The first line of a block of family-level line measurements (what was measured, on which sets)."""
    return (f"{title} on {labels.name} ({len(bench.prompt_keys)} prompts, prompt sets: "
            f"{', '.join(s for s in bench.prompt_sets() if not (validation.is_sample(s) or validation.is_all_but(s)))}"
            "); family level, leave-one-lineage-out logistic calibration (unbounded)")


def metrics_line(label: str, pairs: pd.DataFrame, column: str, width: int) -> str:
    """One measured score: :func:`family_metrics` of ``column``, as a line of the results file."""
    m = family_metrics(pairs, column)
    return (f"  {label:{width}s} AUC {m['auc']:.4f}  Cllr {m['cllr']:.3f} (min {m['cllr_min']:.3f})  "
            f"control pairs with LR > 2: {m['controls_above_2']} (max log10 LR {m['controls_max']:+.2f}), "
            f"{m['n_pairs']} pairs")


def main() -> None:
    labels = labelled_benchmark.labels_argument(__doc__.splitlines()[0])
    params = Parameters()
    bench = labelled_benchmark.embedded_benchmark(labels, params)
    pairs = pair_rows(bench, params)
    lines = [header("semantic line variants", labels, bench)]
    for variant in VARIANTS:
        pairs[f"{variant}, minimum with formatting"] = np.minimum(pairs[variant], pairs["formatting"])
        pairs[f"{variant}, mean with formatting"] = (pairs[variant] + pairs["formatting"]) / 2
        for label, column in ((f"{variant}, line alone", variant),
                              *((f"{variant}, {how} with formatting",) * 2 for how in FUSIONS)):
            lines.append(metrics_line(label, pairs, column, 42))
    labelled_benchmark.append_result("semantic_variants.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
