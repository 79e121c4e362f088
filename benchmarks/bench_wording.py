"""Whether the shared-wording line (forensics.wording) adds evidence to the fused score, and how its choices matter.

Why: on the development benchmark the family-level discrimination of the v6 fused score (semantic and
formatting lines) was the gap to the targets of issue #11, not its calibration. A distilled student opens
its answers with its teacher's words; the sentence embedding of the semantic line maps different wordings of
one idea to nearby points and so cannot see that. This measures, on ``LABELS.csv`` (every prompt set but the
random samples, full panels), the line alone and as a third fused line, with the statistic as shipped
(tokens and adjacent token pairs of the answer openings, Ochiai overlap, each prompt's panel consensus
removed) and a few a-priori alternatives: tokens only, token pairs only, openings of half and twice the
semantic line's length.

At the family level (a family's score is its best member's): pair AUC, leave-one-lineage-out Cllr /
Cllr_min of a logistic calibration refitted without each lineage (unbounded; ``forensics calibrate`` also
bounds by ELUB, validates across prompt sources and decides every case), and how many human-data control
pairs reach LR > 2 (and the largest control log10 LR). Appended to ``benchmarks/results/wording.txt``.

    python benchmarks/bench_wording.py [--labels ../shared/data/alpaca_eval/LABELS.csv]
"""

from __future__ import annotations

from collections.abc import Callable

import labelled_benchmark
import numpy as np
import pandas as pd
from bench_semantic_variants import header, metrics_line, scored_full_panel_cases

from forensics import validation, weighing
from forensics.case import Parameters
from forensics.embeddings import opening
from forensics.stylometry import tokenize
from forensics.wording import opening_terms, overlap_matrices, per_prompt_overlap


def _terms(orders: tuple[int, ...], words: int) -> Callable[[str], frozenset[str]]:
    def terms(text: str) -> frozenset[str]:
        tokens = tokenize(opening(text, words), punctuation=True)
        return frozenset(" ".join(tokens[i:i + k]) for k in orders for i in range(len(tokens) - k + 1))
    return terms


def variants(opening_words: int) -> dict[str, Callable[[str], frozenset[str]]]:
    """Name -> the term set of an answer; the first is the shipped statistic."""
    return {"shipped (tokens and pairs)": lambda text: opening_terms(text, opening_words),
            "tokens only": _terms((1,), opening_words),
            "token pairs only": _terms((2,), opening_words),
            f"openings of {opening_words // 2} words": _terms((1, 2), opening_words // 2),
            f"openings of {opening_words * 2} words": _terms((1, 2), opening_words * 2)}


def pair_rows(bench: validation.Benchmark, params: Parameters) -> pd.DataFrame:
    """One row per (prompt set, suspect, teacher): the v6 fused lines' z and each variant's wording z."""
    names = sorted(bench.responses)
    overlaps = {name: validation.BenchmarkOverlap(names, per_prompt_overlap(
        [[terms(text) for text in bench.responses[n]] for n in names]))
        for name, terms in variants(params.opening_words).items()}
    shipped = next(iter(overlaps))
    rows = []
    for idx, corpus, _, scored, row in scored_full_panel_cases(bench, params, overlaps[shipped]):
        none = np.empty((0, len(idx)), dtype=int)
        wording = {}
        for name, overlap in overlaps.items():
            matrices = overlap_matrices(corpus, overlap.for_case(corpus, idx), none, params.opening_words)
            wording[name] = weighing.wording_lines(matrices, corpus.suspect, corpus.teachers, corpus.references)
        rows += [{**row(t), "semantic": scored.line_z["embedding"][t], "formatting": scored.line_z["stylometry"][t],
                  "fused (shipped)": scored.fused[t], **{n: wording[n][t]["z"] for n in overlaps}}
                 for t in corpus.teachers]
    return pd.DataFrame(rows)


def main() -> None:
    labels = labelled_benchmark.labels_argument(__doc__.splitlines()[0])
    params = Parameters()
    bench = labelled_benchmark.embedded_benchmark(labels, params)
    pairs = pair_rows(bench, params)
    names = list(variants(params.opening_words))
    pairs["semantic and formatting (v6)"] = (pairs["semantic"] + pairs["formatting"]) / 2
    columns = ["semantic and formatting (v6)", "fused (shipped)"]
    for name in names:
        pairs[f"{name}, fused as a third line"] = (pairs["semantic"] + pairs["formatting"] + pairs[name]) / 3
        columns += [name, f"{name}, fused as a third line"]
    lines = [header("shared-wording line", labels, bench)] + [metrics_line(c, pairs, c, 52) for c in columns]
    labelled_benchmark.append_result("wording.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
