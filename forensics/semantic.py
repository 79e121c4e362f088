"""Line 1, semantic: paired per-prompt embedding similarity of answer openings, relative to the panel.

For every prompt, the cosine similarity of two sources' answers to *that* prompt (pairing controls for
topic: every source answers the same question). The mean over prompts gives a source-by-source
similarity matrix; :mod:`forensics.scoring` turns it into the suspect's lean towards each teacher beyond
what the panel shows. Bootstrap replicates resample prompts.

**Openings, not whole answers.** The line compares each answer's first ``opening_words`` words (default
40): how a model starts answering (restating, hedging, listing, going straight to the point) and what it
says first. Whole-answer embeddings are a mean over everything an answer covers, so two terse models
resemble each other because they are terse, and a verbose student drifts away from a terse teacher
for its length alone: a teacher whose answers are short pulls every terse model towards it. Cutting
every answer to the same opening length removes most of that confound (a short answer is compared
whole). The whole-answer statistic is still computed and reported beside it (``full_answers``) so a
reader sees how much the control changes the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forensics.roles import roles_of
from forensics.scoring import case_bootstrap, line_entry, panel_relative, rounded

if TYPE_CHECKING:
    from forensics.case import Case
    from forensics.custody import RunFolder
    from forensics.exchanges import AlignedCorpus

STEP = "02_semantic"
ARTIFACT = "artifacts/semantic.json"
PROMPTS_ARTIFACT = "artifacts/semantic_prompts.parquet"
STATISTIC = ("mean cosine similarity of paired answer openings (first {n} words, same prompt), as the "
             "suspect's lean towards the teacher beyond the panel's (affinity), z-scored against the panel")
FULL_STATISTIC = "the same statistic on whole answers (not fused: answer length confounds it)"


def per_prompt_similarity(vectors: Mapping[str, np.ndarray], sources: Sequence[str]) -> np.ndarray:
    """(S, S, n) cosine similarity of the two sources' answers to each prompt (rows are unit vectors)."""
    stack = np.stack([np.asarray(vectors[s], dtype=np.float64) for s in sources])  # (S, n, d)
    return np.einsum("ind,jnd->ijn", stack, stack)


