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

**Each prompt's panel consensus removed.** Two answers to one prompt share its topic, and most of what
independent models say first to it is that shared part: the raw cosine of two openings is dominated by
what any model would say. Before the cosine, every answer to a prompt has the panel's consensus answer
subtracted (the mean of the reference openings to that prompt, the probe's own left out), so the
similarity measures where two answers *depart from the panel in the same direction*: the resemblance
beyond the panel's that the case is about, per prompt rather than only on average. It is computed
exactly from the paired cosines (:func:`consensus_removed`), without touching the vectors again. On the
development benchmark, this line alone at the family level: AUC 0.930 -> 0.951, leave-one-lineage-out
Cllr 0.487 -> 0.414, human-data control pairs above LR 2 on it 9 -> 2 (the largest log10 LR +1.00 -> +0.39;
``benchmarks/bench_semantic_variants.py``): what every model would say first no longer reads as lineage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forensics.errors import InputError
from forensics.roles import roles_of
from forensics.scoring import case_bootstrap, percentile_interval, rounded

if TYPE_CHECKING:
    from forensics.case import Case
    from forensics.custody import RunFolder
    from forensics.exchanges import AlignedCorpus

STEP = "02_semantic"
ARTIFACT = "artifacts/semantic.json"
PROMPTS_ARTIFACT = "artifacts/semantic_prompts.parquet"
MATRICES_ARTIFACT = "artifacts/semantic_matrices.parquet"
STATISTIC = ("mean cosine similarity of paired answer openings (first {n} words, same prompt), each prompt's "
             "panel consensus removed, as the suspect's lean towards the teacher beyond the panel's "
             "(affinity), z-scored against the panel")
FULL_STATISTIC = "the same statistic on whole answers (not fused: answer length confounds it)"


#: Prompts whose vectors are widened to float64 at once: bounds the step's memory on a large case.
PROMPT_SLICE = 4096


def per_prompt_similarity(vectors: Mapping[str, np.ndarray], sources: Sequence[str]) -> np.ndarray:
    """(S, S, n) cosine similarity of the two sources' answers to each prompt (rows are unit vectors).

    Computed a slice of prompts at a time, so only :data:`PROMPT_SLICE` prompts' vectors are held in
    float64 beside the float32 ones (a whole case widened at once is twice the vectors' size again); the
    slices go to the Dask cluster of ``forensics run --cluster/--workers`` when there is one
    (:func:`forensics.cluster.on_slices`). ``np.einsum`` without path optimisation sums each element over
    the vector's dimensions in the same order whatever the slice, so the result is the same bits as one
    call on every prompt.
    """
    from forensics.cluster import on_slices

    n = len(vectors[sources[0]]) if sources else 0
    out = np.empty((len(sources), len(sources), n), dtype=np.float64)
    parts = on_slices(slice_similarity, n, PROMPT_SLICE, lambda part: ([vectors[s][part] for s in sources],))
    for start, part in zip(range(0, n, PROMPT_SLICE), parts, strict=True):
        out[:, :, start:start + part.shape[-1]] = part
    return out


def slice_similarity(rows: Sequence[np.ndarray]) -> np.ndarray:
    """(S, S, k) paired cosine similarity of one slice of prompts (one (k, dim) array per source)."""
    part = np.stack([np.asarray(r, dtype=np.float64) for r in rows])
    return np.einsum("ind,jnd->ijn", part, part)


#: A centred answer this close to zero length coincides with the consensus it was centred on (with a panel
#: of two, a reference seen from the other): it has no direction, and its similarity to anything is 0.
DEGENERATE_NORM2 = 1e-12


def consensus_removed(per_prompt: np.ndarray, sources: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """(S, S, n) cosine similarity of answers after each prompt's panel consensus is removed (module docstring).

    Every source is seen as a reference is. A reference X's row holds ``cos(u_X - c, u_Y - c)`` for every
    source Y, ``c`` the mean of the *other* references' answers to the prompt (a consensus that does not
    contain X). A source outside the panel (the suspect, a teacher) is seen under each of those consensuses
    in turn, as if it stood in for each reference, and its row is their average, a reference Y's entry
    over the consensuses that contain Y. So the suspect's consensus is built from as many models as a
    reference's (a consensus of all R references would sit closer to every answer than one of R - 1 and
    bias the suspect's similarities against it), and the scorer's affinity (:func:`forensics.scoring.
    affinities`: similarity to T minus mean similarity to the other references) is for the suspect the
    mean of the affinities it would have in each reference's place.

    Only the paired cosines ``G`` are needed: ``(u_X - c).(u_Y - c) = G[X, Y] - u_X.c - u_Y.c + c.c``, with
    ``u.c`` and ``c.c`` means of ``G`` over the consensus's members. The matrix is not symmetric; the
    scorer reads the rows of the suspect and the references. With fewer than two references no consensus
    can leave a reference out: the plain cosines are returned (the scorer refuses such a panel anyway,
    :data:`forensics.scoring.MIN_PANEL`).
    """
    index = {s: i for i, s in enumerate(sources)}
    refs = [index[r] for r in references]
    if len(refs) < 2:
        return np.asarray(per_prompt, dtype=np.float64)
    outside = [i for i in range(len(sources)) if i not in refs]
    gram = np.asarray(per_prompt, dtype=np.float64)
    self_dot = np.diagonal(gram, axis1=0, axis2=1).T                 # (S, n): u . u
    out = np.empty_like(gram)
    total = np.zeros((len(outside), *gram.shape[1:]))                 # outside rows, summed over consensuses
    own = np.empty((len(outside), len(refs), gram.shape[-1]))        # ... and under the one that leaves k out
    for j, k in enumerate(refs):
        rows = _centred_rows(gram, self_dot, [r for r in refs if r != k], [k, *outside])
        out[k] = rows[0]
        total += rows[1:]
        own[:, j] = rows[1:, k]
    for i, x in enumerate(outside):
        out[x] = total[i] / len(refs)
        out[x, refs] = (total[i, refs] - own[i]) / (len(refs) - 1)
    return out


def _centred_rows(gram: np.ndarray, self_dot: np.ndarray, pool: Sequence[int], probes: Sequence[int]
                  ) -> np.ndarray:
    """(P, S, n): ``cos(u_X - c, u_Y - c)`` for each probe X and every Y, ``c`` the mean answer of ``pool``."""
    to_pool = gram[:, pool, :].mean(axis=1)                          # (S, n): u_Y . c
    c_norm2 = gram[np.ix_(pool, pool)].mean(axis=(0, 1))          # (n,): c . c
    norm2 = self_dot - 2 * to_pool + c_norm2                        # (S, n): |u - c|^2
    probes = list(probes)
    dots = gram[probes] - to_pool[probes][:, None, :] - to_pool[None, :, :] + c_norm2
    degenerate = (norm2[probes] <= DEGENERATE_NORM2)[:, None, :] | (norm2 <= DEGENERATE_NORM2)[None, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(degenerate, 0.0, dots / np.sqrt(np.abs(norm2[probes][:, None, :] * norm2[None, :, :])))


def paired_similarity(vectors: Mapping[str, np.ndarray], corpus: AlignedCorpus) -> np.ndarray:
    """The line's per-prompt statistic: paired cosines with each prompt's panel consensus removed."""
    return consensus_removed(per_prompt_similarity(vectors, corpus.sources), corpus.sources, corpus.references)


def similarity_matrices(per_prompt: np.ndarray, boot_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over prompts: the full (S, S) matrix and (B, S, S) for the bootstrap resamples."""
    full = per_prompt.mean(axis=-1)
    boot = np.stack([per_prompt[:, :, idx].mean(axis=-1) for idx in boot_idx]) if len(boot_idx) else \
        np.empty((0, *full.shape))
    return full, boot


@dataclass(frozen=True)
class SemanticMatrices:
    """The semantic line's raw per-source values: what step 02 measures and step 06 scores.

    ``openings`` is the (S, S) mean similarity of paired answer openings over every prompt, ``openings_boot``
    the same on each prompt resample (B, S, S), ``full_answers`` the whole-answer matrix (reported, not fused).
    Step 06 hands them to the panel-relative scorer (:func:`forensics.weighing.embedding_lines`) like every
    other line's raw values, so z, intervals and replicates mean the same thing on every line. Stored at
    full precision (``artifacts/semantic_matrices.parquet``): the scores are computed from the same bits
    the step measured, as the validation computes them in memory. (The stylometric matrices and marker
    rates reach step 06 through JSON, rounded to 6 decimals; the validation scores them unrounded, a
    difference of the order of 1e-6 / the panel's spread in z.)
    """

    sources: tuple[str, ...]
    suspect: str
    teachers: tuple[str, ...]
    references: tuple[str, ...]
    openings: np.ndarray
    openings_boot: np.ndarray
    full_answers: np.ndarray | None = None
    opening_words: int | None = None

    def statistic(self) -> str:
        return STATISTIC.format(n=self.opening_words if self.opening_words else "all")

    def to_frame(self) -> pd.DataFrame:
        """Long table (measure, replicate, source, other, similarity); replicate 0 is every prompt."""
        parts = [("openings", np.concatenate([self.openings[None], self.openings_boot]))]
        if self.full_answers is not None:
            parts.append(("full_answers", self.full_answers[None]))
        frames = [matrix_frame(stack, self.sources, "semantic") for _, stack in parts]
        for (measure, _), frame in zip(parts, frames, strict=True):
            frame.insert(0, "measure", measure)
        return pd.concat(frames, ignore_index=True)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, meta: Mapping[str, Any]) -> SemanticMatrices:
        """Back from :meth:`to_frame` and the roles recorded in ``artifacts/semantic.json``."""
        missing = [k for k in ("sources", "suspect", "teachers", "references") if k not in meta]
        if missing:
            raise InputError(f"the semantic line's record lacks {', '.join(missing)}", path=ARTIFACT,
                             fix="re-run the case from step 02 (forensics run)")
        sources = tuple(meta["sources"])
        strangers = sorted((set(frame["source"]) | set(frame["other"])) - set(sources))
        if strangers:
            raise InputError(f"the semantic matrices name sources the record does not: {strangers[:3]}",
                             path=MATRICES_ARTIFACT, fix="re-run the case from step 02 (forensics run)")

        def stack(measure: str) -> np.ndarray | None:
            rows = frame[frame["measure"] == measure]
            return None if rows.empty else matrix_stack(rows, sources)

        openings, full_answers = stack("openings"), stack("full_answers")
        if openings is None or np.isnan(openings).any() or (full_answers is not None and np.isnan(full_answers).any()):
            raise InputError("the semantic matrices are incomplete (a source pair or a replicate is missing)",
                             path=MATRICES_ARTIFACT, fix="re-run the case from step 02 (forensics run)")
        return cls(sources=sources, suspect=meta["suspect"], teachers=tuple(meta["teachers"]),
                   references=tuple(meta["references"]), openings=openings[0], openings_boot=openings[1:],
                   full_answers=None if full_answers is None else full_answers[0],
                   opening_words=meta.get("opening_words"))

    def meta(self) -> dict[str, Any]:
        """What ``artifacts/semantic.json`` records beside the matrices: the roles and how they were measured."""
        return {"sources": list(self.sources), "suspect": self.suspect, "teachers": list(self.teachers),
                "references": list(self.references), "opening_words": self.opening_words,
                "statistic": self.statistic(), "n_bootstrap": int(len(self.openings_boot))}


def matrix_frame(stack: np.ndarray, sources: Sequence[str], line: str) -> pd.DataFrame:
    """Long table (replicate, source, other, similarity) of a (R, S, S) stack of similarity matrices, how the
    matrix lines store them at full precision (replicate 0 is every prompt)."""
    n = len(sources)
    if stack.shape[1:] != (n, n):
        raise ValueError(f"the {line} matrices must be {n} x {n} (one row and column per source)")
    rep, a, b = np.indices(stack.shape).reshape(3, -1)
    names = np.asarray(sources, dtype=object)
    return pd.DataFrame({"replicate": rep.astype(np.int64), "source": names[a], "other": names[b],
                         "similarity": stack.reshape(-1).astype(np.float64)})


def matrix_stack(rows: pd.DataFrame, sources: Sequence[str]) -> np.ndarray:
    """Back from :func:`matrix_frame`: the (R, S, S) stack, NaN where a pair or a replicate is missing (the
    caller refuses an incomplete one, naming its artifact)."""
    index = {s: i for i, s in enumerate(sources)}
    out = np.full((int(rows["replicate"].max()) + 1, len(sources), len(sources)), np.nan)
    out[rows["replicate"].to_numpy(), rows["source"].map(index).to_numpy(),
        rows["other"].map(index).to_numpy()] = rows["similarity"].to_numpy(dtype=np.float64)
    return out


def semantic_matrices(corpus: AlignedCorpus, per_prompt: np.ndarray, boot_idx: np.ndarray,
                      per_prompt_full_answers: np.ndarray | None = None,
                      opening_words: int | None = None) -> SemanticMatrices:
    """The line's matrices from the per-prompt similarities of openings (and whole answers, when given)."""
    full, boot = similarity_matrices(per_prompt, boot_idx)
    full_answers = per_prompt_full_answers.mean(axis=-1) if per_prompt_full_answers is not None else None
    return SemanticMatrices(sources=tuple(corpus.sources), suspect=corpus.suspect, teachers=tuple(corpus.teachers),
                            references=tuple(corpus.references), openings=full, openings_boot=boot,
                            full_answers=full_answers, opening_words=opening_words)


def read_matrices(run: RunFolder) -> SemanticMatrices:
    """The matrices step 02 wrote (both files verified against the manifest on read)."""
    return SemanticMatrices.from_frame(run.read_parquet(MATRICES_ARTIFACT), run.read_json(ARTIFACT))


def controls_table(matrices: SemanticMatrices) -> pd.DataFrame:
    """Per teacher: raw similarity, the naive z and the panel-relative (controlled) z, side by side.

    The controlled z are the scorer's (:func:`forensics.weighing.embedding_lines`), as step 06 reports them.
    """
    from forensics.weighing import embedding_lines

    lines = embedding_lines(matrices)
    rows = []
    for teacher, e in lines.items():
        whole = e.get("full_answers") or {}
        rows.append({"teacher": teacher, "suspect similarity": e["raw_similarity"][matrices.suspect],
                     "suspect affinity": rounded(e["suspect"]),
                     "naive z (similarity vs panel)": e["naive_z"],
                     "controlled z (affinity vs panel)": rounded(e["z"]),
                     "controlled z, 95% interval": percentile_interval(e["boot_z"]),
                     "whole answers: naive z": whole.get("naive_z"),
                     "whole answers: controlled z": rounded(whole["z"]) if whole else None})
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
    """Step 02: measure the semantic line (per-prompt similarities and the matrices step 06 scores)."""
    from forensics import figures
    from forensics.embeddings import OPENINGS_ARTIFACT, load_vectors
    from forensics.exchanges import load_corpus

    corpus = load_corpus(run, case, texts=False)  # step 02 reads vectors, not texts
    per_prompt = paired_similarity(load_vectors(run, corpus, OPENINGS_ARTIFACT), corpus)
    per_prompt_whole = paired_similarity(load_vectors(run, corpus), corpus)
    matrices = semantic_matrices(corpus, per_prompt, case_bootstrap(corpus, case.parameters), per_prompt_whole,
                                 opening_words=case.parameters.opening_words)
    frame = per_prompt_frame(corpus, per_prompt, per_prompt_whole)
    run.write_parquet(PROMPTS_ARTIFACT, frame, step=STEP)
    run.write_parquet(MATRICES_ARTIFACT, matrices.to_frame(), step=STEP)
    run.write_json(ARTIFACT, matrices.meta(), step=STEP)
    roles = figures.Roles.of(corpus)
    run.write_figure("figures/similarity_distributions", figures.similarity_distributions(frame, roles),
                     step=STEP)
    return {"n_prompts": len(corpus.prompt_keys), "sources": len(corpus.sources),
            "bootstrap": int(len(matrices.openings_boot))}
