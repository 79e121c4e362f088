"""The features of a case, computed once: tokens encoded, the four blocks built, lengths counted."""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from forensics.exchanges import CorpusLike
from forensics.stylometry.distortion import distort
from forensics.stylometry.formatting import FORMATTING_FEATURES, format_scale, formatting_matrix
from forensics.stylometry.ngrams import FeatureBlock, char_block, encode_texts, word_block
from forensics.stylometry.params import StyloParams, params_from
from forensics.stylometry.tokens import is_word, tokenize


@dataclass(frozen=True)
class StyloFeatures:
    """Everything computed once per case; the bootstrap only re-weights it."""

    sources: list[str]
    n_prompts: int
    lengths: dict[str, np.ndarray]
    mfw: FeatureBlock
    char: FeatureBlock
    distorted: FeatureBlock
    formatting: FeatureBlock
    params: StyloParams


def stylometric_features(corpus: CorpusLike, params: Any = None) -> StyloFeatures:
    """Tokenise every response once and build the four feature blocks (see the module docstring)."""
    p = params_from(StyloParams, params)
    sources = list(corpus.sources)
    n = len(corpus.prompt_keys)
    if n == 0:
        raise ValueError("the corpus has no prompts")
    for s in sources:
        if len(corpus.responses[s]) != n:
            raise ValueError(f"source {s!r} has {len(corpus.responses[s])} responses for {n} prompts")
    tok, doc, vocab = encode_texts((t for s in sources for t in corpus.responses[s]),
                                   lambda t: tokenize(t, punctuation=True))
    word_of = np.array([is_word(v) for v in vocab], dtype=bool)
    is_w = word_of[tok]
    words_tok, words_doc = tok[is_w], doc[is_w]
    counts_per_doc = np.bincount(words_doc, minlength=n * len(sources))
    lengths = {s: counts_per_doc[i * n:(i + 1) * n].astype(np.int64) for i, s in enumerate(sources)}
    mfw = word_block(words_tok, words_doc, vocab, sources, n, (1,), p.mfw)
    keep_list = mfw.names if p.distortion_keep <= p.mfw else word_block(
        words_tok, words_doc, vocab, sources, n, (1,), p.distortion_keep).names
    keep = frozenset(keep_list[: p.distortion_keep])
    del words_tok, words_doc, is_w
    # Text distortion at the vocabulary level (one entry at a time, identical to :func:`distort`).
    d_codes, d_vocab = pd.factorize(np.array([distort([v], keep, p.distortion_mode)[0] for v in vocab],
                                             dtype=object))
    d_tok = d_codes.astype(np.int64)[tok]
    del tok
    distorted = word_block(d_tok, doc, [str(v) for v in d_vocab], sources, n,
                            tuple(sorted(set(p.distortion_orders))), p.distortion_top)
    del d_tok, doc
    char = char_block(corpus.responses, sources, p.char_n, p.char_top, p.char_lowercase,
                       p.char_word_boundary)
    fmt_counts, fmt_totals = {}, {}
    for s in sources:
        num, den = _formatting(corpus.responses[s], corpus.prompts)
        fmt_counts[s] = sparse.csr_matrix(num)
        fmt_totals[s] = den
    formatting = FeatureBlock(names=[f.name for f in FORMATTING_FEATURES], counts=fmt_counts,
                              totals=fmt_totals, scale=format_scale(FORMATTING_FEATURES))
    return StyloFeatures(sources=sources, n_prompts=n, lengths=lengths, mfw=mfw, char=char,
                         distorted=distorted, formatting=formatting, params=p)


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
