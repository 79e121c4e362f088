"""The shared-wording line: the words two models open their answers to the same prompt with, beyond the panel.

A student trained on a teacher's answers learns to *say* things the teacher's way: it opens an answer to a
given request with the same words and word pairs ("Certainly! Here are", "As an AI language model", "The
main difference between"), not only with the same meaning. The semantic line (:mod:`forensics.semantic`)
sees meaning through a sentence embedding, which maps different wordings of one idea to nearby points;
this line sees the wording itself.

**Statistic.** For every prompt and two sources, the openings of their answers (the first
``opening_words`` words, as the semantic line cuts them) become sets of lowercase tokens and token pairs
(:func:`forensics.stylometry.tokenize`, punctuation kept as tokens: "Sure!" and "Sure," open differently),
and their similarity is the share of that set they have in common, ``|A & B| / sqrt(|A| |B|)`` (the
Ochiai coefficient: the cosine of the sets' indicator vectors). Each answer's set depends on that answer
alone, so a case's measurement does not depend on which other models are in it (no vocabulary or
document frequencies fitted to the case) and any number of prompts is read a slice at a time.

**Relative to the panel, prompt by prompt**, as the semantic line: every prompt's panel consensus is
removed before the mean over prompts (:func:`forensics.semantic.consensus_removed`), so the words any
model would use for that prompt (its topic's words, the phrases the request itself suggests) do not count;
the mean over prompts goes to the panel-relative scorer like every line, with the same prompt resamples.

Measured on the development benchmark before it entered the fused score (``benchmarks/bench_wording.py``:
family level, leave-one-lineage-out logistic calibration, unbounded; the whole set and every prompt source,
full panels): the mean of the semantic and formatting lines (v6) had pair AUC 0.954, Cllr 0.400 (Cllr_min
0.353), one human-data control pair above LR 2 (largest log10 LR +0.49); with this line as a third, 0.964,
0.356 (0.308), no control pair above LR 2 (largest +0.18). The line alone is about as discriminating as the
semantic line (AUC 0.954) but not the same evidence: the two disagree where one wording carries a meaning
another model phrases differently. The a-priori alternatives measured beside it (tokens only, token pairs
only, openings of 20 or 80 words; in exploration also TF-IDF weights fitted per case) gave fused AUC
0.960-0.967 and Cllr 0.346-0.374: the gain is the line's, not a tuned choice. The opening length is the
semantic line's parameter, not chosen for this line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forensics.errors import InputError
from forensics.semantic import PROMPT_SLICE, consensus_removed, matrix_frame, matrix_stack, similarity_matrices

if TYPE_CHECKING:
    from forensics.custody import RunFolder
    from forensics.exchanges import AlignedCorpus

ARTIFACT = "artifacts/wording.json"
MATRICES_ARTIFACT = "artifacts/wording_matrices.parquet"
STATISTIC = ("share of words and word pairs two answer openings (first {n} words, same prompt) have in "
             "common, each prompt's panel consensus removed, as the suspect's lean towards the teacher "
             "beyond the panel's (affinity), z-scored against the panel")


def opening_terms(text: str, opening_words: int | None) -> frozenset[str]:
    """The tokens and adjacent token pairs of an answer's opening (the set the line compares)."""
    from forensics.embeddings import opening
    from forensics.stylometry.tokens import tokenize

    tokens = tokenize(opening(text, opening_words) if opening_words else text, punctuation=True)
    return frozenset(tokens) | frozenset(f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False))


def ochiai(a: frozenset[str], b: frozenset[str]) -> float:
    """``|a & b| / sqrt(|a| |b|)``; 0 when either set is empty (an empty opening resembles nothing)."""
    if not a or not b:
        return 0.0
    return len(a & b) / float(np.sqrt(len(a) * len(b)))


def per_prompt_overlap(terms: Sequence[Sequence[frozenset[str]]]) -> np.ndarray:
    """(S, S, n) similarity of every two sources' openings per prompt (``terms[s][i]``: source s, prompt i).

    The diagonal is 1 (0 for an empty opening): the Gram matrix of the sets' unit indicator vectors, which is
    what the consensus removal computes from.
    """
    n_sources = len(terms)
    n = len(terms[0]) if n_sources else 0
    out = np.empty((n_sources, n_sources, n), dtype=np.float64)
    for a in range(n_sources):
        out[a, a] = [1.0 if t else 0.0 for t in terms[a]]
        for b in range(a + 1, n_sources):
            out[a, b] = out[b, a] = [ochiai(x, y) for x, y in zip(terms[a], terms[b], strict=True)]
    return out