def similarity_matrices(per_prompt: np.ndarray, boot_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over prompts: the full (S, S) matrix and (B, S, S) for the bootstrap resamples."""
    full = per_prompt.mean(axis=-1)
    boot = np.stack([per_prompt[:, :, idx].mean(axis=-1) for idx in boot_idx]) if len(boot_idx) else \
        np.empty((0, *full.shape))
    return full, boot


def semantic_line(corpus: AlignedCorpus, vectors: Mapping[str, np.ndarray], boot_idx: np.ndarray,
                  full_vectors: Mapping[str, np.ndarray] | None = None,
                  opening_words: int | None = None) -> dict[str, Any]:
    """Everything the semantic line reports: matrix, per-teacher entries, bootstrap z per teacher.

    ``vectors`` are the answer openings (the line's statistic); ``full_vectors``, when given, the whole
    answers, reported in each entry as ``full_answers``.
    """
    sources = corpus.sources
    per_prompt = per_prompt_similarity(vectors, sources)
    full, boot = similarity_matrices(per_prompt, boot_idx)
    rel_full = panel_relative(full, sources, corpus.suspect, corpus.teachers, corpus.references)
    rel_boot = panel_relative(boot, sources, corpus.suspect, corpus.teachers, corpus.references) \
        if len(boot) else None
    statistic = STATISTIC.format(n=opening_words if opening_words else "all")
    entries = {t: line_entry(rel_full[t], rel_boot[t] if rel_boot else None, corpus.references,
                             len(corpus.prompt_keys), statistic) for t in corpus.teachers}
    for t in corpus.teachers:
        entries[t]["naive_z"] = naive_z(full, sources, corpus.suspect, t, corpus.references)
        entries[t]["raw_similarity"] = {s: rounded(full[sources.index(s), sources.index(t)])
                                        for s in [corpus.suspect, *corpus.references]}
    per_prompt_whole = None
    if full_vectors is not None:
        per_prompt_whole = per_prompt_similarity(full_vectors, sources)
        whole = per_prompt_whole.mean(axis=-1)
        rel_whole = panel_relative(whole, sources, corpus.suspect, corpus.teachers, corpus.references)
        for t in corpus.teachers:
            entries[t]["full_answers"] = {
                **line_entry(rel_whole[t], None, corpus.references, len(corpus.prompt_keys), FULL_STATISTIC),
                "naive_z": naive_z(whole, sources, corpus.suspect, t, corpus.references)}
    boot_z = {t: np.round(rel_boot[t]["z"], 6).tolist() for t in corpus.teachers} if rel_boot else {}
    return {"sources": list(sources), "matrix": np.round(full, 6).tolist(), "entries": entries,
            "boot_z": boot_z, "opening_words": opening_words, "per_prompt": per_prompt,
            "per_prompt_full_answers": per_prompt_whole}


def naive_z(sim: np.ndarray, sources: Sequence[str], suspect: str, teacher: str,
            references: Sequence[str]) -> float | None:
    """The uncontrolled statistic most tools use: sim(S, T) z-scored against sim(R, T) of the panel.

    Reported beside the controlled z so an investigator can see how much the control for each model's
    general closeness to everything (length, register) changes the result.
    """
    t = sources.index(teacher)
    panel = np.array([sim[sources.index(r), t] for r in references])
    if len(panel) < 2 or panel.std(ddof=1) == 0:
        return None
    return rounded((sim[sources.index(suspect), t] - panel.mean()) / panel.std(ddof=1))


def controls_table(line: dict[str, Any]) -> pd.DataFrame:
    """Per teacher: raw similarity, the naive z and the panel-relative (controlled) z, side by side."""
    rows = []
    for teacher, e in line["entries"].items():
        whole = e.get("full_answers", {})
        rows.append({"teacher": teacher, "suspect similarity": next(iter(e["raw_similarity"].values())),
                     "naive z (similarity vs panel)": e["naive_z"],
                     "controlled z (affinity vs panel)": e["z"],
                     "whole answers: naive z": whole.get("naive_z"),
                     "whole answers: controlled z": whole.get("z")})
    return pd.DataFrame(rows).set_index("teacher")


def per_prompt_frame(corpus: AlignedCorpus, per_prompt: np.ndarray, per_prompt_full: np.ndarray | None = None
                     ) -> pd.DataFrame:
    """Long table (teacher, source, role, prompt_key, similarity[, similarity_full_answers]) for the
    suspect and every reference; ``similarity`` is the line's statistic (openings)."""
    sources = corpus.sources
    rows = []
    roles = roles_of(corpus)
    for t in corpus.teachers:
        ti = sources.index(t)
        for s in [corpus.suspect, *corpus.references]:
            part = {"teacher": t, "source": s, "role": roles[s], "prompt_key": corpus.prompt_keys,
                    "similarity": per_prompt[sources.index(s), ti]}
            if per_prompt_full is not None:
                part["similarity_full_answers"] = per_prompt_full[sources.index(s), ti]
            rows.append(pd.DataFrame(part))
    return pd.concat(rows, ignore_index=True)


def run_step(case: Case, run: RunFolder) -> dict[str, Any]:
    """Step 02: compute the semantic line and its figures from the embeddings artifact."""
    from forensics import figures
    from forensics.embeddings import OPENINGS_ARTIFACT, load_vectors
    from forensics.exchanges import load_corpus

    corpus = load_corpus(run, case)
    openings = load_vectors(run, corpus, OPENINGS_ARTIFACT)
    vectors = load_vectors(run, corpus)
    boot_idx = case_bootstrap(corpus, case.parameters)
    line = semantic_line(corpus, openings, boot_idx, full_vectors=vectors,
                         opening_words=case.parameters.opening_words)
    frame = per_prompt_frame(corpus, line.pop("per_prompt"), line.pop("per_prompt_full_answers"))
    run.write_parquet(PROMPTS_ARTIFACT, frame, step=STEP)
    run.write_json(ARTIFACT, line, step=STEP)
    roles = figures.Roles.of(corpus)
    run.write_figure("figures/similarity_distributions", figures.similarity_distributions(frame, roles),
                     step=STEP)
    run.write_figure("figures/line_embedding",
                     figures.line_summary(line["entries"], value_label="affinity (cosine)", suspect=corpus.suspect,
                                          title="Semantic line (answer openings): lean towards each teacher"),
                     step=STEP)
    return {"n_prompts": len(corpus.prompt_keys), "z": {t: e["z"] for t, e in line["entries"].items()}}
