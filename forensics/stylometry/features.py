"""The features of a case, computed once under the prompt weights: the five families pooled, lengths counted."""


from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from forensics.exchanges import CorpusLike
from forensics.scoring import all_weights
from forensics.stylometry.formatting import FORMATTING_FEATURES, format_scale, formatting_matrix
from forensics.stylometry.ngrams import FeatureBlock, PooledBlock, char_block, pool
from forensics.stylometry.params import StyloParams, params_from
from forensics.stylometry.words import TokenSpill, word_families


@dataclass(frozen=True)
class StyloFeatures:
    """Everything computed once per case: each family pooled under every row of the prompt weights (row 0
    the full corpus, then the bootstrap resamples), identified by ``weights_sha256``."""

    sources: list[str]
    n_prompts: int
    lengths: dict[str, np.ndarray]
    mfw: PooledBlock
    char: PooledBlock
    distorted: PooledBlock
    formatting: PooledBlock
    params: StyloParams
    weights_sha256: str


def weights_fingerprint(weights: np.ndarray) -> str:
    """sha256 of a weight matrix (float64, C order): which resamples a set of features was pooled under."""
    return hashlib.sha256(np.ascontiguousarray(weights, dtype=np.float64)).hexdigest()


def stylometric_features(corpus: CorpusLike, params: Any = None, boot_idx: np.ndarray | None = None, *,
                         weights: np.ndarray | None = None) -> StyloFeatures:
    """Tokenise every response once and pool the five families (see the module docstring of
    :mod:`forensics.stylometry`) under the full corpus and each resample of ``boot_idx``
    (:func:`forensics.scoring.all_weights`); ``weights`` gives the rows instead (row 0 must be the full
    corpus: the tables read it). Tokens wait in a temporary folder (``TMPDIR``) between passes, a slice
    at a time (:mod:`forensics.stylometry.words`)."""
    p = params_from(StyloParams, params)
    sources = list(corpus.sources)
    n = len(corpus.prompt_keys)
    if n == 0:
        raise ValueError("the corpus has no prompts")
    for s in sources:
        if len(corpus.responses[s]) != n:
            raise ValueError(f"source {s!r} has {len(corpus.responses[s])} responses for {n} prompts")
    w = all_weights(boot_idx, n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must be an (m, {n}) array, got shape {w.shape}")
    with tempfile.TemporaryDirectory(prefix="forensics-tokens-") as folder:
        spill = TokenSpill(Path(folder))
        for s in sources:
            spill.add(s, corpus.responses[s])
        lengths, mfw, distorted = word_families(spill, sources, n, w, p)
    char = char_block(corpus.responses, sources, p.char_n, p.char_top, p.char_lowercase,
                      p.char_word_boundary, w)
    names = [f.name for f in FORMATTING_FEATURES]
    fmt_num, fmt_den = {}, {}
    for s in sources:
        num, den = _formatting(corpus.responses[s], corpus.prompts)
        one = pool(FeatureBlock(names=names, counts={s: sparse.csr_matrix(num)}, totals={s: den}), [s], w)
        fmt_num[s], fmt_den[s] = one.num[s], one.den[s]
    formatting = PooledBlock(names=names, num=fmt_num, den=fmt_den, rows=w.shape[0],
                             scale=format_scale(FORMATTING_FEATURES))
    return StyloFeatures(sources=sources, n_prompts=n, lengths=lengths, mfw=mfw, char=char,
                         distorted=distorted, formatting=formatting, params=p,
                         weights_sha256=weights_fingerprint(w))


#: Answers whose formatting features are computed at a time (a task each on a Dask cluster).
FORMAT_SLICE = 2048


def _formatting(responses: Sequence[str], prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`formatting_matrix` by slices of answers, on the run's Dask cluster when there is one
    (:func:`forensics.cluster.on_slices`); each answer's row depends on that answer alone: the same values."""
    from forensics.cluster import on_slices

    parts = on_slices(formatting_matrix, len(responses), FORMAT_SLICE,
                      lambda part: (list(responses[part]), list(prompts[part])))
    if not parts:
        return formatting_matrix([], [])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