def case_overlap(corpus: AlignedCorpus, opening_words: int | None) -> np.ndarray:
    """(S, S, n) raw overlaps of a case's openings (case order), a slice of prompts at a time: the term sets
    of a million answers are never held together (only the (S, S, n) result is), and each prompt's value
    depends on its own answers alone, so slicing changes no bit."""
    n = len(corpus.prompt_keys)
    out = np.empty((len(corpus.sources), len(corpus.sources), n), dtype=np.float64)
    for start in range(0, n, PROMPT_SLICE):
        part = slice(start, min(start + PROMPT_SLICE, n))
        out[:, :, part] = per_prompt_overlap([[opening_terms(text, opening_words) for text in corpus.responses[s][part]]
                                              for s in corpus.sources])
    return out


def paired_overlap(corpus: AlignedCorpus, opening_words: int | None) -> np.ndarray:
    """The line's per-prompt statistic: paired overlaps with each prompt's panel consensus removed."""
    return consensus_removed(case_overlap(corpus, opening_words), corpus.sources, corpus.references)


@dataclass(frozen=True)
class WordingMatrices:
    """The line's raw values: the (S, S) mean over prompts and (B, S, S) on each prompt resample; step 06
    scores them (:func:`forensics.weighing.matrix_line`). Stored at full precision, as the semantic line's."""

    sources: tuple[str, ...]
    similarity: np.ndarray
    boot: np.ndarray
    opening_words: int | None = None

    def statistic(self) -> str:
        return STATISTIC.format(n=self.opening_words if self.opening_words else "all")

    def to_frame(self) -> pd.DataFrame:
        """Long table (replicate, source, other, similarity); replicate 0 is every prompt."""
        return matrix_frame(np.concatenate([self.similarity[None], self.boot]), self.sources, "wording")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, meta: dict[str, Any]) -> WordingMatrices:
        """Back from :meth:`to_frame` and the record in ``artifacts/wording.json``."""
        fix = "re-run the case from step 03 (forensics run)"
        if "sources" not in meta:
            raise InputError("the wording line's record lacks its sources", path=ARTIFACT, fix=fix)
        sources = tuple(meta["sources"])
        if not (set(frame["source"]) | set(frame["other"])) <= set(sources) or frame.empty:
            raise InputError("the wording matrices do not match the sources their record names",
                             path=MATRICES_ARTIFACT, fix=fix)
        out = matrix_stack(frame, sources)
        if np.isnan(out).any():
            raise InputError("the wording matrices are incomplete (a source pair or a replicate is missing)",
                             path=MATRICES_ARTIFACT, fix=fix)
        return cls(sources=sources, similarity=out[0], boot=out[1:], opening_words=meta.get("opening_words"))

    def meta(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "opening_words": self.opening_words,
                "statistic": self.statistic(), "n_bootstrap": int(len(self.boot))}


def wording_matrices(corpus: AlignedCorpus, per_prompt: np.ndarray, boot_idx: np.ndarray,
                     opening_words: int | None) -> WordingMatrices:
    """The line's matrices from its per-prompt statistic (:func:`paired_overlap`)."""
    full, boot = similarity_matrices(per_prompt, boot_idx)
    return WordingMatrices(sources=tuple(corpus.sources), similarity=full, boot=boot, opening_words=opening_words)


def overlap_matrices(corpus: AlignedCorpus, overlap: np.ndarray, boot_idx: np.ndarray,
                     opening_words: int | None) -> WordingMatrices:
    """The line's matrices from a case's raw per-prompt overlaps (:func:`case_overlap`, or the validation's
    slice of the benchmark's): each prompt's panel consensus removed, as :func:`paired_overlap` does."""
    return wording_matrices(corpus, consensus_removed(overlap, corpus.sources, corpus.references), boot_idx,
                            opening_words)


def measure(corpus: AlignedCorpus, boot_idx: np.ndarray, opening_words: int | None) -> WordingMatrices:
    """The line measured on a case's corpus (texts loaded), with the case's prompt resamples."""
    return wording_matrices(corpus, paired_overlap(corpus, opening_words), boot_idx, opening_words)


def write_matrices(run: RunFolder, matrices: WordingMatrices, step: str) -> None:
    run.write_parquet(MATRICES_ARTIFACT, matrices.to_frame(), step=step)
    run.write_json(ARTIFACT, matrices.meta(), step=step)


def read_matrices(run: RunFolder) -> WordingMatrices:
    """The matrices step 03 wrote (both files verified against the manifest on read)."""
    return WordingMatrices.from_frame(run.read_parquet(MATRICES_ARTIFACT), run.read_json(ARTIFACT))
